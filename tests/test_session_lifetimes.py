"""SSO session lifetimes (issue 11 §2): an idle timeout beside the absolute
lifetime, both on every real store with the injectable clock, and what the
portals are told (``SessionNotOnOrAfter``)."""
from __future__ import annotations

import base64
import datetime as dt

import pytest
from lxml import etree

from idp.sessions.sso_session import PREFIX, SsoSessions
from tests.saml_sp import autopost_fields, follow, login_with_password, send

LIFETIME, IDLE = 8 * 3600, 1800
MON_ESPACE = "http://localhost:18081/metadata"


@pytest.fixture
def sessions(store, clock) -> SsoSessions:
    return SsoSessions(store, lifetime=LIFETIME, idle=IDLE, clock=clock)


def start(sessions, *, previous=None, person_id=1, key="password", level=100):
    return sessions.start(previous=previous, person_id=person_id, fedid=f"fedid-{person_id}", key=key,
                          level=level, authn_instant=sessions.clock.now())


def test_a_session_left_alone_ends_after_the_idle_time(sessions, clock):
    session = start(sessions)
    clock.advance(IDLE - 1)
    assert sessions.store.get(PREFIX + session.id) is not None  # not read: not used
    clock.advance(1)
    assert sessions.get(session.id) is None
    assert sessions.store.get(PREFIX + session.id) is None  # the store expired it too


def test_using_a_session_extends_it(sessions, clock):
    session = start(sessions)
    for _ in range(4):  # two hours, used every 25 minutes
        clock.advance(IDLE - 300)
        assert sessions.get(session.id) is not None
    assert sessions.store.ttl(PREFIX + session.id) == IDLE  # the store's expiry moved with the use
    clock.advance(IDLE)
    assert sessions.get(session.id) is None


def test_use_is_written_at_most_once_a_minute(sessions, clock):
    """Single sign-on reads the session at every response: a write each time would
    cost a store round trip per response (issue 12)."""
    session = start(sessions)
    clock.advance(30)
    sessions.get(session.id)
    assert sessions.store.get(PREFIX + session.id)["seen"] == session.seen  # not yet rewritten
    clock.advance(31)
    used = sessions.get(session.id)
    assert sessions.store.get(PREFIX + session.id)["seen"] == used.seen == clock.now()


def test_use_never_goes_past_the_absolute_lifetime(sessions, clock):
    session = start(sessions)
    while clock.now() < session.started + LIFETIME - 600:
        clock.advance(600)
        assert sessions.get(session.id) is not None
    assert sessions.store.ttl(PREFIX + session.id) <= 600  # expiry capped at the absolute end
    clock.advance(600)
    assert sessions.get(session.id) is None


def test_a_step_up_does_not_restart_the_absolute_lifetime(sessions, clock):
    first = start(sessions, level=100)
    for _ in range(9):  # three hours of use
        clock.advance(1200)
        assert sessions.get(first.id) is not None
    stepped_up = start(sessions, previous=first.id, level=500)
    assert stepped_up.started == first.started and stepped_up.seen == clock.now()
    assert stepped_up.ends(LIFETIME) == first.started + LIFETIME
    while clock.now() + 1200 < stepped_up.ends(LIFETIME):
        clock.advance(1200)
        assert sessions.get(stepped_up.id) is not None
    clock.advance(stepped_up.ends(LIFETIME) - clock.now())
    assert sessions.get(stepped_up.id) is None


def test_another_person_starts_a_new_lifetime(sessions, clock):
    first = start(sessions, person_id=1)
    clock.advance(600)
    other = start(sessions, previous=first.id, person_id=2)
    assert other.started == clock.now()


def test_visits_record_since_when_and_with_which_key(sessions, clock):
    session = start(sessions, key="password", level=100)
    since = clock.now()
    sessions.add_portal(session, MON_ESPACE, ("n1", "transient"), key="password", level=100)
    clock.advance(120)
    stepped_up = start(sessions, previous=session.id, key="itsme", level=500)
    sessions.add_portal(stepped_up, MON_ESPACE, ("n1", "transient"), key="itsme", level=500)
    stored = sessions.get(stepped_up.id)
    assert stored.visits == {MON_ESPACE: [since, "itsme", 500]}  # first visit kept, key and level updated


# --- through a portal ------------------------------------------------------------------
@pytest.fixture
def world_short(make_idp, tmp_path):
    from tests.saml_sp import FSE, MON_ESPACE as ME, TestPortal

    # The test portals (pysaml2) stamp their requests with the real time while
    # Sésame's clock is moved on by hours: requests may be that old here.
    app, services = make_idp(session={"idle_seconds": IDLE, "lifetime_seconds": LIFETIME},
                             saml={"request_max_age_seconds": 4 * IDLE})
    return app, services, TestPortal(services, ME, tmp_path / "sp"), TestPortal(services, FSE, tmp_path / "sp")


def _login(browser, portal):
    page = follow(browser, send(browser, portal.request()))
    return autopost_fields(login_with_password(browser, page, username="marie.dupont"))


def _session_end(saml_response: str) -> str:
    """``SessionNotOnOrAfter`` as sent (read directly: pysaml2 would judge the
    assertion's times by the real clock, not Sésame's moved one)."""
    root = etree.fromstring(base64.b64decode(saml_response))
    return root.find(".//{urn:oasis:names:tc:SAML:2.0:assertion}AuthnStatement").get("SessionNotOnOrAfter")


def test_assertions_state_the_session_end(world_short, clock):
    app, services, monespace, fse = world_short
    browser = app.test_client()
    started = clock.now()
    _, fields = _login(browser, monespace)
    # pysaml2 reads it too (its own checks, at the real time, which is still Sésame's here)
    statement = monespace.parse(fields["SAMLResponse"]).assertion.authn_statement[0]
    expected = dt.datetime.fromtimestamp(int(started + LIFETIME), tz=dt.timezone.utc)
    assert statement.session_not_on_or_after == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    clock.advance(600)  # single sign-on later states the same end, not ten minutes more
    _, fields = autopost_fields(send(browser, fse.request()))
    assert _session_end(fields["SAMLResponse"]) == statement.session_not_on_or_after


def test_an_idle_session_asks_for_a_login_again(world_short, clock):
    app, services, monespace, fse = world_short
    browser = app.test_client()
    _login(browser, monespace)
    clock.advance(IDLE - 60)
    autopost_fields(send(browser, fse.request()))  # used: single sign-on, no page
    clock.advance(IDLE - 60)
    autopost_fields(send(browser, monespace.request()))  # 58 minutes after the login, still used
    clock.advance(IDLE)
    page = follow(browser, send(browser, fse.request()))
    assert page.status_code == 200 and "login/password" in page.get_data(as_text=True)

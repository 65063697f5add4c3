"""SSO sessions (idp/sessions/sso_session.py) on every real state store (SQL on
SQLite, SQL on PostgreSQL, Redis), with a frozen clock (DESIGN.md §1 steps 4, 7; §5)."""
from __future__ import annotations

import pytest

from idp.app.config import load_settings
from idp.sessions.levels import LevelTable
from idp.sessions.sso_session import SsoSession, SsoSessions

LIFETIME = 8 * 3600
FAS = "urn:be:fedict:iam:fas:citizen:Level"
MON_ESPACE = "http://localhost:18081/metadata"
FSE = "http://localhost:18082/metadata"


@pytest.fixture
def sessions(store, clock) -> SsoSessions:
    return SsoSessions(store, lifetime=LIFETIME, clock=clock)


def start(sessions: SsoSessions, *, previous=None, person_id=1, key="password", level=100) -> SsoSession:
    return sessions.start(previous=previous, person_id=person_id, fedid=f"fedid-{person_id}", key=key,
                          level=level, authn_instant=sessions.clock.now())


# --- SSO sessions -----------------------------------------------------------------
def test_start_stores_a_session_readable_by_id(sessions, clock):
    session = start(sessions, person_id=7, level=300)
    again = sessions.get(session.id)
    assert again == session
    assert (again.person_id, again.fedid, again.key, again.level) == (7, "fedid-7", "password", 300)
    assert again.created == clock.now() and again.portals == []
    assert len(session.id) >= 32


def test_every_start_gives_a_new_id_and_ends_the_previous_session(sessions):
    first = start(sessions)
    second = start(sessions, previous=first.id)
    third = start(sessions, previous=second.id)
    assert len({first.id, second.id, third.id}) == 3
    assert sessions.get(first.id) is None and sessions.get(second.id) is None
    assert sessions.get(third.id) is not None


def test_start_without_previous_leaves_other_sessions_alone(sessions):
    someone = start(sessions, person_id=1)
    other = start(sessions, person_id=2)
    assert sessions.get(someone.id) is not None and sessions.get(other.id) is not None


def test_same_person_keeps_the_portals_for_logout(sessions):
    first = start(sessions, person_id=1)
    sessions.add_portal(first, MON_ESPACE)
    sessions.add_portal(first, FSE)
    stepped_up = start(sessions, previous=first.id, person_id=1, level=500)
    assert stepped_up.portals == [MON_ESPACE, FSE]
    assert sessions.get(stepped_up.id).portals == [MON_ESPACE, FSE]
    assert sessions.get(stepped_up.id).level == 500


def test_another_person_does_not_inherit_the_portals(sessions):
    first = start(sessions, person_id=1)
    sessions.add_portal(first, MON_ESPACE)
    other = start(sessions, previous=first.id, person_id=2)
    assert other.portals == [] and sessions.get(other.id).portals == []
    assert sessions.get(first.id) is None


def test_add_portal_is_stored_once(sessions):
    session = start(sessions)
    for _ in range(3):
        sessions.add_portal(session, MON_ESPACE)
    assert sessions.get(session.id).portals == [MON_ESPACE]


def test_session_expires_after_its_lifetime(sessions, clock):
    session = start(sessions)
    clock.advance(LIFETIME - 1)
    assert sessions.get(session.id) is not None
    clock.advance(1)
    assert sessions.get(session.id) is None


def test_adding_a_portal_does_not_extend_the_lifetime(sessions, clock):
    session = start(sessions)
    clock.advance(LIFETIME - 100)
    sessions.add_portal(session, FSE)
    assert sessions.get(session.id).portals == [FSE]
    clock.advance(100)
    assert sessions.get(session.id) is None


def test_an_expired_previous_session_is_simply_replaced(sessions, clock):
    first = start(sessions)
    sessions.add_portal(first, MON_ESPACE)
    clock.advance(LIFETIME)
    second = start(sessions, previous=first.id)
    assert second.portals == [] and sessions.get(second.id) is not None


def test_end_removes_and_returns_the_session(sessions):
    session = start(sessions)
    ended = sessions.end(session.id)
    assert ended is not None and ended.id == session.id
    assert sessions.get(session.id) is None
    assert sessions.end(session.id) is None


@pytest.mark.parametrize("sid", [None, "", "unknown", "x" * 65])
def test_unknown_ids_give_no_session(sessions, sid):
    start(sessions)
    assert sessions.get(sid) is None
    assert sessions.end(sid) is None


def test_concurrent_add_portal_keeps_both_portals(sessions):
    session = start(sessions)
    tab_one, tab_two = sessions.get(session.id), sessions.get(session.id)  # each request reads the session
    sessions.add_portal(tab_one, MON_ESPACE)
    sessions.add_portal(tab_two, FSE)
    assert sorted(sessions.get(session.id).portals) == sorted([MON_ESPACE, FSE])


# --- SsoSession.best_login: whether the session may answer a portal ---------------------------------------------------------
def _session(key="password", level=100) -> SsoSession:
    return SsoSession(id="s", person_id=1, fedid="f", key=key, level=level, authn_instant=0.0, created=0.0)


@pytest.mark.parametrize("key,level,keys,min_level,refs,comparison,expected", [
    ("password", 100, ["password"], 100, [], None, True),
    ("password", 100, ["totp"], 100, [], None, False),             # key not acceptable for the portal
    ("password", 100, ["password", "totp"], 200, [], None, False),  # below the portal's minimum
    ("eid", 500, ["eid", "password"], 100, [], None, True),
    ("eid", 500, ["eid"], 100, [f"{FAS}400"], "minimum", True),
    ("totp", 400, ["totp"], 100, [f"{FAS}500"], "minimum", False),
    ("eid", 500, ["eid"], 100, [f"{FAS}100"], "exact", False),     # too strong for "exact"
    ("eid", 500, ["eid"], 100, [f"{FAS}300"], "maximum", False),
    ("totp", 400, ["totp"], 100, [f"{FAS}300"], "better", True),
])
def test_answers_by_key_and_level(key, level, keys, min_level, refs, comparison, expected):
    requirement = LevelTable.from_settings(load_settings(environ={})["levels"]).requirement(refs, comparison)
    login = _session(key, level).best_login(keys=keys, min_level=min_level, requirement=requirement)
    assert (login is not None) is expected


def test_answers_without_requirement_by_key_and_minimum_only():
    assert _session("totp", 400).best_login(keys=["totp"], min_level=400, requirement=None) is not None
    assert _session("totp", 400).best_login(keys=["totp"], min_level=500, requirement=None) is None


# --- never lowered; every key of the session kept --------------------------------
def test_a_lower_level_login_never_lowers_the_session(sessions):
    strong = start(sessions, key="eid", level=500)
    weaker = start(sessions, previous=strong.id, key="password", level=100)  # ForceAuthn with the password
    stored = sessions.get(weaker.id)
    assert weaker.id != strong.id and sessions.get(strong.id) is None  # a new id all the same
    assert (stored.level, stored.key) == (500, "eid")
    assert set(stored.logins) == {"eid", "password"}


def test_another_person_starts_from_nothing(sessions):
    strong = start(sessions, person_id=1, key="eid", level=500)
    other = start(sessions, previous=strong.id, person_id=2, key="password", level=100)
    assert (other.level, other.key, set(other.logins)) == (100, "password", {"password"})


def test_best_login_picks_an_acceptable_key_of_the_session(sessions):
    session = start(sessions, key="eid", level=500)
    session = start(sessions, previous=session.id, key="password", level=100)
    session = sessions.get(session.id)
    # A portal that accepts only the password is answered with the password login, not the eID's.
    only_password = session.best_login(keys=["password"], min_level=100, requirement=None)
    assert (only_password.key, only_password.level) == ("password", 100)
    best = session.best_login(keys=["password", "eid"], min_level=100, requirement=None)
    assert (best.key, best.level) == ("eid", 500)
    assert session.best_login(keys=["totp"], min_level=100, requirement=None) is None


def test_attributes_learned_are_kept_across_logins_of_one_person(sessions):
    first = sessions.start(previous=None, person_id=1, fedid="f1", key="itsme", level=500, authn_instant=1.0,
                           attributes={"given_name": "Marie"})
    second = sessions.start(previous=first.id, person_id=1, fedid="f1", key="password", level=100,
                            authn_instant=2.0, attributes={"mail": "m@example.be"})
    assert sessions.get(second.id).attributes == {"given_name": "Marie", "mail": "m@example.be"}


def test_add_portal_in_parallel_keeps_every_portal(sessions):
    import threading

    session = start(sessions)
    portals = [f"http://portal{i}.test/metadata" for i in range(8)]
    barrier = threading.Barrier(len(portals))

    def add(entity_id):
        copy = sessions.get(session.id)
        barrier.wait()
        sessions.add_portal(copy, entity_id)

    threads = [threading.Thread(target=add, args=(p,)) for p in portals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sessions.get(session.id).portals) == sorted(portals)


def test_add_portal_does_not_bring_back_an_ended_session(sessions):
    session = start(sessions)
    sessions.end(session.id)
    sessions.add_portal(session, MON_ESPACE)
    assert sessions.get(session.id) is None

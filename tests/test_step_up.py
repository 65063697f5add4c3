"""Step-up across two portals (issue 11 §1), through pysaml2 service providers.

Marie logs in at Mon Espace with her password (level 100); FSE demands level
500.  She sees the key choice with only the keys that reach 500 and a sentence
saying why; after that login one session at 500 (a new session id) is shared by
both portals, and Mon Espace's next request is answered without a page.  The
level-500 key is the test-only ``standin_strong`` (tests/standin_keys) where no
real key of this checkout reaches 500 without an outside provider.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import pytest

from idp import create_app
from idp.app.demo import create_citizens, make_nrn
from idp.app.services import Services
from tests.conftest import idp_settings
from tests.saml_sp import (FSE, MON_ESPACE, TestPortal, audit_events, autopost_fields, error_code, follow,
                           form_action, form_fields, login_with_password, send)
from tests.standin_keys import KEY_TYPES
from tests.strong_login import STRONG, STRONG_SECRET, strong_keys

MARIE_NRN = "85031412302"
LEVEL = "urn:be:fedict:iam:fas:citizen:Level"


@pytest.fixture
def world(tmp_path, clock):
    settings = idp_settings(tmp_path, keys=strong_keys("password", "totp"))
    services = Services.build(settings, clock=clock, key_types=KEY_TYPES)
    create_citizens(services)
    monespace = TestPortal(services, replace(MON_ESPACE, policy=(
        ("accepted_keys", ["password", "totp", STRONG]), ("min_level", 100),
        ("attributes", ["surname", "givenName", "egovNRN"]), ("nameid_format", "persistent"),
        ("display_name", "Mon Espace"))), tmp_path / "sp")
    fse = TestPortal(services, replace(FSE, policy=(
        ("accepted_keys", ["password", "totp", STRONG]), ("min_level", 500),
        ("attributes", ["surname", "givenName"]), ("nameid_format", "transient"),
        ("display_name", "FSE 21-27"))), tmp_path / "sp")
    return create_app(services=services), services, monespace, fse


def sid_of(app, browser) -> str:
    with browser.session_transaction() as flask_session:
        return flask_session["sid"]


def password_login(browser, portal):
    page = follow(browser, send(browser, portal.request()))
    return portal.parse(autopost_fields(login_with_password(browser, page, username="marie.dupont"))[1]
                        ["SAMLResponse"])


def strong_login(browser, choose_page, nrn=MARIE_NRN):
    link = re.search(rf'href="(/login/{STRONG}/\?tx=[^"]+)"', choose_page)
    page = browser.get(link[1].replace("&amp;", "&")).get_data(as_text=True)
    return browser.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"], "nrn": nrn,
                                                 "secret": STRONG_SECRET})


def test_step_up_across_two_portals(world):
    app, services, monespace, fse = world
    browser = app.test_client()
    first = password_login(browser, monespace)
    assert first.authn_info()[0][0] == f"{LEVEL}100"
    low_sid = sid_of(app, browser)

    choose = follow(browser, send(browser, fse.request()))
    text = choose.get_data(as_text=True)
    assert choose.status_code == 200
    assert re.search(r'id="step-up" data-reason="level"', text)
    assert "demande une clé numérique plus sûre" in text
    assert set(re.findall(r'id="key-([a-z_]+)"', text)) == {STRONG}  # password (100), totp (400) cannot reach 500

    done = strong_login(browser, text)
    response = fse.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.authn_info()[0][0] == f"{LEVEL}500"
    assert response.get_identity() == {"surname": ["Dupont"], "givenName": ["Marie"]}

    high_sid = sid_of(app, browser)
    assert high_sid != low_sid and services.sessions.get(low_sid) is None
    session = services.sessions.get(high_sid)
    assert session.level == 500 and set(session.portals) == {monespace.entity_id, fse.entity_id}
    assert session.visits[fse.entity_id][1:] == [STRONG, 500]

    again = send(browser, monespace.request())  # no page: the raised session answers Mon Espace
    answered = monespace.parse(autopost_fields(again)[1]["SAMLResponse"])
    assert answered.authn_info()[0][0] == f"{LEVEL}500"
    assert answered.name_id.text == first.name_id.text  # the same person for Mon Espace
    assert [e.portal for e in audit_events(services, "sso.reuse")] == [monespace.entity_id]


def test_a_key_the_portal_does_not_accept_is_said_apart(world, tmp_path):
    """A session strong enough, but with a key this portal does not take."""
    app, services, monespace, _ = world
    strict = TestPortal(services, replace(FSE, slug="strict", base_url="http://localhost:18085", policy=(
        ("accepted_keys", ["password"]), ("min_level", 100), ("attributes", ["surname"]),
        ("nameid_format", "transient"), ("display_name", "Strict"))), tmp_path / "sp")
    browser = app.test_client()
    choose = follow(browser, send(browser, monespace.request()))
    done = strong_login(browser, choose.get_data(as_text=True))
    monespace.parse(autopost_fields(done)[1]["SAMLResponse"])
    page = follow(browser, send(browser, strict.request())).get_data(as_text=True)
    assert 'id="step-up" data-reason="key"' in page
    assert set(re.findall(r'id="key-([a-z_]+)"', page)) == {"password"}


def test_a_step_up_at_a_portal_by_another_person_is_refused(world):
    app, services, monespace, fse = world
    browser = app.test_client()
    password_login(browser, monespace)
    sid = sid_of(app, browser)
    choose = follow(browser, send(browser, fse.request())).get_data(as_text=True)
    jan = make_nrn(dt.date(1990, 7, 2), 45)
    answer = strong_login(browser, choose, nrn=jan)
    assert answer.status_code == 403 and error_code(answer) == "result_refused"
    assert audit_events(services, "login.refused")[-1].result == "another_person"
    assert sid_of(app, browser) == sid and services.sessions.get(sid).fedid  # Marie's session untouched


def test_without_a_session_there_is_no_step_up_sentence(world):
    app, _, _, fse = world
    browser = app.test_client()
    page = follow(browser, send(browser, fse.request())).get_data(as_text=True)
    assert 'id="step-up"' not in page and f'id="key-{STRONG}"' in page


def test_force_authn_is_a_new_login_not_a_step_up(world):
    app, _, monespace, _ = world
    browser = app.test_client()
    password_login(browser, monespace)
    page = follow(browser, send(browser, monespace.request(force_authn="true"))).get_data(as_text=True)
    assert 'id="step-up"' not in page and 'id="key-password"' in page


@pytest.mark.parametrize("refs,comparison", [
    (["urn:example:unknown:class"], "minimum"),                 # a class nobody knows
    ([f"{LEVEL}500"], "sideways"),                             # a comparison outside the four
    (["not a uri at all", ""], "exact"),                        # malformed references
])
def test_bad_class_references_answer_no_authn_context_and_end_nothing(world, refs, comparison):
    from saml2.saml import AuthnContextClassRef
    from saml2.samlp import RequestedAuthnContext
    from saml2.response import StatusError

    app, services, monespace, fse = world
    browser = app.test_client()
    password_login(browser, monespace)
    sid = sid_of(app, browser)
    wanted = RequestedAuthnContext(authn_context_class_ref=[AuthnContextClassRef(text=r) for r in refs],
                                   comparison=comparison)
    answer = send(browser, monespace.request(requested_authn_context=wanted))
    with pytest.raises(StatusError, match="NoAuthnContext"):
        monespace.parse(autopost_fields(answer)[1]["SAMLResponse"])
    assert audit_events(services, "saml.response")[-1].result == "no_authn_context"
    assert sid_of(app, browser) == sid and services.sessions.get(sid) is not None  # nothing ended
    assert monespace.parse(autopost_fields(send(browser, monespace.request()))[1]["SAMLResponse"])

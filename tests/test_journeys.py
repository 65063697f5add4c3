"""The journey engine, proved with one stand-in key per family (tests/standin_keys),
each driven end to end by a pysaml2 service provider through Sésame's real HTTP
endpoints: out to a provider and back to the fixed return endpoint (with a
cross-site POST), an upstream node with a variable level, a card-style JSON
challenge with its own page policy, a code after username + password under
parallel attack, and an activation journey without a portal.

Negative answers are asserted by error code (``data-code``), HTTP status and
audit rows, never by wording.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from saml2.saml import AuthnContextClassRef
from saml2.samlp import RequestedAuthnContext
from sqlalchemy import select

from idp import create_app
from idp.app.demo import DEMO_PASSWORD, create_citizens, make_nrn
from idp.app.services import Services
from idp.persistence.models import AuditEvent, Credential, Person
from tests.conftest import idp_settings
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import (
    MON_ESPACE, TestPortal, audit_events, autopost_fields, error_code, follow, form_action, form_fields, send,
)
from tests.standin_keys import KEY_TYPES, card_signature, expected_code
from tests.standin_keys.provider import SECRET, create_provider

STANDINS = ["standin_redirect", "standin_upstream", "standin_card", "standin_code", "standin_activation"]
CODE_SECRET = "code-secret"
ACTIVATION_CODE = "ACT-12345"
HELPER = "http://127.0.0.1:24727"
KEY_SETTINGS = {
    "standin_redirect": {"provider_url": "http://provider.test", "secret": SECRET},
    "standin_upstream": {"node_url": "http://provider.test", "secret": SECRET},
    "standin_card": {"helper_url": HELPER, "secret": SECRET},
    "standin_code": {"code_secret": CODE_SECRET, "max_code_attempts": 3},
    "standin_activation": {"activation_code": ACTIVATION_CODE},
}
EIDAS = "http://eidas.europa.eu/LoA/"


class World:
    def __init__(self, app, services, portal, provider, clock):
        self.app, self.services, self.portal, self.provider, self.clock = app, services, portal, provider, clock

    def audit(self, event: str) -> list[AuditEvent]:
        return audit_events(self.services, event)

    def choose_page(self, browser, **request_kwargs):
        """A portal's AuthnRequest, carried to the key choice; returns the journey id."""
        page = follow(browser, send(browser, self.portal.request(**request_kwargs)))
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        return parse_qs(urlsplit(page.request.url).query)["tx"][0]

    def portal_response(self, answer):
        _, fields = autopost_fields(answer)
        return self.portal.parse(fields["SAMLResponse"])


@pytest.fixture
def world(tmp_path, clock) -> World:
    # Enough Argon2 slots that parallel posts are checked, not answered "busy" (tests/test_rate_limits.py).
    settings = idp_settings(tmp_path, keys={"enabled": ["password", *STANDINS], **KEY_SETTINGS},
                            limits={"max_concurrent_hashes": 32, "hash_wait_seconds": 10.0},
                            # The engine's activation path, after a password login (the level an
                            # activation needs is tested in tests/test_account_keys.py).
                            account={"activation_level": 100})
    services = Services.build(settings, clock=clock, key_types=KEY_TYPES)
    create_citizens(services)
    spec = replace(MON_ESPACE, policy=(("accepted_keys", ["password", *STANDINS]), ("min_level", 100),
                                       ("attributes", ["surname", "givenName", "egovNRN"]),
                                       ("nameid_format", "persistent"), ("display_name", "Mon Espace")))
    portal = TestPortal(services, spec, tmp_path / "sp")
    yield World(create_app(services=services), services, portal, create_provider(), clock)
    services.database.dispose()



# --- (a) out to a provider, back to the fixed return endpoint -----------------------
def go_to_provider(world, browser, tx):
    out = browser.get(f"/login/standin_redirect/?tx={tx}")
    assert out.status_code == 303
    location = urlsplit(out.headers["Location"])
    assert location.netloc == "provider.test"
    page = world.provider.test_client().get(f"{location.path}?{location.query}").get_data(as_text=True)
    return form_action(page), form_fields(page)


def test_redirect_key_returns_by_cross_site_post_and_answers_the_portal(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, fields = go_to_provider(world, browser, tx)
    assert action == "http://idp.test/login/standin_redirect/return"  # fixed, no ?tx=
    assert "tx" not in action and len(fields["state"]) <= 80

    # The provider's page posts cross-site: the browser sends no SameSite=Lax cookie.
    parked = world.app.test_client().post(urlsplit(action).path, data=fields)
    assert parked.status_code == 303 and "resume=" in parked.headers["Location"]
    done = follow(browser, parked)
    response = world.portal_response(done)
    assert response.authn_info()[0][0] == "urn:be:fedict:iam:fas:citizen:Level500"
    assert response.ava["egovNRN"] == ["85031412302"]  # Marie, found by her register number
    assert [e.key for e in world.audit("login.success")] == ["standin_redirect"]


def test_a_same_site_post_return_is_answered_at_once(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, fields = go_to_provider(world, browser, tx)
    done = browser.post(urlsplit(action).path, data=fields)  # the cookie came along: nothing to park
    assert world.portal_response(done).ava["surname"] == ["Dupont"]


def test_unknown_register_number_is_provisioned_with_what_the_key_learned(world):
    nrn = make_nrn(dt.date(1992, 5, 17), 811)
    world.provider.config["PERSON"] = {"nrn": nrn, "given_name": "Yannick", "surname": "Nouveau"}
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, fields = go_to_provider(world, browser, tx)
    response = world.portal_response(browser.post(urlsplit(action).path, data=fields))
    assert response.ava["givenName"] == ["Yannick"] and response.ava["egovNRN"] == [nrn]
    with world.services.database.session() as s:
        person = s.scalar(select(Person).where(Person.nrn == nrn))
        assert (person.given_name, person.surname) == ("Yannick", "Nouveau")


@pytest.mark.parametrize("tamper", ["replayed", "forged", "expired", "missing", "other_key"])
def test_bad_return_states_are_refused_without_effect(world, tamper):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, fields = go_to_provider(world, browser, tx)
    path = urlsplit(action).path
    if tamper == "replayed":
        first = browser.post(path, data=fields)
        assert world.portal_response(first)
        successes = len(world.audit("login.success"))
    else:
        successes = 0
    if tamper == "forged":
        fields["state"] = fields["state"][:-3] + ("AAA" if not fields["state"].endswith("AAA") else "BBB")
    if tamper == "expired":
        world.clock.advance(601)
    if tamper == "missing":
        del fields["state"]
    if tamper == "other_key":
        path = "/login/standin_upstream/return"
        fields = {"RelayState": fields["state"], "SAMLResponse": "x"}
    answer = browser.post(path, data=fields)
    assert answer.status_code == 400 and error_code(answer) == "bad_return"
    assert 'id="autopost"' not in answer.get_data(as_text=True)
    assert len(world.audit("login.success")) == successes
    assert world.audit("login.return_refused")[-1].result == "bad_return"


def test_a_return_in_another_browser_is_refused(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, fields = go_to_provider(world, browser, tx)
    thief = world.app.test_client()
    thief.get("/")  # a browser of its own, with its own cookie
    answer = thief.post(urlsplit(action).path, data=fields)
    assert error_code(answer) == "login_expired"
    assert world.audit("login.success") == []
    assert world.audit("login.return_refused")[-1].result == "login_expired"


def test_a_return_for_a_finished_journey_is_refused(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, first = go_to_provider(world, browser, tx)
    _, second = go_to_provider(world, browser, tx)  # the citizen clicked twice: two states, one journey
    assert world.portal_response(browser.post(urlsplit(action).path, data=second))
    answer = browser.post(urlsplit(action).path, data=first)
    assert error_code(answer) == "login_expired" and 'id="autopost"' not in answer.get_data(as_text=True)
    assert len(world.audit("login.success")) == 1


def test_a_parked_return_resumes_once(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, fields = go_to_provider(world, browser, tx)
    parked = world.app.test_client().post(urlsplit(action).path, data=fields)
    assert world.portal_response(follow(browser, parked))
    again = follow(browser, parked)
    assert error_code(again) == "bad_return"


# --- (b) an upstream node with a variable level ---------------------------------------
def eidas(level: str, comparison: str) -> dict:
    return {"requested_authn_context": RequestedAuthnContext(
        authn_context_class_ref=[AuthnContextClassRef(text=EIDAS + level)], comparison=comparison)}


def through_node(world, browser, tx):
    out = browser.get(f"/login/standin_upstream/?tx={tx}")
    location = urlsplit(out.headers["Location"])
    back = world.provider.test_client().get(f"{location.path}?{location.query}")
    assert back.status_code == 303
    target = urlsplit(back.headers["Location"])
    assert target.path == "/login/standin_upstream/return"
    return browser.get(f"{target.path}?{target.query}")


@pytest.mark.parametrize("level,stated", [(500, "high"), (400, "substantial"), (300, "substantial")])
def test_upstream_level_meeting_the_request_is_stated_in_the_portals_vocabulary(world, level, stated):
    world.provider.config["NODE"]["level"] = level
    browser = world.app.test_client()
    tx = world.choose_page(browser, **eidas("substantial", "minimum"))
    response = world.portal_response(through_node(world, browser, tx))
    assert response.authn_info()[0][0] == EIDAS + stated
    assert response.ava["givenName"] == ["Ana"]  # provisioned from what the node said
    assert world.audit("login.success")[-1].level == level


def test_upstream_level_below_the_request_is_refused(world):
    world.provider.config["NODE"]["level"] = 200
    browser = world.app.test_client()
    tx = world.choose_page(browser, **eidas("substantial", "minimum"))
    answer = through_node(world, browser, tx)
    assert answer.status_code == 303  # back to the key choice, never to the portal
    page = follow(browser, answer)
    assert error_code(page) == "level_not_reached"
    assert world.audit("login.success") == [] and world.audit("saml.response") == []
    refused = world.audit("login.refused")[-1]
    assert (refused.result, refused.level, refused.key) == ("level_not_requested", 200, "standin_upstream")
    assert browser.get("/").get_data(as_text=True).count('id="identified"') == 0  # no session
    # The journey is still there: another key may finish it.
    world.provider.config["NODE"]["level"] = 400
    assert world.portal_response(through_node(world, browser, tx)).authn_info()[0][0] == EIDAS + "substantial"


def test_upstream_level_above_a_maximum_is_refused(world):
    world.provider.config["NODE"]["level"] = 500
    browser = world.app.test_client()
    tx = world.choose_page(browser, **eidas("substantial", "maximum"))
    assert through_node(world, browser, tx).status_code == 303
    assert world.audit("login.refused")[-1].result == "level_not_requested"


def test_upstream_login_links_the_person_once(world):
    browser = world.app.test_client()
    first = world.portal_response(through_node(world, browser, world.choose_page(browser)))
    again = world.app.test_client()
    second = world.portal_response(through_node(world, again, world.choose_page(again, force_authn="true")))
    assert first.name_id.text == second.name_id.text  # the same person: pairwise NameID unchanged
    with world.services.database.session() as s:
        links = s.scalars(select(Credential).where(Credential.key == "standin_upstream")).all()
        assert [c.username for c in links] == ["http://provider.test|EU/BE/ab12"]


# --- (c) a card-style challenge ----------------------------------------------------------
def card_page(world, browser, tx):
    page = browser.get(f"/login/standin_card/?tx={tx}")
    html = page.get_data(as_text=True)
    nonce = re.search(r'data-nonce="([^"]+)"', html)[1]
    sign_url = re.search(r'data-sign="([^"]+)"', html)[1].replace("&amp;", "&")
    csrf = re.search(r'data-csrf="([^"]+)"', html)[1]
    return page, nonce, sign_url, csrf


def test_card_challenge_with_a_json_step_and_its_own_page_policy(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    choose_csp = browser.get(f"/login/?tx={tx}").headers["Content-Security-Policy"]
    assert HELPER not in choose_csp
    page, nonce, sign_url, csrf = card_page(world, browser, tx)
    csp = page.headers["Content-Security-Policy"]
    assert f"connect-src 'self' {HELPER}" in csp and "script-src 'self';" in csp
    assert browser.get("/login/standin_card/static/card.js").status_code == 200

    signed = world.provider.test_client().get(f"/sign?nonce={nonce}").get_json()
    answer = browser.post(sign_url, json=signed, headers={"X-CSRFToken": csrf})
    assert answer.status_code == 200 and answer.is_json
    replay = browser.post(sign_url, json=signed, headers={"X-CSRFToken": csrf})
    assert replay.status_code == 400 and replay.get_json() == {"error": "bad_signature"}  # the nonce is spent
    done = browser.get(answer.get_json()["next"])
    assert world.portal_response(done).ava["egovNRN"] == ["85031412302"]


def test_card_json_step_needs_the_csrf_token(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    _, nonce, sign_url, _ = card_page(world, browser, tx)
    answer = browser.post(sign_url, json={"nrn": "85031412302",
                                          "signature": card_signature(SECRET, nonce, "85031412302")})
    assert error_code(answer) == "csrf_failed"


def test_card_signature_over_another_nonce_is_refused(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    _, nonce, sign_url, csrf = card_page(world, browser, tx)
    forged = {"nrn": "85031412302", "signature": card_signature(SECRET, "not-" + nonce, "85031412302")}
    assert browser.post(sign_url, json=forged, headers={"X-CSRFToken": csrf}).status_code == 400
    finish = browser.get(f"/login/standin_card/finish?tx={tx}")
    assert finish.status_code == 303 and world.audit("login.success") == []


# --- (d) a code after username + password, attacked in parallel -------------------------
def password_step(world, browser, tx, password=DEMO_PASSWORD):
    page = browser.get(f"/login/standin_code/?tx={tx}").get_data(as_text=True)
    return browser.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"],
                                                  "username": "marie.dupont", "password": password})


def test_code_after_password_logs_in(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    code_page = follow(browser, password_step(world, browser, tx)).get_data(as_text=True)
    done = browser.post(form_action(code_page), data={"csrf_token": form_fields(code_page)["csrf_token"],
                                                      "code": expected_code(CODE_SECRET, tx)})
    response = world.portal_response(done)
    assert response.authn_info()[0][0] == "urn:be:fedict:iam:fas:citizen:Level300"


def test_parallel_wrong_codes_get_at_most_the_configured_attempts(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    code_page = follow(browser, password_step(world, browser, tx)).get_data(as_text=True)
    action, csrf = form_action(code_page), form_fields(code_page)["csrf_token"]
    clients = [same_browser(world.app, browser) for _ in range(16)]
    statuses = in_parallel(16, lambda i: clients[i].post(action, data={"csrf_token": csrf,
                                                                       "code": f"{i:06d}"}).status_code)
    # 401: a code compared and wrong; 303: attempts used up (back to the key choice);
    # 409: the journey changed under a parallel post, nothing done.
    assert statuses.count(401) <= 3, statuses
    assert statuses.count(303) >= 1 and all(s in (401, 303, 409) for s in statuses), statuses
    assert world.services.store.get(f"attempts:{tx}:standin_code:code") == 16  # each was counted first
    # The right code now comes too late.
    late = browser.post(action, data={"csrf_token": csrf, "code": expected_code(CODE_SECRET, tx)})
    assert late.status_code == 303 and "too_many_attempts" in late.headers["Location"]
    assert world.audit("login.success") == []


def test_parallel_wrong_passwords_get_at_most_the_configured_checks(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    page = browser.get(f"/login/standin_code/?tx={tx}").get_data(as_text=True)
    action, csrf = form_action(page), form_fields(page)["csrf_token"]
    clients = [same_browser(world.app, browser) for _ in range(16)]
    statuses = in_parallel(16, lambda i: clients[i].post(
        action, data={"csrf_token": csrf, "username": "marie.dupont", "password": f"wrong-{i}"}).status_code)
    assert statuses.count(401) <= 4 and statuses.count(403) >= 12, statuses
    # The shared password check is shared with the password key: that one is blocked too.
    right = password_step(world, browser, tx)
    assert right.status_code == 403 and error_code(right) == "account_blocked"


# --- (e) an activation journey from a Sésame page, no portal ---------------------------
def logged_in_browser(world):
    """A browser logged in to Sésame's own pages with the password (a journey without a portal)."""
    browser = world.app.test_client()
    home = browser.get("/").get_data(as_text=True)
    assert 'id="login"' in home
    start = browser.post("/journeys/login", data={"csrf_token": form_fields(home)["csrf_token"], "next": "/"})
    choose = follow(browser, start)
    assert "Service en ligne" not in choose.get_data(as_text=True)
    form_page = browser.get(re.search(r'href="(/login/password/\?tx=[^"]+)"',
                                      choose.get_data(as_text=True))[1].replace("&amp;", "&"))
    html = form_page.get_data(as_text=True)
    done = browser.post(form_action(html), data={"csrf_token": form_fields(html)["csrf_token"],
                                                "username": "marie.dupont", "password": DEMO_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"] == "/"
    return browser


def test_login_to_sesame_without_a_portal_ends_on_the_page_that_asked(world):
    browser = logged_in_browser(world)
    assert 'id="identified"' in browser.get("/").get_data(as_text=True)
    assert world.audit("saml.response") == []
    assert world.audit("login.success")[-1].portal is None


def test_activation_journey_from_the_home_page_ends_back_there(world):
    browser = logged_in_browser(world)
    home = browser.get("/").get_data(as_text=True)
    assert 'id="activate-standin_activation"' in home
    start = browser.post("/journeys/activate/standin_activation",
                         data={"csrf_token": form_fields(home)["csrf_token"], "next": "/"})
    page = follow(browser, start).get_data(as_text=True)
    wrong = browser.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"], "code": "nope"})
    assert wrong.status_code == 401 and error_code(wrong) == "bad_code"
    done = browser.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"],
                                                 "code": ACTIVATION_CODE})
    assert done.status_code == 303 and done.headers["Location"] == "/"
    assert 'id="activate-standin_activation"' not in browser.get("/").get_data(as_text=True)
    assert [e.key for e in world.audit("key.activated")] == ["standin_activation"]
    assert world.audit("saml.response") == []
    # Activating a key at level 200 did not lower the session the password opened... nor raise it.
    sid = browser.get_cookie("sesame")
    assert sid is not None


def test_activation_needs_a_known_person(world):
    browser = world.app.test_client()
    home = browser.get("/").get_data(as_text=True)
    start = browser.post("/journeys/activate/standin_activation",
                         data={"csrf_token": form_fields(home)["csrf_token"], "next": "/"})
    page = follow(browser, start)  # refused by the engine before the key is asked anything
    assert page.status_code == 403 and error_code(page) == "activation_level"
    assert world.audit("key.activated") == []
    assert [e.result for e in world.audit("key.activation_refused")] == ["level_too_low"]


def test_a_key_without_activation_cannot_start_one(world):
    browser = world.app.test_client()
    home = browser.get("/").get_data(as_text=True)
    answer = browser.post("/journeys/activate/standin_card",
                          data={"csrf_token": form_fields(home)["csrf_token"], "next": "/"})
    assert answer.status_code == 403 and error_code(answer) == "key_not_allowed"


@pytest.mark.parametrize("target", ["//evil.example/", "/\t/evil.example", "https://evil.example/"])
def test_the_next_page_is_never_another_site(world, target):
    browser = world.app.test_client()
    home = browser.get("/").get_data(as_text=True)
    start = browser.post("/journeys/login", data={"csrf_token": form_fields(home)["csrf_token"],
                                                  "next": target})
    tx = parse_qs(urlsplit(start.headers["Location"]).query)["tx"][0]
    assert world.services.journeys.load(tx, browser=_browser_id(world, browser)).done_url == "/"


def _browser_id(world, browser):
    from flask.sessions import SecureCookieSessionInterface

    serializer = SecureCookieSessionInterface().get_signing_serializer(world.app)
    return serializer.loads(browser.get_cookie("sesame").value)["b"]


# --- the rest of the contract, reached over HTTP ----------------------------------------
def test_a_failure_keeps_its_parameters_for_the_key_choice(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, fields = go_to_provider(world, browser, tx)
    go_to_provider(world, browser, tx)  # a second trip: the first code's nonce is no longer the one expected
    answer = browser.post(urlsplit(action).path, data=fields)
    assert answer.status_code == 303 and "error=provider_refused" in answer.headers["Location"]
    page = follow(browser, answer)
    assert error_code(page) == "provider_refused"
    assert "The provider provider.test refused." in page.get_data(as_text=True)


def test_a_key_declares_a_public_endpoint(world):
    answer = world.app.test_client().get("/keys/standin_redirect/jwks.json")
    assert answer.status_code == 200 and answer.get_json()["keys"][0]["kid"] == "standin"
    assert world.app.test_client().get("/keys/standin_redirect/other.json").status_code == 404
    assert world.app.test_client().get("/keys/password/jwks.json").status_code == 404


def test_a_journey_of_another_browser_is_refused_and_audited(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    other = world.app.test_client()
    other.get("/lang/nl")  # another browser, reading Dutch
    for path in (f"/login/?tx={tx}", f"/login/password/?tx={tx}", f"/login/standin_code/password?tx={tx}"):
        answer = other.get(path)
        assert answer.status_code == 400 and error_code(answer) == "login_expired"
        assert '<html lang="nl">' in answer.get_data(as_text=True)
    refused = world.audit("login.journey_refused")
    assert len(refused) == 3 and {e.result for e in refused} == {"login_expired"}
    assert browser.get(f"/login/?tx={tx}").status_code == 200  # the owner's journey is untouched


def test_keys_needing_a_person_are_offered_only_when_set_up_for_them(world):
    browser = logged_in_browser(world)
    home = browser.get("/").get_data(as_text=True)
    step_up = follow(browser, browser.post("/journeys/login", data={"csrf_token": form_fields(home)["csrf_token"],
                                                                     "next": "/", "level": "200"}))
    offered = set(re.findall(r'id="key-([a-z_]+)"', step_up.get_data(as_text=True)))
    assert "standin_activation" not in offered  # requires a user, not activated for Marie
    assert {"standin_redirect", "standin_card", "standin_code"} <= offered
    assert "password" not in offered  # level 100 cannot reach 200
    tx = parse_qs(urlsplit(step_up.request.url).query)["tx"][0]
    assert browser.get(f"/login/standin_activation/?tx={tx}").status_code == 403


def test_a_step_up_by_another_person_is_refused(world):
    world.provider.config["PERSON"] = {"nrn": make_nrn(dt.date(1990, 7, 2), 45), "given_name": "Jan",
                                       "surname": "Peeters"}  # Jan's register number, in Marie's browser
    browser = logged_in_browser(world)
    home = browser.get("/").get_data(as_text=True)
    step_up = browser.post("/journeys/login", data={"csrf_token": form_fields(home)["csrf_token"], "next": "/",
                                                    "level": "500"})
    tx = parse_qs(urlsplit(step_up.headers["Location"]).query)["tx"][0]
    action, fields = go_to_provider(world, browser, tx)
    answer = browser.post(urlsplit(action).path, data=fields)
    assert answer.status_code == 403 and error_code(answer) == "result_refused"
    assert world.audit("login.refused")[-1].result == "another_person"
    assert "Marie" in browser.get("/").get_data(as_text=True)  # still Marie's session, not Jan's


def test_a_lower_level_forced_login_does_not_lower_the_session(world):
    browser = world.app.test_client()
    tx = world.choose_page(browser)
    action, fields = go_to_provider(world, browser, tx)
    assert world.portal_response(browser.post(urlsplit(action).path, data=fields))  # level 500
    page = follow(browser, send(browser, world.portal.request(force_authn="true")))
    form = browser.get(re.search(r'href="(/login/password/\?tx=[^"]+)"',
                                 page.get_data(as_text=True))[1].replace("&amp;", "&")).get_data(as_text=True)
    done = browser.post(form_action(form), data={"csrf_token": form_fields(form)["csrf_token"],
                                                 "username": "marie.dupont", "password": DEMO_PASSWORD})
    forced = world.portal_response(done)
    assert forced.authn_info()[0][0].endswith("Level100")  # the portal is told what this login reached
    session = world.services.sessions.get(_session_id(world, browser))
    assert (session.level, session.key) == (500, "standin_redirect")
    # and the next portal request without ForceAuthn is answered at level 500 at once
    again = send(browser, world.portal.request())
    assert world.portal_response(again).authn_info()[0][0].endswith("Level500")


def test_a_key_class_restricts_the_journey_to_that_key(tmp_path, clock):
    keys = {"enabled": ["password", "standin_upstream"], "standin_upstream": {
        **KEY_SETTINGS["standin_upstream"], "context_class": "urn:test:standin:upstream"}}
    services = Services.build(idp_settings(tmp_path, keys=keys), clock=clock, key_types=KEY_TYPES)
    create_citizens(services)
    spec = replace(MON_ESPACE, policy=(("accepted_keys", ["password", "standin_upstream"]), ("min_level", 100),
                                       ("attributes", ["surname"]), ("nameid_format", "transient")))
    world = World(create_app(services=services), services, TestPortal(services, spec, tmp_path / "sp"),
                  create_provider(), clock)
    world.provider.config["NODE"]["level"] = 300
    browser = world.app.test_client()
    wanted = RequestedAuthnContext(authn_context_class_ref=[AuthnContextClassRef(text="urn:test:standin:upstream")],
                                   comparison="exact")
    tx = world.choose_page(browser, requested_authn_context=wanted)
    offered = re.findall(r'id="key-([a-z_]+)"', browser.get(f"/login/?tx={tx}").get_data(as_text=True))
    assert offered == ["standin_upstream"]
    response = world.portal_response(through_node(world, browser, tx))
    assert response.authn_info()[0][0] == "urn:test:standin:upstream"
    services.database.dispose()


def _session_id(world, browser):
    from flask.sessions import SecureCookieSessionInterface

    serializer = SecureCookieSessionInterface().get_signing_serializer(world.app)
    return serializer.loads(browser.get_cookie("sesame").value)["sid"]


@pytest.mark.parametrize("path,status,code", [
    ("/login/password/return?state=x", 404, "unknown_key"),      # a key that never leaves Sésame
    ("/login/nokey/return?state=x", 404, "unknown_key"),
    ("/keys/nokey/jwks.json", 404, "not_found"),
])
def test_returns_and_public_endpoints_of_keys_that_have_none(world, path, status, code):
    answer = world.app.test_client().get(path)
    assert answer.status_code == status and error_code(answer) == code


def test_an_unreachable_level_for_a_sesame_login_is_a_clear_page(world):
    browser = world.app.test_client()
    home = browser.get("/").get_data(as_text=True)
    answer = browser.post("/journeys/login", data={"csrf_token": form_fields(home)["csrf_token"], "next": "/",
                                                   "level": "900"})
    assert answer.status_code == 400 and error_code(answer) == "no_acceptable_key"


def test_an_activation_granted_by_an_activation_code_starts_no_session(world):
    """The registration office's path: a person proved by an activation code (not by a
    session) activates a key; the journey ends without a session, as the guide logs
    the citizen out, and the activation is audited as granted."""
    from idp.journeys.context import HttpInput

    fedid = world.services.credentials.find(key="password", username="marie.dupont").person_fedid
    browser = world.app.test_client()
    with browser.session_transaction() as cookie:  # the browser id the office's page would have set
        cookie["b"] = bid = "office-browser"
    with world.app.test_request_context():
        start = world.app.extensions["sesame.journeys"].activation(
            key="standin_activation", done_url="/", granted_fedid=fedid,
            http=HttpInput(method="POST", form={}, args={}, remote_addr="192.0.2.1", browser=bid, sid=None,
                           lang="fr"))
    page = browser.get(start.url).get_data(as_text=True)
    done = browser.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"],
                                                 "code": ACTIVATION_CODE})
    assert done.status_code == 303 and done.headers["Location"] == "/"
    assert 'id="identified"' not in browser.get("/").get_data(as_text=True)  # no session
    assert world.services.credentials.has_active(key="standin_activation", person_fedid=fedid)
    activated = world.audit("key.activated")[-1]
    assert activated.person_fedid == fedid and activated.detail.get("granted") is True

"""The eID key end to end: a pysaml2 portal asking for level 500, Sésame (the
Flask test client), SoftHSM2 cards signing through PyKCS11 with their real
PIN, and the sandbox PKI's OCSP responder over real HTTP.

Bad input is asserted by error code (``data-code``), audit rows and the
absence of a session, never by wording.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from adapters import SettingsError
from adapters.eid import EidAdapter, webeid
from idp import create_app
from idp.app.demo import create_citizens
from idp.app.services import Services
from idp.persistence.models import Person
from sandbox.eid import PIN
from tests.conftest import idp_settings
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import MON_ESPACE, TestPortal, audit_events, autopost_fields, error_code, follow, form_fields, send

pytest_plugins = ["tests.eid_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "http://idp.test"  # tests.eid_fixtures.ORIGIN: [server] base_url of tests.conftest.idp_settings
NONCE = re.compile(r"--nonce ([A-Za-z0-9_\-+/=]+)")


class World:
    def __init__(self, app, services, portal, eid):
        self.app, self.services, self.portal, self.eid = app, services, portal, eid
        self.browser = app.test_client()

    def audit(self, event: str):
        return audit_events(self.services, event)

    def eid_page(self):
        """Portal → key choice → the eID page; returns (tx, page)."""
        page = follow(self.browser, send(self.browser, self.portal.request()))
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        assert 'id="key-eid"' in page.get_data(as_text=True)
        tx = parse_qs(urlsplit(page.request.url).query)["tx"][0]
        eid = self.browser.get(f"/login/eid/?tx={tx}")
        assert eid.status_code == 200, eid.get_data(as_text=True)[:400]
        return tx, eid

    def challenge(self, tx: str, page) -> str:
        """The page script's JSON step: a fresh nonce (the page's CSRF token in the header)."""
        csrf = form_fields(page.get_data(as_text=True))["csrf_token"]
        answer = self.browser.post(f"/login/eid/challenge?tx={tx}", json={},
                                   headers={"X-CSRFToken": csrf})
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        assert answer.get_json()["origin"] == ORIGIN
        return answer.get_json()["nonce"]

    def post_token(self, tx: str, page, token, browser=None):
        csrf = form_fields(page.get_data(as_text=True))["csrf_token"]
        text = token if isinstance(token, str) else json.dumps(token)
        return (browser or self.browser).post(f"/login/eid/token?tx={tx}", data={"csrf_token": csrf, "token": text})

    def login_with_card(self, slug: str):
        tx, page = self.eid_page()
        nonce = self.challenge(tx, page)
        return self.post_token(tx, page, self.eid.sign_with_card(slug, nonce))

    def session_id(self):
        from flask.sessions import SecureCookieSessionInterface

        cookie = self.browser.get_cookie("sesame")
        if cookie is None:
            return None
        return SecureCookieSessionInterface().get_signing_serializer(self.app).loads(cookie.value).get("sid")


def make_world(tmp_path, clock, eid_world, *, store: str = "sql", **eid_settings) -> World:
    settings = idp_settings(tmp_path, store=store,
                            keys={"enabled": ["password", "eid"], "eid": eid_world.settings(**eid_settings)})
    services = Services.build(settings, clock=clock)
    create_citizens(services)
    app = create_app(services=services)
    spec = replace(MON_ESPACE, policy=(
        ("accepted_keys", ["password", "eid"]), ("min_level", 500),
        ("attributes", ["surname", "givenName", "egovNRN"]), ("nameid_format", "persistent"),
        ("display_name", "Mon Espace")))
    return World(app, services, TestPortal(services, spec, tmp_path / "sp"), eid_world)


@pytest.fixture
def world(tmp_path, clock, eid_world, responder):
    w = make_world(tmp_path, clock, eid_world)
    yield w
    w.services.database.dispose()


def assert_refused(world, answer, code: str, result: str | None = None):
    assert answer.status_code == 400
    assert error_code(answer) == code
    assert world.audit("login.failure")[-1].result == (result or code)
    assert world.audit("login.success") == []
    assert world.session_id() is None
    if code == "eid_challenge_expired":  # the way back to a new challenge
        assert 'id="eid-restart"' in answer.get_data(as_text=True)
    else:  # a fresh challenge to try again
        assert NONCE.search(answer.get_data(as_text=True))


# --- the login ----------------------------------------------------------------------------
def test_a_citizen_logs_in_with_a_card_at_a_level_500_portal(world):
    tx, page = world.eid_page()
    policy = page.headers["Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:24727" in policy  # the helper, on this page only
    before = world.eid.responder.requests
    nonce = world.challenge(tx, page)
    assert len(nonce) >= 43  # 256 bits, URL-safe base64
    done = world.post_token(tx, page, world.eid.sign_with_card("marie", nonce))
    response = world.portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.authn_info()[0][0] == "urn:be:fedict:iam:fas:citizen:Level500"
    assert response.ava["egovNRN"] == ["85031412302"]
    assert (response.ava["givenName"], response.ava["surname"]) == (["Marie"], ["Dupont"])
    assert [(e.key, e.level) for e in world.audit("login.success")] == [("eid", 500)]
    assert world.session_id() is not None
    assert world.eid.responder.requests == before + 1  # OCSP asked, from the certificate's AIA


def test_the_key_choice_page_does_not_open_the_loopback_source(world):
    page = follow(world.browser, send(world.browser, world.portal.request()))
    assert "127.0.0.1" not in page.headers["Content-Security-Policy"]


def test_an_rsa_card_and_the_paste_code_of_the_helper_command(world):
    """Jan's older RSA card, signed by the real `sesame eid sign` command; its code pasted."""
    tx, page = world.eid_page()
    nonce = NONCE.search(page.get_data(as_text=True))[1]
    pin_file = world.eid.directory / "pin"
    pin_file.write_text(PIN)
    run = subprocess.run([sys.executable, "-m", "idp.app.cli", "eid", "sign", "--module", world.eid.module,
                          "--origin", ORIGIN, "--nonce", nonce, "--card", world.eid.pki.issued["jan"].person.nrn,
                          "--pin-file", str(pin_file)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={"SOFTHSM2_CONF": str(world.eid.conf), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "Jan Peeters" in run.stderr
    code = run.stdout.strip()
    assert webeid.parse(code).algorithm == "RS256"
    response = world.portal.parse(autopost_fields(world.post_token(tx, page, code))[1]["SAMLResponse"])
    assert response.ava["egovNRN"] == [world.eid.pki.issued["jan"].person.nrn]


def test_the_first_login_creates_the_person_from_the_certificate(world):
    nora = world.eid.pki.issued["nora"].person
    tx, page = world.eid_page()
    nonce = world.challenge(tx, page)
    done = world.post_token(tx, page, world.eid.sign_in_software("nora", nonce))
    assert world.portal.parse(autopost_fields(done)[1]["SAMLResponse"]).ava["egovNRN"] == [nora.nrn]
    with world.services.database.session() as s:
        person = s.scalar(select(Person).where(Person.nrn == nora.nrn))
        assert (person.given_name, person.surname) == ("Nora", "Lambert")


# --- the certificate ------------------------------------------------------------------------
def test_a_revoked_card_is_refused(world):
    answer = world.login_with_card("luc")
    assert_refused(world, answer, "eid_cert_revoked")
    assert world.audit("login.failure")[-1].detail.get("certificate_serial")


@pytest.mark.parametrize("slug, code", [
    ("anne", "eid_cert_expired"), ("tom", "eid_cert_not_yet_valid"), ("eva", "eid_cert_untrusted"),
    ("sara", "eid_cert_status_unknown")])
def test_a_certificate_that_may_not_log_in(world, slug, code):
    tx, page = world.eid_page()
    nonce = world.challenge(tx, page)
    assert_refused(world, world.post_token(tx, page, world.eid.sign_in_software(slug, nonce)), code)


@pytest.mark.parametrize("mode", ["down", "stale", "forged"])
def test_no_usable_ocsp_answer_refuses_by_default(world, mode):
    world.eid.responder.mode = mode
    assert_refused(world, world.login_with_card("marie"), "eid_revocation_unavailable")
    assert "OCSP" in world.audit("login.failure")[-1].detail["reason"]


def test_with_ocsp_down_the_crl_decides_when_configured(tmp_path, clock, eid_world, responder):
    w = make_world(tmp_path, clock, eid_world, revocation="ocsp_or_crl")
    responder.mode = "down"
    assert autopost_fields(w.login_with_card("marie"))  # good in the CRL
    w.browser = w.app.test_client()
    answer = w.login_with_card("luc")  # listed in the CRL
    assert error_code(answer) == "eid_cert_revoked" and w.session_id() is None
    assert "CRL" in w.audit("login.failure")[-1].detail["reason"]
    w.services.database.dispose()


def test_a_configured_responder_wins_over_the_certificates(tmp_path, clock, eid_world, responder):
    from tests.live import free_port

    w = make_world(tmp_path, clock, eid_world, ocsp_url=f"http://127.0.0.1:{free_port()}/ocsp")  # nobody there
    assert_refused(w, w.login_with_card("marie"), "eid_revocation_unavailable")
    w.services.database.dispose()


# --- the signed challenge -------------------------------------------------------------------
def test_a_signature_over_another_nonce_is_refused(world):
    tx, page = world.eid_page()
    world.challenge(tx, page)
    token = world.eid.sign_with_card("marie", "another-nonce-" + "x" * 40)
    assert_refused(world, world.post_token(tx, page, token), "eid_signature_invalid")


def test_a_signature_for_another_site_is_refused(world):
    tx, page = world.eid_page()
    nonce = world.challenge(tx, page)
    token = world.eid.sign_with_card("marie", nonce, origin="https://evil.example")
    assert_refused(world, world.post_token(tx, page, token), "eid_signature_invalid")


def test_a_replayed_token_is_refused(world):
    tx, page = world.eid_page()
    nonce = world.challenge(tx, page)
    token = world.eid.sign_with_card("marie", nonce)
    world.eid.responder.mode = "down"  # the first try fails after the nonce was taken
    assert error_code(world.post_token(tx, page, token)) == "eid_revocation_unavailable"
    world.eid.responder.mode = "normal"
    again = world.post_token(tx, page, token)  # the same token: its nonce is gone
    assert_refused(world, again, "eid_signature_invalid")


def test_a_token_without_a_challenge_is_refused(world):
    """Straight to the token step of a journey whose challenge expired (or never was)."""
    tx, page = world.eid_page()
    nonce = world.challenge(tx, page)
    token = world.eid.sign_with_card("marie", nonce)
    world.services.store.delete("eid:nonce:" + nonce)  # its 5 minutes are over
    assert_refused(world, world.post_token(tx, page, token), "eid_challenge_expired")


@pytest.mark.parametrize("store", ["sql", "redis"])
def test_the_same_token_posted_in_parallel_logs_in_once(request, tmp_path, clock, eid_world, responder, store):
    world = make_world(tmp_path, clock, eid_world,
                       store=request.getfixturevalue("redis_url") if store == "redis" else "sql")
    tx, page = world.eid_page()
    token = world.eid.sign_with_card("marie", world.challenge(tx, page))
    browsers = [same_browser(world.app, world.browser) for _ in range(6)]
    answers = in_parallel(6, lambda i: world.post_token(tx, page, token, browser=browsers[i]))
    wins = [a for a in answers if 'id="autopost"' in a.get_data(as_text=True)]
    assert len(wins) == 1
    assert all(a.status_code < 500 for a in answers)
    assert len(world.audit("login.success")) == 1
    world.services.database.dispose()


@pytest.mark.parametrize("token", [
    "", "not a token", '{"format": "web-eid:1.0"}', "eyJmb3JtYXQiOiAid2ViLWVpZDoxLjAifQ",
    '{"unverifiedCertificate": "AAAA", "algorithm": "ES384", "signature": "AAAA", "format": "web-eid:1.0"}'])
def test_a_malformed_token_is_a_clear_page(world, token):
    tx, page = world.eid_page()
    world.challenge(tx, page)
    assert_refused(world, world.post_token(tx, page, token), "eid_token_invalid")


def test_an_algorithm_outside_the_list_is_refused(world):
    tx, page = world.eid_page()
    nonce = world.challenge(tx, page)
    token = world.eid.sign_in_software("nora", nonce, algorithm="ES512")  # a valid signature, not allowed
    assert_refused(world, world.post_token(tx, page, token), "eid_token_invalid")


# --- behind a TLS-terminating proxy -----------------------------------------------------------
def proxy_world(tmp_path, clock, eid_world):
    return make_world(tmp_path, clock, eid_world, proxy_header="X-SSL-Client-Cert",
                      trusted_proxies=["10.0.0.0/24"])


def pem_header(eid_world, slug: str) -> str:
    from urllib.parse import quote

    return quote(eid_world.pki.issued[slug].certificate.public_bytes(Encoding.PEM).decode())  # nginx's escaped cert


def post_certificate(w, page, tx, header: str | None, peer: str):
    csrf = form_fields(page.get_data(as_text=True))["csrf_token"]
    return w.browser.post(f"/login/eid/certificate?tx={tx}", data={"csrf_token": csrf},
                          headers={"X-SSL-Client-Cert": header} if header else {},
                          environ_base={"REMOTE_ADDR": peer})


def test_proxy_header_mode(tmp_path, clock, eid_world, responder):
    w = proxy_world(tmp_path, clock, eid_world)
    tx, page = w.eid_page()
    assert 'id="eid-proxy"' in page.get_data(as_text=True)
    done = post_certificate(w, page, tx, pem_header(eid_world, "marie"), "10.0.0.7")
    assert w.portal.parse(autopost_fields(done)[1]["SAMLResponse"]).ava["egovNRN"] == ["85031412302"]
    w.services.database.dispose()


@pytest.mark.parametrize("slug, peer, code, result", [
    ("marie", "192.0.2.10", "eid_proxy_refused", "untrusted_proxy"),   # the header from a citizen's own address
    (None, "10.0.0.7", "eid_proxy_refused", "no_certificate"),
    ("luc", "10.0.0.7", "eid_cert_revoked", "eid_cert_revoked"),
    ("eva", "10.0.0.7", "eid_cert_untrusted", "eid_cert_untrusted")])
def test_proxy_header_mode_refusals(tmp_path, clock, eid_world, responder, slug, peer, code, result):
    w = proxy_world(tmp_path, clock, eid_world)
    tx, page = w.eid_page()
    answer = post_certificate(w, page, tx, pem_header(eid_world, slug) if slug else None, peer)
    assert_refused(w, answer, code, result)
    w.services.database.dispose()


def test_the_certificate_step_does_not_exist_without_proxy_mode(world):
    tx, page = world.eid_page()
    assert 'id="eid-proxy"' not in page.get_data(as_text=True)
    answer = post_certificate(world, page, tx, pem_header(world.eid, "marie"), "10.0.0.7")
    assert 'id="autopost"' not in answer.get_data(as_text=True)
    assert world.session_id() is None


# --- settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"root_files": []}, {"root_files": ["/nonexistent/root.pem"]}, {"revocation": "none"},
    {"algorithms": ["HS256"]}, {"proxy_header": "X-SSL-Client-Cert"}, {"trusted_proxies": ["not-an-address"]}])
def test_settings_are_checked_at_start(eid_world, bad):
    with pytest.raises(SettingsError):
        EidAdapter({**eid_world.settings(), **bad})


def test_the_page_reports_what_went_wrong_on_the_citizens_computer(world):
    tx, page = world.eid_page()
    csrf = form_fields(page.get_data(as_text=True))["csrf_token"]
    answer = world.browser.post(f"/login/eid/report?tx={tx}", json={"error": "pin_incorrect", "tries": "final_try"},
                                headers={"X-CSRFToken": csrf})
    assert answer.get_json() == {"recorded": True}
    row = world.audit("login.failure")[-1]
    assert (row.result, row.key, row.detail["pin_tries"]) == ("eid_pin_incorrect", "eid", "final_try")
    for bad in ({"error": "<script>"}, {"error": "pin_incorrect", "tries": "99"}, {}):
        refused = world.browser.post(f"/login/eid/report?tx={tx}", json=bad, headers={"X-CSRFToken": csrf})
        assert refused.status_code == 400
    assert len(world.audit("login.failure")) == 1
    assert world.browser.post(f"/login/eid/report?tx={tx}", json={"error": "no_card"}).status_code == 400  # no CSRF


def test_reports_are_capped_per_journey_even_in_parallel(world):
    from adapters.eid import MAX_REPORTS

    tx, page = world.eid_page()
    csrf = form_fields(page.get_data(as_text=True))["csrf_token"]
    browsers = [same_browser(world.app, world.browser) for _ in range(MAX_REPORTS + 5)]
    answers = in_parallel(len(browsers), lambda i: browsers[i].post(
        f"/login/eid/report?tx={tx}", json={"error": "pin_incorrect"}, headers={"X-CSRFToken": csrf}))
    assert sorted(a.status_code for a in answers if a.status_code in (200, 429)).count(200) <= MAX_REPORTS
    assert len(world.audit("login.failure")) <= MAX_REPORTS
    assert any(a.status_code == 429 for a in answers)

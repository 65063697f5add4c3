"""The itsme key end to end: a pysaml2 portal asking for level 500, Sésame (the
Flask test client), and the itsme sandbox served as a real HTTP server in a
thread, which Sésame's key calls over HTTP (discovery, JWKS, token endpoint,
userinfo).  The browser's part of the sandbox (number page, "Confirmer") is
driven through the same sandbox application.

Each bad input is the sandbox told to misbehave; asserted by error code
(``data-code``), audit rows and the absence of a session, never by wording.
"""
from __future__ import annotations

import html
import json
import stat
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from jwcrypto import jwk, jws
from sqlalchemy import select

from adapters import SettingsError
from adapters.itsme import ACR, NRN_CLAIM, ItsmeAdapter
from idp import create_app
from idp.app.demo import create_citizens, serve_in_thread
from idp.app.services import Services
from idp.persistence.models import AuditEvent, Person
from sandbox.itsme import client, create_sandbox_app, state
from tests.conftest import idp_settings
from tests.live import HOST, free_port
from tests.saml_sp import MON_ESPACE, TestPortal, audit_events, autopost_fields, error_code, follow, form_fields, send

CLIENT_ID = "sesame-test"
SERVICE = "SESAME_LOGIN"
MARIE_PHONE = "+32 470 12 34 56"
MARIE_NRN = "85031412302"
RETURN = "http://idp.test/login/itsme/return"


@pytest.fixture(scope="module")
def sandbox():
    """The sandbox, served for the whole module; reset for each test (``world``)."""
    port = free_port()
    issuer = f"http://{HOST}:{port}/v2"
    app = create_sandbox_app(issuer)
    server = serve_in_thread(app, HOST, port)
    app.issuer = issuer
    yield app
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("oidc-keys")  # our keys, made once for the module (generate_keys)


def itsme_settings(sandbox, key_dir, **extra) -> dict:
    return {"issuer": sandbox.issuer, "client_id": CLIENT_ID, "service_code": SERVICE,
            "signing_key_file": str(key_dir / "itsme-signing.pem"),
            "encryption_key_file": str(key_dir / "itsme-encryption.pem"),
            "generate_keys": True, "timeout_seconds": 2.0, **extra}


class World:
    def __init__(self, app, services, portal, sandbox, key="itsme"):
        self.app, self.services, self.portal, self.sandbox, self.key = app, services, portal, sandbox, key
        self.browser = app.test_client()

    @property
    def adapter(self):
        return self.services.adapters[self.key]

    def audit(self, event: str) -> list[AuditEvent]:
        return audit_events(self.services, event)

    def to_provider(self) -> str:
        """Portal → key choice → this key: the URL Sésame sends the browser to."""
        page = follow(self.browser, send(self.browser, self.portal.request()))
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        tx = parse_qs(urlsplit(page.request.url).query)["tx"][0]
        assert f'id="key-{self.key}"' in page.get_data(as_text=True)
        out = self.browser.get(f"/login/{self.key}/?tx={tx}")
        assert out.status_code == 303, out.get_data(as_text=True)[:400]
        return out.headers["Location"]

    def in_sandbox(self, url: str, *, phone: str = MARIE_PHONE, decision: str = "confirm") -> str:
        """The citizen at the sandbox: their number, then "Confirmer" (or "Refuser"); the return URL."""
        provider = self.sandbox.test_client()
        location = urlsplit(url)
        page = provider.get(f"{location.path}?{location.query}")
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        txn = form_fields(page.get_data(as_text=True))["txn"]
        confirm = provider.post(location.path + "/number", data={"txn": txn, "phone": phone})
        assert 'id="confirm"' in confirm.get_data(as_text=True)
        back = provider.post(location.path + "/confirm", data={"txn": txn, "decision": decision})
        assert back.status_code == 303
        return back.headers["Location"]

    def back_at_sesame(self, url: str):
        location = urlsplit(url)
        assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN.replace("itsme", self.key)
        return self.browser.get(f"{location.path}?{location.query}")

    def login(self, **sandbox_kwargs):
        return self.back_at_sesame(self.in_sandbox(self.to_provider(), **sandbox_kwargs))


def make_world(tmp_path, clock, sandbox, *, key="itsme", key_settings=None, key_types=None,
               sandbox_client=None, min_level=500) -> World:
    settings = idp_settings(tmp_path, keys={"enabled": ["password", key], key: key_settings})
    services = Services.build(settings, clock=clock, key_types=key_types)
    create_citizens(services)
    app = create_app(services=services)
    spec = replace(MON_ESPACE, policy=(
        ("accepted_keys", ["password", key]), ("min_level", min_level),
        ("attributes", ["surname", "givenName", "birthDate", "mail", "egovNRN"]),
        ("nameid_format", "persistent"), ("display_name", "Mon Espace")))
    portal = TestPortal(services, spec, tmp_path / "sp")
    st = state(sandbox)
    st.reset()
    # Sésame is the test client here: the sandbox reads our JWKS through it (the endpoint itself is real).
    jwks = lambda: app.test_client().get(f"/keys/{key}/jwks.json").get_json()  # noqa: E731
    registered = sandbox_client or client(redirect_uris=[RETURN.replace("itsme", key)], service_codes=[SERVICE])
    if registered.get("jwks") is None and not registered.get("jwks_uri"):
        registered["jwks"] = jwks
    st.clients = {CLIENT_ID: registered}
    return World(app, services, portal, sandbox, key)


@pytest.fixture
def world(tmp_path, clock, sandbox, key_dir):
    w = make_world(tmp_path, clock, sandbox, key_settings=itsme_settings(sandbox, key_dir))
    yield w
    w.services.database.dispose()



def request_object(world, url: str) -> dict:
    """The claims of the signed request object in ``url``, checked with the key our JWKS publishes."""
    signed = jws.JWS()
    signed.deserialize(parse_qs(urlsplit(url).query)["request"][0])
    ours = jwk.JWKSet.from_json(world.app.test_client().get(f"/keys/{world.key}/jwks.json").get_data(as_text=True))
    signed.verify(ours.get_key(signed.jose_header["kid"]))
    return json.loads(signed.payload)


def session_id(world) -> str | None:
    from flask.sessions import SecureCookieSessionInterface

    cookie = world.browser.get_cookie("sesame")
    if cookie is None:
        return None
    return SecureCookieSessionInterface().get_signing_serializer(world.app).loads(cookie.value).get("sid")


# --- the login ---------------------------------------------------------------------------
def test_a_portal_at_level_500_receives_the_register_number_and_names(world):
    done = world.login()
    response = world.portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.authn_info()[0][0] == "urn:be:fedict:iam:fas:citizen:Level500"
    assert response.ava["egovNRN"] == [MARIE_NRN]
    assert (response.ava["givenName"], response.ava["surname"]) == (["Marie"], ["Dupont"])
    success = world.audit("login.success")
    assert [(e.key, e.level) for e in success] == [("itsme", 500)]
    assert session_id(world) is not None
    assert state(world.sandbox).seen_jti  # the token endpoint took our private_key_jwt


def test_the_first_login_creates_the_person_from_the_released_claims(world):
    done = world.login(phone="0470 45 67 89")  # Yannick: not a demo citizen
    response = world.portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.ava["egovNRN"] == ["92051781164"]
    with world.services.database.session() as s:
        person = s.scalar(select(Person).where(Person.nrn == "92051781164"))
        assert (person.given_name, person.surname, person.mail) == ("Yannick", "Nouveau",
                                                                    "yannick.nouveau@example.be")
        assert person.birth_date.isoformat() == "1992-05-17"


def test_the_authorization_request_follows_itsmes_profile(world):
    url = world.to_provider()
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(world.sandbox.issuer + "/authorize?")
    assert query["client_id"] == [CLIENT_ID] and query["response_type"] == ["code"]
    assert query["scope"][0].split()[:2] == ["openid", f"service:{SERVICE}"]
    assert set(query) == {"client_id", "response_type", "scope", "request"}  # the rest is signed
    claims = request_object(world, url)
    assert claims["iss"] == CLIENT_ID and claims["aud"] == world.sandbox.issuer
    assert claims["redirect_uri"] == RETURN and claims["code_challenge_method"] == "S256"
    assert claims["acr_values"] == ACR["advanced"] and claims["ui_locales"] == "fr"
    assert claims["claims"] == {"userinfo": {NRN_CLAIM: None}}
    assert len(claims["nonce"]) >= 32 and claims["state"] and len(claims["code_challenge"]) == 43


def test_an_encrypted_request_object_and_basic_acr_by_configuration(tmp_path, clock, sandbox, key_dir):
    w = make_world(tmp_path, clock, sandbox, key_settings=itsme_settings(
        sandbox, key_dir, encrypt_request_object=True, acr="basic"))
    url = w.to_provider()
    assert parse_qs(urlsplit(url).query)["request"][0].count(".") == 4  # a JWE
    done = w.back_at_sesame(w.in_sandbox(url))
    assert w.portal.parse(autopost_fields(done)[1]["SAMLResponse"]).ava["egovNRN"] == [MARIE_NRN]
    w.services.database.dispose()


def test_ui_locales_follow_the_session_language(world):
    with world.browser.session_transaction() as session:
        session["lang"] = "nl"
    assert request_object(world, world.to_provider())["ui_locales"] == "nl"


# --- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("switch,code,result", [
    ("access_denied", "oidc_cancelled", "access_denied"),
    ("login_required", "oidc_timed_out", "login_required"),
    ("wrong_nonce", "oidc_refused", "wrong_nonce"),
    ("expired", "oidc_refused", "expired"),
    ("not_yet_valid", "oidc_refused", "not_yet_valid"),
    ("bad_signature", "oidc_refused", "bad_signature"),
    ("wrong_iss", "oidc_refused", "wrong_iss"),
    ("wrong_aud", "oidc_refused", "wrong_aud"),
    ("unknown_kid", "oidc_refused", "unknown_kid"),
    ("wrong_encryption_key", "oidc_refused", "bad_encryption"),
    ("not_encrypted", "oidc_refused", "not_encrypted"),
    ("bad_nrn", "oidc_invalid_nrn", "invalid_nrn"),
    ("token_down", "oidc_unavailable", "oidc_unavailable"),
])
def test_a_bad_answer_sends_the_citizen_back_to_the_key_choice(world, switch, code, result):
    state(world.sandbox).misbehave.add(switch)
    answer = world.login()
    assert answer.status_code == 303 and "/login/?tx=" in answer.headers["Location"]
    page = follow(world.browser, answer)
    assert error_code(page) == code and 'id="key-itsme"' in page.get_data(as_text=True)  # another try, or key
    assert "itsme" in html.unescape(page.get_data(as_text=True))  # the message names the provider
    assert 'id="autopost"' not in page.get_data(as_text=True)
    assert [e.result for e in world.audit("login.provider_failed")] == [result]
    assert world.audit("login.success") == [] and session_id(world) is None


def test_the_citizen_refusing_in_the_app_is_a_cancellation(world):
    answer = world.login(decision="refuse")
    assert error_code(follow(world.browser, answer)) == "oidc_cancelled"
    assert world.audit("login.provider_failed")[-1].result == "access_denied"


def test_a_slow_token_endpoint_times_out(tmp_path, clock, sandbox, key_dir):
    w = make_world(tmp_path, clock, sandbox, key_settings=itsme_settings(sandbox, key_dir, timeout_seconds=0.3))
    st = state(sandbox)
    st.misbehave.add("slow_token")
    st.delay = 1.0
    answer = w.login()
    assert error_code(follow(w.browser, answer)) == "oidc_unavailable"
    assert "timed out" in w.audit("login.provider_failed")[-1].detail["reason"]
    w.services.database.dispose()


def test_a_provider_that_is_down_is_a_clear_page_at_the_start(tmp_path, clock, sandbox, key_dir):
    settings = itsme_settings(sandbox, key_dir, issuer=f"http://{HOST}:{free_port()}/v2", timeout_seconds=0.5)
    w = make_world(tmp_path, clock, sandbox, key_settings=settings)
    page = follow(w.browser, send(w.browser, w.portal.request()))
    tx = parse_qs(urlsplit(page.request.url).query)["tx"][0]
    answer = follow(w.browser, w.browser.get(f"/login/itsme/?tx={tx}"))
    assert error_code(answer) == "oidc_unavailable"
    assert w.audit("login.provider_failed")[-1].result == "oidc_unavailable"
    w.services.database.dispose()


@pytest.mark.parametrize("tamper", ["replayed", "forged"])
def test_a_wrong_or_replayed_state_is_refused_by_the_engine(world, tamper):
    back = world.in_sandbox(world.to_provider())
    if tamper == "replayed":
        assert autopost_fields(world.back_at_sesame(back))
    else:
        back = back.replace("state=", "state=x")
    answer = world.back_at_sesame(back)
    assert answer.status_code == 400 and error_code(answer) == "bad_return"
    assert len(world.audit("login.success")) == (1 if tamper == "replayed" else 0)
    assert world.audit("login.return_refused")[-1].result == "bad_return"


def test_a_code_is_redeemed_once(world):
    """A stolen code, brought back with the thief's own fresh state, is refused by the provider."""
    url = world.to_provider()
    back = world.in_sandbox(url)
    code = parse_qs(urlsplit(back).query)["code"][0]
    assert autopost_fields(world.back_at_sesame(back))
    world.browser = world.app.test_client()  # the thief's browser
    url = world.to_provider()
    fresh_state = parse_qs(urlsplit(world.in_sandbox(url)).query)["state"][0]
    answer = world.browser.get(f"/login/itsme/return?code={code}&state={fresh_state}")
    assert error_code(follow(world.browser, answer)) == "oidc_refused"
    assert world.audit("login.provider_failed")[-1].result == "token_refused"


# --- our keys -----------------------------------------------------------------------------
def test_the_jwks_endpoint_publishes_our_public_keys_only(world, key_dir):
    answer = world.app.test_client().get("/keys/itsme/jwks.json")
    assert answer.status_code == 200
    keys = answer.get_json()["keys"]
    assert sorted((k["use"], k["alg"]) for k in keys) == [("enc", "RSA-OAEP"), ("sig", "RS256")]
    assert all("d" not in k and "p" not in k for k in keys)
    assert all(k["kid"] == jwk.JWK(**k).thumbprint() for k in keys)  # stable across restarts
    for name in ("itsme-signing.pem", "itsme-encryption.pem"):
        assert stat.S_IMODE((key_dir / name).stat().st_mode) == 0o600


def test_settings_are_checked_at_start(tmp_path):
    base = {"issuer": "https://idp.e2e.itsme.services/v2", "client_id": "x",
            "signing_key_file": str(tmp_path / "s.pem"), "encryption_key_file": str(tmp_path / "e.pem")}
    with pytest.raises(SettingsError, match="key file"):
        ItsmeAdapter(base)  # missing files, generate_keys off: refused, never made up
    with pytest.raises(SettingsError, match="acr"):
        ItsmeAdapter({**base, "generate_keys": True, "acr": "strong"})
    with pytest.raises(SettingsError, match="issuer"):
        ItsmeAdapter({**base, "issuer": ""})
    with pytest.raises(SettingsError, match="client_secret"):
        ItsmeAdapter({**base, "generate_keys": True, "client_auth": "client_secret_basic"})

"""Interoperability with a second, independent SP implementation: OneLogin's python3-saml.

The SP is registered the way an integrator would do it: python3-saml writes its
own metadata, ``sesame portal add`` (``idp.app.cli.main``) registers that file
against the same TOML configuration (data folder, SQLite database, signing key)
as the Sésame app under test.  python3-saml then drives Sésame through the
Flask test client in strict mode: HTTP-Redirect AuthnRequest, HTTP-POST
Response checked by python3-saml (signature, Destination, Recipient, audience,
InResponseTo, times, schema), SSO reuse, and signed single logout.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from idp import create_app
from idp.app.cli import main as sesame
from idp.clock import Clock
from idp.app.config import load_settings
from idp.app.demo import create_citizens
from idp.persistence.models import AuditEvent
from idp.app.services import Services
from keys.generate import generate_key_pair
from tests.conftest import idp_settings
from tests.saml_sp import audit_events, autopost_fields, follow, login_with_password

SP_BASE = "http://localhost:18090"
SP_ENTITY_ID = f"{SP_BASE}/metadata"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
FAS100 = "urn:be:fedict:iam:fas:citizen:Level100"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
MARIE = {"surname": ["Dupont"], "givenName": ["Marie"], "mail": ["marie.dupont@example.be"]}


@pytest.fixture(scope="module")
def sp_keys() -> tuple[str, str]:
    """The SP's key pair, made at run time (2048 bits: quicker, still accepted)."""
    key_pem, cert_pem = generate_key_pair(common_name="python3-saml interop SP", key_size=2048)
    return key_pem.decode(), cert_pem.decode()


@dataclass
class World:
    app: object
    services: Services
    config: Path
    base_url: str
    idp_metadata: str
    sp_keys: tuple[str, str]
    tmp_path: Path
    registered: list = field(default_factory=list)

    # -- python3-saml side ---------------------------------------------------------
    def settings(self, **security) -> dict:
        key_pem, cert_pem = self.sp_keys
        sec = {
            "authnRequestsSigned": True, "logoutRequestSigned": True, "logoutResponseSigned": True,
            "wantAssertionsSigned": True, "wantMessagesSigned": False, "wantNameId": True,
            "signatureAlgorithm": RSA_SHA256, "digestAlgorithm": SHA256,
            "requestedAuthnContext": False, "rejectDeprecatedAlgorithm": True,
        }
        sec.update(security)
        settings = {
            "strict": True, "debug": False,
            "sp": {
                "entityId": SP_ENTITY_ID,
                "assertionConsumerService": {
                    "url": f"{SP_BASE}/acs", "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
                "singleLogoutService": {
                    "url": f"{SP_BASE}/sls", "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"},
                "NameIDFormat": TRANSIENT,
                "x509cert": cert_pem, "privateKey": key_pem,
            },
        }
        # The parser turns the IdP's WantAuthnRequestsSigned="false" into security.authnRequestsSigned
        # False, and merge_settings lets it win: the SP's own security choices are laid on top afterwards.
        merged = OneLogin_Saml2_IdPMetadataParser.merge_settings(
            settings, OneLogin_Saml2_IdPMetadataParser.parse(self.idp_metadata))
        merged.setdefault("security", {}).update(sec)
        return merged

    # -- the integrator's registration --------------------------------------------
    def register(self, settings: dict, *extra: str) -> str:
        """Write python3-saml's SP metadata to a file and ``sesame portal add`` it."""
        xml = OneLogin_Saml2_Settings(settings, sp_validation_only=True).get_sp_metadata()
        path = self.tmp_path / f"python3-saml-sp-{len(self.registered)}.xml"
        path.write_bytes(xml if isinstance(xml, bytes) else xml.encode())
        argv = ["--config", str(self.config), "portal", "add", str(path),
                "--attributes", "surname,givenName,mail", "--accepted-keys", "password",
                "--nameid-format", "transient", *extra]
        if self.registered:
            argv.append("--replace")
        assert sesame(argv) == 0
        # A running worker sees a replacement within registry.refresh_seconds; the test does not wait.
        self.services.registry.refresh()
        self.registered.append(path)
        return xml.decode() if isinstance(xml, bytes) else xml


def request_data(script_name: str, *, get_data: dict | None = None, post_data: dict | None = None,
                 query_string: str | None = None) -> dict:
    data = {"https": "off", "http_host": "localhost:18090", "script_name": script_name,
            "get_data": get_data or {}, "post_data": post_data or {}}
    if query_string is not None:
        data["query_string"] = query_string
    return data


@pytest.fixture
def world(tmp_path, sp_keys) -> World:
    """Sésame (app) and the CLI on one TOML configuration: same data folder, database and key.

    Each world has its own IdP entity ID: idp.views.saml caches the signed IdP metadata per
    process by entity ID alone, so a second app with the same entity ID (and another key)
    would be served the first one's certificate (see test_metadata_is_this_apps_own).
    """
    base_url = f"http://idp-{secrets.token_hex(4)}.test"
    config = tmp_path / "sesame.toml"
    config.write_text(f"""
[server]
base_url = "{base_url}"
data_dir = "{tmp_path / 'idp'}"
demo = true

[store]
url = "sql"

[log]
format = "text"
level = "WARNING"
""", encoding="utf-8")
    settings = idp_settings(tmp_path, base_url=base_url)
    cli_settings = load_settings(str(config), environ={})
    assert (settings.data_dir, settings.database_url) == (cli_settings.data_dir, cli_settings.database_url)
    services = Services.build(settings, clock=Clock())  # python3-saml checks times against the wall clock
    create_citizens(services)
    app = create_app(services=services)
    metadata = app.test_client().get("/saml/metadata")
    assert metadata.status_code == 200
    world = World(app, services, config, base_url, metadata.get_data(as_text=True), sp_keys, tmp_path)
    assert services.signer.certificate_b64() in world.idp_metadata
    return world


# -- helpers -----------------------------------------------------------------------
def start_login(world: World, browser, settings: dict, **login_kwargs):
    """python3-saml's AuthnRequest (HTTP-Redirect) sent to Sésame; returns (request ID, its URL, answer)."""
    auth = OneLogin_Saml2_Auth(request_data("/"), settings)
    url = urlsplit(auth.login(return_to="/after", **login_kwargs))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{world.base_url}/saml/sso"
    return auth.get_last_request_id(), url, browser.get(f"{url.path}?{url.query}")


def consume(settings: dict, fields: dict, request_id: str) -> OneLogin_Saml2_Auth:
    """python3-saml's ACS: the posted Response, processed in strict mode."""
    auth = OneLogin_Saml2_Auth(request_data("/acs", post_data={"SAMLResponse": fields["SAMLResponse"],
                                                               "RelayState": fields["RelayState"]}), settings)
    auth.process_response(request_id=request_id)
    return auth


def assert_accepted(auth: OneLogin_Saml2_Auth) -> None:
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()
    assert auth.get_attributes() == MARIE
    assert auth.get_nameid_format() == TRANSIENT
    assert auth.get_nameid()
    assert auth.get_session_index()


def login(world: World, browser, settings: dict, **login_kwargs):
    """Full login of marie.dupont; returns (python3-saml auth after the ACS, posted fields)."""
    request_id, _, answer = start_login(world, browser, settings, **login_kwargs)
    page = follow(browser, answer)
    assert page.status_code == 200 and "login/password" in page.get_data(as_text=True)
    action, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    assert action == f"{SP_BASE}/acs"
    assert fields["RelayState"] == "/after"
    return consume(settings, fields, request_id), fields


def audit(services, event: str) -> list[AuditEvent]:
    return audit_events(services, event)


# -- tests -------------------------------------------------------------------------
def test_cli_registers_python3_saml_metadata(world, capsys):
    settings = world.settings()
    xml = world.register(settings)
    assert f"registered {SP_ENTITY_ID}" in capsys.readouterr().out
    assert 'AuthnRequestsSigned="true"' in xml and 'WantAssertionsSigned="true"' in xml
    portal = world.services.registry.get(SP_ENTITY_ID)  # the app sees what the CLI wrote
    assert portal is not None
    assert [a.location for a in portal.metadata.acs] == [f"{SP_BASE}/acs"]
    assert [e.location for e in portal.metadata.slo] == [f"{SP_BASE}/sls"]
    assert portal.metadata.authn_requests_signed and portal.metadata.want_assertions_signed
    assert portal.metadata.signing_certs
    assert portal.policy.attributes == ("surname", "givenName", "mail")
    assert portal.policy.accepted_keys == ("password",)


@pytest.mark.parametrize("signed", [True, False], ids=["signed-request", "unsigned-request"])
def test_login_round_trip(world, signed):
    settings = world.settings(authnRequestsSigned=signed)
    world.register(settings)
    browser = world.app.test_client()
    request_id, url, answer = start_login(world, browser, settings)
    assert ("Signature" in parse_qs(url.query)) is signed
    page = follow(browser, answer)
    assert "login/password" in page.get_data(as_text=True)
    action, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    assert action == f"{SP_BASE}/acs" and fields["RelayState"] == "/after"
    auth = consume(settings, fields, request_id)
    assert_accepted(auth)
    assert auth.get_last_authn_contexts() == [FAS100]
    assert auth.get_last_message_id() and auth.get_last_assertion_id()
    (event,) = [e for e in audit(world.services, "saml.response") if e.portal == SP_ENTITY_ID]
    assert event.request_id == request_id and event.detail["signed_request"] is signed


def test_signed_metadata_demands_signed_requests(world):
    """Metadata saying AuthnRequestsSigned="true": an unsigned request is refused, not answered."""
    world.register(world.settings(authnRequestsSigned=True))
    browser = world.app.test_client()
    _, _, answer = start_login(world, browser, world.settings(authnRequestsSigned=False))
    assert answer.status_code == 400
    assert 'data-code="signature_required"' in answer.get_data(as_text=True)


def test_requested_fas_level_is_stated_back(world):
    settings = world.settings(requestedAuthnContext=[FAS100])
    world.register(settings)
    auth, _ = login(world, world.app.test_client(), settings)
    assert_accepted(auth)
    assert auth.get_last_authn_contexts() == [FAS100]


def test_python3_saml_default_context_password_protected_transport(world):
    """python3-saml's default RequestedAuthnContext (PasswordProtectedTransport, exact) is met by the password key."""
    settings = world.settings(requestedAuthnContext=True)
    world.register(settings)
    auth, _ = login(world, world.app.test_client(), settings)
    assert_accepted(auth)
    assert auth.get_last_authn_contexts() == [PASSWORD_PROTECTED]


def test_sso_reuse_skips_the_login_page(world):
    settings = world.settings()
    world.register(settings)
    browser = world.app.test_client()
    first, _ = login(world, browser, settings)
    assert_accepted(first)
    request_id, _, answer = start_login(world, browser, settings)
    action, fields = autopost_fields(answer)  # straight to the autopost page
    assert action == f"{SP_BASE}/acs"
    second = consume(settings, fields, request_id)
    assert_accepted(second)
    assert second.get_session_index() == first.get_session_index()
    # transient: random, and the same for this portal for the rest of the SSO session
    # (kept in the session, so a response from the session writes nothing to the store)
    assert second.get_nameid() == first.get_nameid()
    assert [e.portal for e in audit(world.services, "sso.reuse")] == [SP_ENTITY_ID]


def test_want_messages_signed_with_default_policy_is_refused_by_python3_saml(world):
    """SAML metadata cannot say "sign the Response"; with the default policy (``metadata``) Sésame
    signs only the assertion, as WantAssertionsSigned asks, and python3-saml refuses it."""
    settings = world.settings(wantMessagesSigned=True)
    world.register(settings)
    auth, _ = login(world, world.app.test_client(), settings)
    assert not auth.is_authenticated()
    assert auth.get_errors() == ["invalid_response"]
    assert auth.get_last_error_reason() == "The Message of the Response is not signed and the SP require it"


def test_want_messages_signed_with_sign_both(world):
    settings = world.settings(wantMessagesSigned=True)
    world.register(settings, "--sign", "both")
    auth, _ = login(world, world.app.test_client(), settings)
    assert_accepted(auth)


def test_single_logout(world):
    settings = world.settings()
    world.register(settings)
    browser = world.app.test_client()
    done, _ = login(world, browser, settings)
    assert_accepted(done)

    auth = OneLogin_Saml2_Auth(request_data("/"), settings)
    url = urlsplit(auth.logout(return_to="/bye", name_id=done.get_nameid(), session_index=done.get_session_index(),
                               name_id_format=done.get_nameid_format(), spnq=done.get_nameid_spnq(),
                               nq=done.get_nameid_nq()))
    logout_id = auth.get_last_request_id()
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{world.base_url}/saml/slo"
    assert "Signature" in parse_qs(url.query)
    answer = browser.get(f"{url.path}?{url.query}")
    if answer.status_code == 303:  # HTTP-Redirect back at the SLS
        back = urlsplit(answer.headers["Location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == f"{SP_BASE}/sls"
        get_data = {k: v[0] for k, v in parse_qs(back.query).items()}
        assert get_data.get("RelayState") == "/bye"
        assert get_data.get("SigAlg") == RSA_SHA256 and get_data.get("Signature")
        # wantMessagesSigned at the SLS: python3-saml demands and checks the redirect signature
        sls = OneLogin_Saml2_Auth(request_data("/sls", get_data=get_data, query_string=back.query),
                                  world.settings(wantMessagesSigned=True))
        sls.process_slo(request_id=logout_id)
    else:  # python3-saml's SLS reads HTTP-Redirect only, and its metadata lists only that binding
        pytest.fail(f"Sésame did not answer by HTTP-Redirect: {answer.status_code} {answer.get_data(as_text=True)[:300]}")
    assert sls.get_errors() == [], sls.get_last_error_reason()
    ended = [e for e in audit(world.services, "logout") if e.portal == SP_ENTITY_ID]
    assert [e.result for e in ended] == ["ok"]

    # the SSO session is gone: the next login request shows the login page again
    _, _, again = start_login(world, browser, settings)
    page = follow(browser, again)
    assert page.status_code == 200 and "login/password" in page.get_data(as_text=True)


def test_metadata_is_this_apps_own(tmp_path):
    """Two Sésame apps in one process, same entity ID, different signing keys: each must publish its own
    certificate, else python3-saml (configured from the metadata) rejects every signed response."""
    base_url = f"http://idp-{secrets.token_hex(4)}.test"
    served = []
    for name in ("first", "second"):
        services = Services.build(idp_settings(tmp_path / name, base_url=base_url), clock=Clock())
        xml = create_app(services=services).test_client().get("/saml/metadata").get_data(as_text=True)
        idp = OneLogin_Saml2_IdPMetadataParser.parse(xml)["idp"]
        served.append((idp["x509cert"], services.signer.certificate_b64()))
    assert served[0][1] != served[1][1]  # two keys
    assert [published == own for published, own in served] == [True, True]


# -- RelayState: python3-saml sends its whole return URL ---------------------------
DEEP_LINK = (f"{SP_BASE}/mes-demarches/dossiers/2026-BXL-000123/pieces-justificatives/attestation-de-residence"
             "?onglet=documents&tri=date&ordre=desc&filtre=en-attente-de-validation"
             "&retour=%2Fmes-demarches%2Fdossiers%3Fpage%3D3%26statut%3Douvert&langue=fr&utm_source=courriel"
             "&utm_campaign=rappel-2026&ref=l'avis")


def test_deep_link_relay_state_round_trip(world):
    """A ~300-character deep link comes back unchanged, escaped in the auto-post page."""
    assert 290 <= len(DEEP_LINK.encode()) <= 320
    settings = world.settings()
    world.register(settings)
    browser = world.app.test_client()
    auth = OneLogin_Saml2_Auth(request_data("/"), settings)
    url = urlsplit(auth.login(return_to=DEEP_LINK))
    assert parse_qs(url.query)["RelayState"] == [DEEP_LINK]  # python3-saml's RelayState is the URL itself
    page = follow(browser, browser.get(f"{url.path}?{url.query}"))
    assert page.status_code == 200 and "login/password" in page.get_data(as_text=True)
    done = login_with_password(browser, page, username="marie.dupont")
    assert DEEP_LINK not in done.get_data(as_text=True)  # its & and ' are escaped in the page
    action, fields = autopost_fields(done)
    assert action == f"{SP_BASE}/acs" and fields["RelayState"] == DEEP_LINK
    back = consume(settings, fields, auth.get_last_request_id())
    assert_accepted(back)


def test_relay_state_over_the_bound_is_refused_with_a_clear_page(world):
    settings = world.settings()
    world.register(settings)
    too_long = DEEP_LINK + "&x=" + "y" * (1025 - len(DEEP_LINK) - 3)
    assert len(too_long.encode()) == 1025  # [saml] max_relay_state_bytes is 1024
    browser = world.app.test_client()
    auth = OneLogin_Saml2_Auth(request_data("/"), settings)
    url = urlsplit(auth.login(return_to=too_long))
    answer = browser.get(f"{url.path}?{url.query}")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 400 and 'data-code="malformed_request"' in body
    assert "illisible ou incomplète" in body and 'id="autopost"' not in body and "Traceback" not in body
    (event,) = audit(world.services, "saml.rejected")
    assert event.detail["reason"] == "RelayState of 1025 bytes, more than the 1024 allowed"

"""The generic OpenID Connect connector (``adapters/oidc``) apart from itsme:

* the same connector, configured as a plain relying party, logs in against the
  sandbox configured as a plain OpenID Connect provider (no request object,
  ``client_secret_basic`` or ``private_key_jwt``, an ID token signed and not
  encrypted, userinfo as JSON, no ``service:`` scope), through a key declared
  in the test with nothing but an id, a group and a level;
* the discovery document and the JWKS are fetched once and cached; an
  unknown ``kid`` fetches the JWKS once more (a provider rolling its keys);
* JOSE: ``alg: none`` and HMAC signatures are refused.
"""
from __future__ import annotations

import base64
import json
import time

import pytest
from jwcrypto import jwk
from sqlalchemy import func, select

from adapters import ADAPTERS
from adapters.base import Group
from adapters.oidc import OidcKey, jose
from adapters.oidc.nrn import check_nrn, normalize_nrn
from adapters.oidc.provider import HttpAnswer, Provider, ProviderUnavailable, UrllibHttp
from idp.app.demo import make_nrn
from idp.persistence.models import Credential
from sandbox.itsme import NRN_CLAIM, client
from tests.live import HOST, free_port
from tests.saml_sp import autopost_fields
from tests.test_itsme_key import CLIENT_ID, key_dir, make_world, sandbox  # noqa: F401  (fixtures)


class PartnerKey(OidcKey):
    """Another partner's OpenID provider: the connector and configuration, nothing else."""

    id = "partner"
    group = Group.EID
    level = 400
    levels = (400, 400)


KEY_TYPES = {**ADAPTERS, PartnerKey.id: PartnerKey}
RETURN = "http://idp.test/login/partner/return"


def partner_settings(sandbox, key_dir, **extra) -> dict:
    return {"display_name": "Partenaire", "issuer": sandbox.issuer, "client_id": CLIENT_ID,
            "scopes": ["profile", "email"], "timeout_seconds": 2.0, **extra}


@pytest.mark.parametrize("auth", ["client_secret_basic", "private_key_jwt"])
def test_the_same_connector_logs_in_against_a_plain_provider(tmp_path, clock, sandbox, key_dir, auth):
    settings = partner_settings(sandbox, key_dir, client_auth=auth)
    if auth == "client_secret_basic":
        settings["client_secret"] = "s3cret:with/odd chars"
    else:
        settings.update(signing_key_file=str(key_dir / "partner-signing.pem"), generate_keys=True)
    registered = client(redirect_uris=[RETURN], auth=auth, secret="s3cret:with/odd chars", encrypt=False,
                        request_object=False, service_codes=())
    w = make_world(tmp_path, clock, sandbox, key="partner", key_settings=settings, key_types=KEY_TYPES,
                   min_level=400, sandbox_client=registered)
    url = w.to_provider()
    assert "request=" not in url and "service%3A" not in url and "code_challenge_method=S256" in url
    done = w.login()
    response = w.portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert (response.ava["givenName"], response.ava["surname"]) == (["Marie"], ["Dupont"])
    assert "egovNRN" not in response.ava  # no register number asked: the person is linked by the provider's sub
    assert [(e.key, e.level) for e in w.audit("login.success")] == [("partner", 400)]
    # The second login finds the same person through the link the first one made.
    w.browser = w.app.test_client()
    assert autopost_fields(w.login())
    with w.services.database.session() as s:
        assert s.scalar(select(func.count()).select_from(Credential).where(Credential.key == "partner")) == 1
    w.services.database.dispose()


def test_a_plain_provider_may_give_the_register_number_by_configuration(tmp_path, clock, sandbox, key_dir):
    settings = partner_settings(sandbox, key_dir, client_auth="client_secret_basic", client_secret="x",
                                scopes=["profile", "eid"], nrn_claim=NRN_CLAIM)
    registered = client(redirect_uris=[RETURN], auth="client_secret_basic", secret="x", encrypt=False,
                        request_object=False, service_codes=())
    w = make_world(tmp_path, clock, sandbox, key="partner", key_settings=settings, key_types=KEY_TYPES,
                   min_level=400, sandbox_client=registered)
    response = w.portal.parse(autopost_fields(w.login())[1]["SAMLResponse"])
    assert response.ava["egovNRN"] == ["85031412302"]  # Marie, found by her register number
    w.services.database.dispose()


def test_a_client_authentication_the_provider_does_not_know_is_refused(tmp_path, clock, sandbox, key_dir):
    registered = client(redirect_uris=[RETURN], auth="client_secret_basic", secret="x", encrypt=False,
                        request_object=False, service_codes=())
    w = make_world(tmp_path, clock, sandbox, key="partner", key_types=KEY_TYPES, min_level=400,
                   sandbox_client=registered, key_settings=partner_settings(
                       sandbox, key_dir, client_auth="client_secret_post", client_secret="x"))
    assert w.login().status_code == 303
    assert w.audit("login.provider_failed")[-1].result == "token_refused"
    w.services.database.dispose()


def test_an_encrypted_token_without_our_encryption_key_is_refused(tmp_path, clock, sandbox, key_dir):
    """Configured without an encryption key, an encrypted ID token is refused, not guessed at."""
    stranger = json.loads(jwk.JWK.generate(kty="RSA", size=2048, use="enc").export_public())
    registered = client(redirect_uris=[RETURN], auth="client_secret_basic", secret="x", encrypt=True,
                        request_object=False, service_codes=(), jwks={"keys": [stranger]})
    settings = partner_settings(sandbox, key_dir, client_auth="client_secret_basic", client_secret="x")
    w = make_world(tmp_path, clock, sandbox, key="partner", key_types=KEY_TYPES, min_level=400,
                   sandbox_client=registered, key_settings=settings)
    w.login()
    assert w.audit("login.provider_failed")[-1].result == "bad_encryption"
    w.services.database.dispose()


# --- discovery and JWKS, cached ---------------------------------------------------------------
class CountingHttp:
    def __init__(self, documents: dict) -> None:
        self.documents, self.calls = documents, []

    def get(self, url, headers=None):
        self.calls.append(url)
        if url not in self.documents:
            return HttpAnswer(404, "text/html", b"")
        return HttpAnswer(200, "application/json", json.dumps(self.documents[url]).encode())

    def post(self, url, form, headers=None):
        raise AssertionError("no POST expected")


ISSUER = "https://op.example"
CONFIG = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/a", "token_endpoint": f"{ISSUER}/t",
          "jwks_uri": f"{ISSUER}/jwks"}


def test_discovery_and_jwks_are_cached_and_an_unknown_kid_refreshes_once():
    now = [1000.0]
    key = jwk.JWK.generate(kty="RSA", size=2048, kid="k1", use="sig")
    http = CountingHttp({f"{ISSUER}/.well-known/openid-configuration": CONFIG,
                         f"{ISSUER}/jwks": {"keys": [json.loads(key.export_public())]}})
    provider = Provider(ISSUER, http, clock=lambda: now[0], ttl=3600, refresh_interval=30)
    token = jose.sign({"sub": "x"}, key, "RS256")
    assert jose.verify(token, provider.jwks) == {"sub": "x"}
    assert jose.verify(token, provider.jwks) == {"sub": "x"}
    assert len(http.calls) == 2  # discovery once, JWKS once
    stranger = jwk.JWK.generate(kty="RSA", size=2048, kid="k2", use="sig")
    now[0] += 60
    with pytest.raises(jose.JoseError, match="unknown_kid"):
        jose.verify(jose.sign({"sub": "x"}, stranger, "RS256"), provider.jwks)
    assert len(http.calls) == 3  # one refresh for the unknown kid...
    with pytest.raises(jose.JoseError, match="unknown_kid"):
        jose.verify(jose.sign({"sub": "x"}, stranger, "RS256"), provider.jwks)
    assert len(http.calls) == 3  # ...and not again within refresh_interval
    now[0] += 3601
    provider.config()
    assert len(http.calls) == 4  # the discovery document expires after ttl


def test_discovery_naming_another_issuer_is_refused():
    http = CountingHttp({f"{ISSUER}/.well-known/openid-configuration": {**CONFIG, "issuer": "https://evil"}})
    with pytest.raises(ProviderUnavailable, match="another issuer"):
        Provider(ISSUER, http, clock=time.monotonic, ttl=60).config()


def test_unsigned_and_hmac_tokens_are_refused():
    key = jwk.JWK.generate(kty="RSA", size=2048, kid="k1", use="sig")
    jwks = lambda refresh: {"keys": [json.loads(key.export_public())]}  # noqa: E731
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    with pytest.raises(jose.JoseError):
        jose.verify(f'{b64({"alg": "none", "kid": "k1"})}.{b64({"sub": "x"})}.', jwks)
    secret = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode(), kid="k1")
    with pytest.raises(jose.JoseError):
        jose.verify(jose.sign({"sub": "x"}, secret, "HS256"), jwks)


def test_urllib_http_times_out_on_a_silent_server():
    import socket

    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind((HOST, 0))
        silent.listen(1)
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="timed out"):
            UrllibHttp(0.3).get(f"http://{HOST}:{silent.getsockname()[1]}/")
        assert time.monotonic() - started < 2
    with pytest.raises(ProviderUnavailable):
        UrllibHttp(0.3).get(f"http://{HOST}:{free_port()}/")  # nobody listens
    with pytest.raises(ProviderUnavailable):
        UrllibHttp(0.3).get("file:///etc/passwd")


def test_register_numbers_are_checked_like_the_directory_does():
    import datetime as dt

    from idp.people.directory import check_nrn as directory_check

    for birth, serial in ((dt.date(1985, 3, 14), 123), (dt.date(2001, 11, 30), 208), (dt.date(2000, 1, 1), 1)):
        nrn = make_nrn(birth, serial)
        bad = nrn[:9] + f"{(int(nrn[9:]) + 1) % 100:02d}"
        assert check_nrn(nrn) and directory_check(nrn) and not check_nrn(bad) and not directory_check(bad)
    assert normalize_nrn("85.03.14-123.02") == "85031412302"
    assert not check_nrn("") and not check_nrn("8503141230x")

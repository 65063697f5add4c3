"""A generic OpenID Connect relying party as a digital key: the authorization
code flow, out by redirect and back at ``/login/<id>/return``.

Everything provider-specific is configuration (``OidcSettings``): itsme's
profile (``adapters/itsme``) is this class with a signed (optionally
encrypted) request object, ``private_key_jwt``, a ``service:`` scope and
tokens signed then encrypted; a plain provider is the same class with none of
that.  What the connector always does: ``state`` (the engine's signed,
single-use return state), ``nonce`` and PKCE S256 kept in the key's namespace
of the journey, the ID token checked (signature by ``kid`` against the
provider's JWKS, ``iss``, ``aud``, ``exp``, ``iat``, ``nbf``, ``nonce``), the
userinfo answer tied to the ID token's ``sub``.

Every refusal is audited (``login.provider_failed``) and ends with a
``Failure`` whose message, in the citizen's language, offers another key.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, urlencode

from flask_babel import lazy_gettext as _l

from adapters.base import Adapter, AuthResult, Failure, Json, Redirect, Subject, SubjectKind, Success
from adapters.oidc import jose
from adapters.oidc.nrn import check_nrn, normalize_nrn
from adapters.oidc.provider import Http, Provider, ProviderUnavailable, UrllibHttp
from adapters.settings import KeySettings, SettingsError

CANCELLED, TIMED_OUT, UNAVAILABLE, REFUSED, INVALID_NRN = (
    "oidc_cancelled", "oidc_timed_out", "oidc_unavailable", "oidc_refused", "oidc_invalid_nrn")
CLIENT_AUTHS = ("private_key_jwt", "client_secret_basic", "client_secret_post")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class OidcSettings(KeySettings):
    display_name: str = "OpenID Connect"     # the provider's name in the citizen's messages
    issuer: str = ""                         # discovery: <issuer>/.well-known/openid-configuration
    client_id: str = ""
    client_auth: str = "private_key_jwt"     # or client_secret_basic, client_secret_post
    client_secret: str = ""
    scopes: tuple[str, ...] = ("profile", "email")   # beside "openid"
    service_code: str = ""                   # itsme: adds the scope service:<code>
    acr_values: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()             # asked by name in the claims parameter
    request_object: bool = False             # send the request as a signed JWT (OIDC Core §6.1)
    encrypt_request_object: bool = False     # ...encrypted to the provider's "enc" key
    request_object_enc_alg: str = "RSA-OAEP"
    request_object_enc: str = "A128CBC-HS256"
    require_encrypted_tokens: bool = False   # refuse an ID token or userinfo that is only signed
    use_userinfo: bool = True                # ask the userinfo endpoint for the claims
    pkce: bool = True
    signing_key_file: str = ""               # our private keys (PEM, 0600): request object, client assertion
    encryption_key_file: str = ""            # ...and what the provider encrypts to
    generate_keys: bool = False              # create missing key files at start (demo)
    signing_alg: str = "RS256"
    encryption_alg: str = "RSA-OAEP"         # published with our encryption key
    nrn_claim: str = ""                      # the claim holding the national register number; "" = none
    timeout_seconds: float = 5.0             # every call to the provider
    discovery_ttl_seconds: int = 3600
    clock_skew_seconds: int = 60
    max_token_age_seconds: int = 600         # an ID token issued longer ago is refused
    assertion_lifetime_seconds: int = 60     # our private_key_jwt assertion and request object


class OidcKey(Adapter):
    """Subclasses set ``id``, ``group``, ``level``/``levels`` and their ``Settings`` defaults."""

    Settings = OidcSettings
    ports = frozenset({"clock", "audit"})
    return_state_param = "state"
    provisions_people = True   # the national register vouches for a person we may not know yet
    messages = {
        CANCELLED: _l("Vous avez refusé ou annulé la connexion avec %(provider)s. Vous pouvez réessayer, "
                      "ou choisir une autre clé numérique."),
        TIMED_OUT: _l("La connexion avec %(provider)s n'a pas été confirmée à temps. Vous pouvez réessayer, "
                      "ou choisir une autre clé numérique."),
        UNAVAILABLE: _l("%(provider)s ne répond pas pour le moment. Réessayez dans quelques minutes, "
                        "ou choisissez une autre clé numérique."),
        REFUSED: _l("La réponse de %(provider)s n'a pas pu être vérifiée : pour votre sécurité, la connexion "
                    "est refusée. Réessayez, ou choisissez une autre clé numérique."),
        INVALID_NRN: _l("%(provider)s ne nous a pas communiqué de numéro de registre national valable. "
                        "Choisissez une autre clé numérique, par exemple votre carte d'identité électronique."),
    }

    def __init__(self, settings: Mapping[str, Any] | None = None, *, http: Http | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        where = f"[keys.{self.id}]"
        if not s.issuer or not s.client_id:
            raise SettingsError(f"{where} issuer and client_id are required")
        if s.client_auth not in CLIENT_AUTHS:
            raise SettingsError(f"{where} client_auth {s.client_auth!r} unknown; known: {', '.join(CLIENT_AUTHS)}")
        if s.client_auth.startswith("client_secret") and not s.client_secret:
            raise SettingsError(f"{where} client_auth {s.client_auth} needs client_secret")
        needs_signing = s.client_auth == "private_key_jwt" or s.request_object
        self.signing_key = self._key(s.signing_key_file, "sig", required=needs_signing)
        self.encryption_key = self._key(s.encryption_key_file, "enc", required=s.require_encrypted_tokens)
        self.http = http or UrllibHttp(s.timeout_seconds)
        # The provider reaches the network through this key's ``get``/``post``, that is ``self.http``.
        self.provider = Provider(s.issuer, self, clock=time.monotonic, ttl=s.discovery_ttl_seconds)

    def _key(self, path: str, use: str, *, required: bool):
        if not path:
            if required:
                raise SettingsError(f"[keys.{self.id}] needs {'signing' if use == 'sig' else 'encryption'}_key_file")
            return None
        try:
            return jose.load_key(Path(path), generate=self.settings.generate_keys, use=use)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"[keys.{self.id}] key file: {exc} (generate_keys = true creates it)") from None

    def get(self, url, headers=None):
        return self.http.get(url, headers)

    def post(self, url, form, headers=None):
        return self.http.post(url, form, headers)

    # --- what the engine asks ------------------------------------------------------------
    def public_endpoints(self):
        return {"jwks.json": lambda public: Json(self.jwks())}

    def jwks(self) -> dict:
        """Our public keys, at /keys/<id>/jwks.json: the provider checks our request
        objects and client assertions with the "sig" key, encrypts to the "enc" key."""
        keys = [k for k in (self.signing_key, self.encryption_key) if k is not None]
        return jose.public_jwks(*keys, algs={"sig": self.settings.signing_alg, "enc": self.settings.encryption_alg})

    def scope(self) -> list[str]:
        scopes = ["openid"] + ([f"service:{self.settings.service_code}"] if self.settings.service_code else [])
        return scopes + [s for s in self.settings.scopes if s not in scopes]

    def acr_values(self) -> tuple[str, ...]:
        return self.settings.acr_values

    # --- out -------------------------------------------------------------------------------
    def begin(self, ctx):
        s = self.settings
        ctx.state.clear()  # a new start forgets a half-done trip
        try:
            config = self.provider.config()
        except ProviderUnavailable as exc:
            return self._fail(ctx, UNAVAILABLE, f"discovery: {exc}")
        nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        ctx.state.update(nonce=nonce, verifier=verifier)
        params: dict[str, Any] = {
            "response_type": "code", "client_id": s.client_id, "redirect_uri": ctx.return_url(),
            "scope": " ".join(self.scope()), "state": ctx.new_return_state(), "nonce": nonce,
            "ui_locales": ctx.lang or "fr"}
        if s.pkce:
            params.update(code_challenge=_b64(hashlib.sha256(verifier.encode()).digest()),
                          code_challenge_method="S256")
        if self.acr_values():
            params["acr_values"] = " ".join(self.acr_values())
        if s.claims:
            params["claims"] = {"userinfo" if s.use_userinfo else "id_token": {c: None for c in s.claims}}
        if s.request_object:
            now = int(ctx.ports.clock.now())
            signed = jose.sign({**params, "iss": s.client_id, "aud": config["issuer"], "iat": now,
                                "exp": now + s.assertion_lifetime_seconds, "jti": secrets.token_urlsafe(16)},
                               self.signing_key, s.signing_alg)
            if s.encrypt_request_object:
                try:
                    target = jose.pick_key(self.provider.jwks(), "enc")
                except ProviderUnavailable as exc:
                    return self._fail(ctx, UNAVAILABLE, f"jwks: {exc}")
                if target is None:
                    return self._fail(ctx, UNAVAILABLE, "the provider publishes no encryption key")
                signed = jose.encrypt(signed, target, s.request_object_enc_alg, s.request_object_enc)
            # OIDC Core §6.1: these stay in the query too, the request object wins.
            query = {"client_id": s.client_id, "response_type": "code", "scope": params["scope"], "request": signed}
        else:
            query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
        endpoint = config["authorization_endpoint"]
        return Redirect(f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}")

    # --- back ------------------------------------------------------------------------------
    def callback(self, ctx, params):
        nonce, verifier = ctx.state.pop("nonce", None), ctx.state.pop("verifier", None)
        if nonce is None:
            return self._fail(ctx, REFUSED, "no trip of this key in progress")
        if params.get("error"):
            error = str(params["error"])[:64]
            code = {"access_denied": CANCELLED, "login_required": TIMED_OUT, "temporarily_unavailable": UNAVAILABLE,
                    "server_error": UNAVAILABLE}.get(error, REFUSED)
            return self._fail(ctx, code, f"provider answered {error}", result=error)
        if not params.get("code"):
            return self._fail(ctx, REFUSED, "no code")
        try:
            config = self.provider.config()
            tokens = self._redeem(ctx, config, params["code"], verifier)
            claims = self._open(tokens.get("id_token"))
            self._check_id_token(ctx, config, claims, nonce)
            if self.settings.use_userinfo and config.get("userinfo_endpoint") and tokens.get("access_token"):
                claims = {**self._userinfo(config, tokens["access_token"], claims), **claims}
        except ProviderUnavailable as exc:
            return self._fail(ctx, UNAVAILABLE, str(exc))
        except jose.JoseError as exc:
            return self._fail(ctx, REFUSED, exc.detail, result=exc.code)
        return self._success(ctx, config, claims)

    def action(self, ctx, step):
        return Failure("unknown_step")

    def _redeem(self, ctx, config: dict, code: str, verifier: str | None) -> dict:
        """The token endpoint's answer to our code (RFC 6749 §4.1.3), authenticated as configured."""
        s = self.settings
        endpoint = config["token_endpoint"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ctx.return_url()}
        if s.pkce and verifier:
            form["code_verifier"] = verifier
        headers = {}
        if s.client_auth == "private_key_jwt":  # RFC 7523: short-lived, unique jti, audience the endpoint
            now = int(ctx.ports.clock.now())
            form.update(client_id=s.client_id, client_assertion_type=JWT_BEARER, client_assertion=jose.sign(
                {"iss": s.client_id, "sub": s.client_id, "aud": endpoint, "jti": secrets.token_urlsafe(24),
                 "iat": now, "exp": now + s.assertion_lifetime_seconds}, self.signing_key, s.signing_alg))
        elif s.client_auth == "client_secret_basic":  # RFC 6749 §2.3.1: form-encoded, then Basic
            pair = f"{quote(s.client_id, safe='')}:{quote(s.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form.update(client_id=s.client_id, client_secret=s.client_secret)
        answer = self.http.post(endpoint, form, headers)
        if answer.status >= 500:
            raise ProviderUnavailable(f"token endpoint answered {answer.status}")
        body = answer.json()
        if answer.status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise jose.JoseError("token_refused", f"token endpoint answered {answer.status} {str(error)[:64]}")
        return body

    def _open(self, token: Any) -> dict:
        """Claims of a signed, possibly encrypted JWT (encrypted required by configuration)."""
        if not isinstance(token, str) or not token:
            raise jose.JoseError("no_token", "no ID token")
        if jose.is_encrypted(token):
            if self.encryption_key is None:
                raise jose.JoseError("bad_encryption", "encrypted, and we have no encryption key")
            token = jose.decrypt(token, self.encryption_key)
        elif self.settings.require_encrypted_tokens:
            raise jose.JoseError("not_encrypted", "a token signed but not encrypted")
        return jose.verify(token, self.provider.jwks)

    def _check_id_token(self, ctx, config: dict, claims: dict, nonce: str) -> None:
        """OIDC Core §3.1.3.7."""
        s, now, skew = self.settings, ctx.ports.clock.now(), self.settings.clock_skew_seconds
        if claims.get("iss") != config["issuer"]:
            raise jose.JoseError("wrong_iss", str(claims.get("iss"))[:80])
        audience = claims.get("aud")
        audience = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if s.client_id not in audience or (len(audience) > 1 and claims.get("azp") != s.client_id):
            raise jose.JoseError("wrong_aud", str(claims.get("aud"))[:80])
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", 0)
        if not all(isinstance(v, (int, float)) for v in (exp, iat, nbf)):
            raise jose.JoseError("malformed", "exp, iat or nbf is not a number")
        if exp < now - skew:
            raise jose.JoseError("expired", f"exp {exp} < now {int(now)}")
        if iat > now + skew or nbf > now + skew:
            raise jose.JoseError("not_yet_valid", f"iat {iat} / nbf {nbf} > now {int(now)}")
        if iat < now - s.max_token_age_seconds - skew:
            raise jose.JoseError("too_old", f"iat {iat}")
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], nonce):
            raise jose.JoseError("wrong_nonce")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise jose.JoseError("malformed", "no sub")
        wanted = self.acr_values()
        if wanted and "acr" in claims and claims["acr"] not in wanted:  # a weaker login than asked for
            raise jose.JoseError("wrong_acr", str(claims["acr"])[:80])

    def _userinfo(self, config: dict, access_token: str, id_claims: dict) -> dict:
        answer = self.http.get(config["userinfo_endpoint"], {"Authorization": f"Bearer {access_token}"})
        if answer.status >= 500:
            raise ProviderUnavailable(f"userinfo answered {answer.status}")
        if answer.status != 200:
            raise jose.JoseError("userinfo_refused", f"userinfo answered {answer.status}")
        if answer.content_type == "application/jwt":
            info = self._open(answer.body.decode("ascii", "replace").strip())
            if "iss" in info and info["iss"] != config["issuer"]:
                raise jose.JoseError("wrong_iss", "userinfo")
            if "aud" in info and self.settings.client_id not in (
                    [info["aud"]] if isinstance(info["aud"], str) else info["aud"]):
                raise jose.JoseError("wrong_aud", "userinfo")
        elif self.settings.require_encrypted_tokens:
            raise jose.JoseError("not_encrypted", "userinfo answered plain JSON")
        else:
            info = answer.json()
        if not isinstance(info, dict) or info.get("sub") != id_claims["sub"]:  # OIDC Core §5.3.2
            raise jose.JoseError("wrong_sub", "userinfo is about someone else")
        return info

    # --- identity ---------------------------------------------------------------------------
    def _success(self, ctx, config: dict, claims: dict):
        s = self.settings
        attributes = {name: str(claims[claim]) for name, claim in (
            ("surname", "family_name"), ("given_name", "given_name"), ("mail", "email"))
            if isinstance(claims.get(claim), str) and claims[claim]}
        birth = claims.get("birthdate")
        if isinstance(birth, str) and _iso_date(birth):
            attributes["birth_date"] = birth
        if s.nrn_claim:
            nrn = normalize_nrn(claims.get(s.nrn_claim))
            if not check_nrn(nrn):
                return self._fail(ctx, INVALID_NRN, f"{s.nrn_claim} missing or failing its check digits",
                                  result="invalid_nrn")
            attributes["nrn"] = nrn
            subject = Subject(SubjectKind.NRN, nrn, issuer=config["issuer"])
        else:  # a provider that names people its own way: linked at the first login (idp.people.identity)
            subject = Subject(SubjectKind.UPSTREAM, claims["sub"], issuer=config["issuer"])
        return Success(AuthResult(subject=subject, key=self.id, level=self.level,
                                  authn_instant=ctx.ports.clock.now(), authority=config["issuer"],
                                  attributes=attributes))

    def _fail(self, ctx, code: str, detail: str, *, result: str | None = None) -> Failure:
        ctx.state.clear()
        ctx.ports.audit.record("login.provider_failed", result=result or code, key=self.id,
                               remote_addr=ctx.remote_addr, portal=ctx.portal, request_id=ctx.request_id,
                               reason=detail[:200])
        return Failure(code, {"provider": self.settings.display_name})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _iso_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
        return len(value) == 10
    except ValueError:
        return False

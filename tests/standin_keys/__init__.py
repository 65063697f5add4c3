"""Stand-in digital keys, one per family of the keys still to come, that live
only in the tests (never importable from the shipped packages).  They prove
that the key contract (``adapters.base``) and the journey engine fit:

* ``standin_redirect``: an external provider (itsme-like): out by redirect,
  back to the fixed return endpoint with the OIDC-like ``state``, possibly as
  a cross-site ``form_post``;
* ``standin_upstream``: an upstream node (eIDAS-like) answering with a level
  that varies per login, back with a ``RelayState``;
* ``standin_card``: a card-style challenge: a nonce, a local helper the page's
  script reaches (an extra ``connect-src`` on that page only), a JSON step;
* ``standin_code``: a code after username + password (the shared password
  check, a per-journey attempt counter reserved before the check);
* ``standin_activation``: a key activated from a Sésame page, no portal;
* ``standin_strong``: level 500 in one form, for the strong login that
  activating a key needs (tests/strong_login.py).

What the outside parties sign is an itsdangerous token under a secret shared
through the key's settings: the stand-ins test the shape, not a protocol.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from itsdangerous import BadSignature, URLSafeSerializer

from adapters import ADAPTERS
from adapters.base import (Adapter, AuthResult, Challenge, Failure, Group, Json, Redirect, Subject, SubjectKind,
                           Success)
from adapters.password_check import PasswordCheck
from adapters.settings import KeySettings

HERE = Path(__file__).parent
# Test-only wording: the stand-ins' own codes (real keys put theirs in the catalogs).
MESSAGES = {"provider_refused": "The provider %(provider)s refused.", "card_failed": "The card failed.",
            "bad_code": "Wrong code.", "too_many_attempts": "Too many attempts.",
            "login_required": "Log in first."}


def token_signer(secret: str, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=salt)


def card_signature(secret: str, nonce: str, nrn: str) -> str:
    """What the stand-in card computes over the challenge (a real card signs with its key)."""
    return hmac.new(secret.encode(), f"{nonce}|{nrn}".encode(), hashlib.sha256).hexdigest()


def expected_code(secret: str, journey_id: str) -> str:
    """The stand-in's one-time code (a real key sends it by e-mail or SMS)."""
    digest = hmac.new(secret.encode(), journey_id.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:4], 'big') % 1_000_000:06d}"


class StandinRedirect(Adapter):
    messages = MESSAGES
    id = "standin_redirect"
    group = Group.EID
    level = 500
    levels = (500, 500)
    provisions_people = True
    ports = frozenset({"clock"})
    return_state_param = "state"

    @dataclass(frozen=True)
    class Settings(KeySettings):
        provider_url: str = "http://provider.test"
        secret: str = ""

    def public_endpoints(self):
        # What an OpenID provider would fetch to check our signed requests (itsme: a JWKS URL).
        return {"jwks.json": lambda public: Json({"keys": [{"kty": "oct", "kid": "standin", "use": "sig"}]})}

    def begin(self, ctx):
        nonce = ctx.state["nonce"] = secrets.token_urlsafe(12)
        query = urlencode({"redirect_uri": ctx.return_url(), "state": ctx.new_return_state(), "nonce": nonce})
        return Redirect(f"{self.settings.provider_url}/authorize?{query}")

    def action(self, ctx, step):
        return Failure("unknown_step")

    def callback(self, ctx, params):
        try:
            claims = token_signer(self.settings.secret, "code").loads(params.get("code") or "")
        except BadSignature:
            return Failure("provider_refused")
        if claims.get("nonce") != ctx.state.pop("nonce", None):
            return Failure("provider_refused", {"provider": "provider.test"})
        return Success(AuthResult(
            subject=Subject(SubjectKind.NRN, claims["nrn"]), key=self.id, level=self.level,
            authn_instant=ctx.ports.clock.now(), authority=self.settings.provider_url,
            attributes={"given_name": claims["given_name"], "surname": claims["surname"]}))


class StandinUpstream(Adapter):
    messages = MESSAGES
    id = "standin_upstream"
    group = Group.EUROPEAN
    level = 300
    levels = (100, 500)
    provisions_people = True
    ports = frozenset({"clock"})
    return_state_param = "RelayState"

    @dataclass(frozen=True)
    class Settings(KeySettings):
        node_url: str = "http://node.test"
        secret: str = ""

    def begin(self, ctx):
        query = urlencode({"acs": ctx.return_url(), "RelayState": ctx.new_return_state()})
        return Redirect(f"{self.settings.node_url}/node?{query}")

    def action(self, ctx, step):
        return Failure("unknown_step")

    def callback(self, ctx, params):
        try:
            said = token_signer(self.settings.secret, "node").loads(params.get("SAMLResponse") or "")
        except BadSignature:
            return Failure("provider_refused")
        return Success(AuthResult(
            subject=Subject(SubjectKind.UPSTREAM, said["id"], issuer=self.settings.node_url), key=self.id,
            level=int(said["level"]), authn_instant=ctx.ports.clock.now(), authority=self.settings.node_url,
            attributes={"given_name": said["given_name"], "surname": said["surname"]}))


class StandinCard(Adapter):
    messages = MESSAGES
    id = "standin_card"
    group = Group.EID
    level = 500
    levels = (500, 500)
    provisions_people = True
    ports = frozenset({"clock"})
    template_folder = HERE / "templates"
    static_folder = HERE / "static"

    @dataclass(frozen=True)
    class Settings(KeySettings):
        helper_url: str = "http://127.0.0.1:24727"
        secret: str = ""

    def page_policy(self):
        return {"connect-src": (self.settings.helper_url,)}

    def begin(self, ctx):
        nonce = ctx.state["nonce"] = secrets.token_urlsafe(24)
        return Challenge("standin/card.html", {"nonce": nonce, "helper_url": self.settings.helper_url,
                                               "sign_url": ctx.url_for_step("sign")})

    def action(self, ctx, step):
        if step == "sign" and ctx.method == "POST":
            nonce = ctx.state.pop("nonce", None)  # one signature per challenge
            body = ctx.json or {}
            nrn, signature = str(body.get("nrn", "")), str(body.get("signature", ""))
            if nonce is None or not hmac.compare_digest(card_signature(self.settings.secret, nonce, nrn), signature):
                return Json({"error": "bad_signature"}, 400)
            ctx.state["proved"] = nrn
            return Json({"next": ctx.url_for_step("finish")})
        if step == "finish":
            nrn = ctx.state.pop("proved", None)
            if nrn is None:
                return Failure("card_failed")
            return Success(AuthResult(subject=Subject(SubjectKind.NRN, nrn), key=self.id, level=self.level,
                                      authn_instant=ctx.ports.clock.now()))
        return Failure("unknown_step")


class StandinCode(Adapter):
    messages = MESSAGES
    id = "standin_code"
    group = Group.SECURITY_CODE
    level = 300
    levels = (300, 300)
    ports = frozenset({"credentials", "store", "clock", "audit"})
    template_folder = HERE / "templates"

    @dataclass(frozen=True)
    class Settings(KeySettings):
        code_secret: str = ""
        max_code_attempts: int = 3
        max_failures: int = 5
        lockout_seconds: int = 900

    def begin(self, ctx):
        return Challenge("standin/code_password.html", {"action": ctx.url_for_step("password")})

    def action(self, ctx, step):
        if step == "password" and ctx.method == "POST":
            check = PasswordCheck(credentials=ctx.ports.credentials, store=ctx.ports.store, scope="password",
                                  max_failures=self.settings.max_failures,
                                  block_seconds=self.settings.lockout_seconds)
            result = check.check(ctx.form.get("username", ""), ctx.form.get("password", ""),
                                 remote_addr=ctx.remote_addr)
            if not result.ok:
                return Challenge("standin/code_password.html", {"action": ctx.url_for_step("password")},
                                 error=result.error, status=401 if result.error == "bad_credentials" else 403,
                                 params={"minutes": result.minutes or 0})
            ctx.state["username"] = result.credential.username
            return Redirect(ctx.url_for_step("code"))
        if step == "code" and ctx.state.get("username"):
            if ctx.method != "POST":
                return Challenge("standin/code_entry.html", {"action": ctx.url_for_step("code")})
            if not ctx.attempts("code").reserve(self.settings.max_code_attempts):
                return Failure("too_many_attempts")
            if not hmac.compare_digest(ctx.form.get("code", ""), expected_code(self.settings.code_secret,
                                                                             ctx.journey_id)):
                return Challenge("standin/code_entry.html", {"action": ctx.url_for_step("code")},
                                 error="bad_code", status=401)
            return Success(AuthResult(subject=Subject(SubjectKind.USERNAME, ctx.state["username"], "password"),
                                      key=self.id, level=self.level, authn_instant=ctx.ports.clock.now()))
        return Failure("unknown_step")


class StandinActivation(Adapter):
    messages = MESSAGES
    id = "standin_activation"
    group = Group.SECURITY_CODE
    level = 200
    levels = (200, 200)
    needs_activation = True
    requires_user = True
    ports = frozenset({"credentials", "clock"})
    template_folder = HERE / "templates"

    @dataclass(frozen=True)
    class Settings(KeySettings):
        activation_code: str = ""
        max_attempts: int = 3

    def configured_for(self, person_fedid, ports):
        return ports.credentials.has_active(key=self.id, person_fedid=person_fedid)

    def begin(self, ctx):
        return Failure("unknown_step")  # logging in with it is not what these tests are about

    def action(self, ctx, step):
        return Failure("unknown_step")

    def activation_begin(self, ctx):
        if ctx.person_fedid is None:
            return Failure("login_required")
        return Challenge("standin/activate.html", {"action": ctx.url_for_step("submit")})

    def activation_action(self, ctx, step):
        if step != "submit" or ctx.method != "POST" or ctx.person_fedid is None:
            return Failure("unknown_step")
        if not ctx.attempts("activation").reserve(self.settings.max_attempts):
            return Failure("too_many_attempts")
        if not hmac.compare_digest(ctx.form.get("code", ""), self.settings.activation_code):
            return Challenge("standin/activate.html", {"action": ctx.url_for_step("submit")}, error="bad_code",
                             status=401)
        ctx.ports.credentials.activate(key=self.id, person_fedid=ctx.person_fedid)
        return Success(AuthResult(subject=Subject(SubjectKind.FEDID, ctx.person_fedid), key=self.id,
                                  level=self.level, authn_instant=ctx.ports.clock.now()))


class StandinStrong(Adapter):
    """Level 500 in one form (the national number and the stand-in's secret): the
    strong login that "Mes clés numériques" asks for before an activation, until
    the eID and itsme keys land.  Test-only: it lives here, never in ``adapters``."""

    messages = MESSAGES
    id = "standin_strong"
    group = Group.EID
    level = 500
    levels = (500, 500)
    provisions_people = True
    ports = frozenset({"clock"})
    template_folder = HERE / "templates"

    @dataclass(frozen=True)
    class Settings(KeySettings):
        secret: str = ""

    def begin(self, ctx):
        return Challenge("standin/strong.html", {"action": ctx.url_for_step("prove")})

    def action(self, ctx, step):
        if step != "prove" or ctx.method != "POST":
            return Failure("unknown_step")
        if not self.settings.secret or not hmac.compare_digest(ctx.form.get("secret", ""), self.settings.secret):
            return Failure("card_failed")
        return Success(AuthResult(subject=Subject(SubjectKind.NRN, ctx.form.get("nrn", "")), key=self.id,
                                  level=self.level, authn_instant=ctx.ports.clock.now()))


STANDINS = {k.id: k for k in (StandinRedirect, StandinUpstream, StandinCard, StandinCode, StandinActivation,
                              StandinStrong)}
KEY_TYPES = {**ADAPTERS, **STANDINS}

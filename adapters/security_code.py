"""What every "security code + username + password" key shares (CSAM's second
group: code by e-mail, by SMS, from an authenticator app, on a paper token).

Login, as the guide shows it: (1) username + password, checked by the shared
password check (``adapters.password_check``, the *password* key's credential:
"Cette clé ne fonctionne qu'avec votre nom d'utilisateur & votre mot de
passe"); (2) when that password has expired, a new one; (3) the key's code.
Wrong codes count towards the same lockout as wrong passwords (scope
``password``, by username), reserved before the code is checked, so parallel
posts cannot try more codes than the lockout allows; a right password does not
start that count again (only a right code does), so knowing the password
never buys more code guesses.

A key subclasses :class:`SecurityCodeKey` and writes two hooks: ``send_code``
(send a code, or nothing for an app that makes its own) and ``check_code``.
The shared pages live in ``adapters/templates/security_code/``.

A person whose password is right but who has not activated this key is told
so, as the guide does, and pointed to "Mes clés numériques": telling it costs
nothing, the password having been proved.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from adapters.base import Adapter, AuthResult, Challenge, Failure, Group, Outcome, Redirect, Subject, SubjectKind, \
    Success
from adapters.lockout import Lockout, minutes
from adapters.password_check import ACCOUNT_BLOCKED, BAD_CREDENTIALS, PasswordCheck
from adapters.password_renewal import renew_expired_password
from adapters.rate_limit import BUSY, RATE_LIMITED
from adapters.settings import KeySettings, SettingsError

PASSWORD_TEMPLATE = "security_code/password.html"
CODE_TEMPLATE = "security_code/code.html"
NOT_ACTIVE_TEMPLATE = "security_code/not_active.html"
PASSWORD_KEY = "password"
LOCKOUT_SCOPE = "password"   # one count per username, whichever key asks for its password
MAX_PASSWORD = 1024
SHOWN_USERNAME = 200
STATUS = {BAD_CREDENTIALS: 401, ACCOUNT_BLOCKED: 403, RATE_LIMITED: 429, BUSY: 503}
KEY_NOT_ACTIVE = "key_not_active"


@dataclass(frozen=True)
class CodeVerdict:
    """What ``check_code`` found: ``ok``, or an error code with its parameters."""

    ok: bool
    error: str | None = None
    params: Mapping[str, Any] | None = None
    final: bool = False   # the challenge is over (too many attempts): back to the key choice


@dataclass(frozen=True)
class SecurityCodeSettings(KeySettings):
    max_failures: int = 5       # wrong passwords and codes, together, before the username is blocked
    lockout_seconds: int = 900  # the failure window, and how long a block lasts

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.lockout_seconds < 1:
            raise SettingsError("max_failures and lockout_seconds must be at least 1")


class SecurityCodeKey(Adapter):
    group = Group.SECURITY_CODE
    needs_activation = True
    Settings = SecurityCodeSettings
    ports = frozenset({"credentials", "store", "clock", "audit", "people"})

    # --- hooks -------------------------------------------------------------------
    def send_code(self, ctx, record, contact) -> Outcome | None:
        """After the password: send a code (None when it went), or an outcome to show instead."""
        return None

    def check_code(self, ctx, typed: str, record) -> CodeVerdict:
        raise NotImplementedError

    def code_values(self, ctx, record, contact) -> dict:
        """What the code page shows besides the form (a masked address, a resend button)."""
        return {}

    # --- shared ------------------------------------------------------------------
    def configured_for(self, person_fedid: str, ports) -> bool:
        return ports.credentials.has_active(key=self.id, person_fedid=person_fedid)

    def lockout(self, ports) -> Lockout:
        return Lockout(ports.store, LOCKOUT_SCOPE, self.settings.max_failures, self.settings.lockout_seconds)

    @property
    def max_failures(self) -> int:
        return self.settings.max_failures

    @property
    def block_minutes(self) -> int:
        return minutes(self.settings.lockout_seconds)

    def _audit(self, ctx, event: str, result: str, **extra) -> None:
        ctx.ports.audit.record(event, result=result, key=self.id, remote_addr=ctx.remote_addr, portal=ctx.portal,
                               request_id=ctx.request_id, **extra)

    def begin(self, ctx) -> Outcome:
        ctx.state.clear()  # a new start forgets a half-done login of this key
        return Challenge(PASSWORD_TEMPLATE)

    def action(self, ctx, step: str) -> Outcome:
        if step == "password":
            return self._password(ctx)
        if "username" not in ctx.state:  # every later step needs the password first (order enforced here)
            return Failure("unknown_step")
        if step == "renew":
            return self._renew(ctx)
        if step == "code":
            return self._code(ctx)
        return self.extra_step(ctx, step)

    def extra_step(self, ctx, step: str) -> Outcome:
        """A key's own later steps (resend); reached only after the password."""
        return Failure("unknown_step")

    def _password(self, ctx) -> Outcome:
        if ctx.method != "POST":
            return Challenge(PASSWORD_TEMPLATE)
        username = ctx.form.get("username") or ""
        password = (ctx.form.get("password") or "")[:MAX_PASSWORD]
        shown = username.strip()[:SHOWN_USERNAME]
        if not shown or not password:
            return Challenge(PASSWORD_TEMPLATE, {"username": shown}, error="missing_credentials", status=400)
        ports = ctx.ports
        check = PasswordCheck(credentials=ports.credentials, store=ports.store, scope=LOCKOUT_SCOPE,
                              max_failures=self.settings.max_failures, block_seconds=self.settings.lockout_seconds,
                              credential_key=PASSWORD_KEY, second_factor=True)
        result = check.check(username, password, remote_addr=ctx.remote_addr)
        if not result.ok:
            if result.error in (RATE_LIMITED, BUSY):
                ports.audit.log(f"login.{result.error}", result=result.error, key=self.id,
                                remote_addr=ctx.remote_addr, username_hash=result.username_hash)
            else:
                self._audit(ctx, "login.lockout" if result.blocked_now else "login.failure", result.error,
                            username_hash=result.username_hash)
            params = {"minutes": result.minutes} if result.minutes else {}
            return Challenge(PASSWORD_TEMPLATE, {"username": shown, **params}, error=result.error,
                             status=STATUS[result.error], params=params)
        login = result.credential
        record = ports.credentials.of_person(key=self.id, person_fedid=login.person_fedid)
        if record is None or not record.active:
            self._audit(ctx, "login.failure", KEY_NOT_ACTIVE, person_fedid=login.person_fedid)
            return Challenge(NOT_ACTIVE_TEMPLATE, status=403)
        ctx.state.update(username=login.username, fedid=login.person_fedid)
        if login.expired(ports.clock.now()):
            ctx.state["renew"] = True
            return Redirect(ctx.url_for_step("renew"))
        return self._start_code(ctx, record)

    def _start_code(self, ctx, record) -> Outcome:
        contact = ctx.ports.people.get(ctx.state["fedid"])
        outcome = self.send_code(ctx, record, contact)
        if outcome is not None:
            return outcome
        ctx.state["code_ready"] = True
        return Redirect(ctx.url_for_step("code"))

    def _renew(self, ctx) -> Outcome:
        """The password has expired: a new one first (``adapters.password_renewal``)."""
        outcome = renew_expired_password(ctx, on_renewed=lambda: self._audit(
            ctx, "password.renewed", "ok", person_fedid=ctx.state["fedid"]))
        if outcome is not None:
            return outcome
        record = ctx.ports.credentials.of_person(key=self.id, person_fedid=ctx.state["fedid"])
        if record is None or not record.active:
            return Failure(KEY_NOT_ACTIVE)
        return self._start_code(ctx, record)

    def _code(self, ctx) -> Outcome:
        if ctx.state.get("renew") or not ctx.state.get("code_ready"):
            return Failure("unknown_step")
        ports = ctx.ports
        record = ports.credentials.of_person(key=self.id, person_fedid=ctx.state["fedid"])
        if record is None or not record.active:  # removed meanwhile
            return Failure(KEY_NOT_ACTIVE)
        contact = ports.people.get(ctx.state["fedid"])
        values = self.code_values(ctx, record, contact)
        if ctx.method != "POST":
            return Challenge(CODE_TEMPLATE, values)
        typed = ctx.form.get("code") or ""
        if not typed.strip():
            return Challenge(CODE_TEMPLATE, values, error="missing_code", status=400)
        lockout = self.lockout(ports)
        attempt = lockout.reserve(ctx.state["username"])  # counted before the code is looked at
        if not attempt.granted:
            params = {"minutes": minutes(attempt.blocked_for)}
            self._audit(ctx, "login.failure", ACCOUNT_BLOCKED, person_fedid=ctx.state["fedid"])
            return Failure(ACCOUNT_BLOCKED, params)
        verdict = self.check_code(ctx, typed, record)
        if not verdict.ok:
            blocked = lockout.record_failure(attempt)
            self._audit(ctx, "login.lockout" if blocked else "login.failure", verdict.error or "bad_code",
                        person_fedid=ctx.state["fedid"])
            if blocked:
                return Failure(ACCOUNT_BLOCKED, {"minutes": self.block_minutes})
            if verdict.final:
                return Failure(verdict.error or "bad_code", dict(verdict.params or {}))
            return Challenge(CODE_TEMPLATE, values, error=verdict.error or "bad_code", status=401,
                             params=dict(verdict.params or {}))
        lockout.record_success(attempt)
        username = ctx.state["username"]
        ctx.state.clear()
        return Success(AuthResult(subject=Subject(SubjectKind.USERNAME, username, issuer=PASSWORD_KEY),
                                  key=self.id, level=self.level, authn_instant=ports.clock.now()))

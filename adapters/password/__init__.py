"""Username + password, the lowest level (DESIGN.md §3: level 100).

One error message that never tells which of the two was wrong; after
``max_failures`` failures the username is blocked for ``lockout_seconds``
(CSAM's "Mon compte a été bloqué"); too many checks from one address or of
one username answer ``rate_limited`` (429, ``[limits]``), a burst beyond the
Argon2 verifications a process runs at once ``busy`` (503).  Argon2 hashes;
an unknown username costs the same hash verification as a known one.  The
check itself is ``adapters.password_check.PasswordCheck``.

A right password that has expired (``[keys.password] password_lifetime_days``)
is not enough: the login asks for a new one first (:func:`renew_expired_password`,
shared with the security-code keys, which ask for the same password).

Failures are audited with the start of the username's digest
(``username_hash``), never the username or the password; refusals by the
rate limits or for lack of a slot only as log lines (``Audit.log``), so that a
flood does not write a row per request.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapters.base import Adapter, AuthResult, Challenge, Group, Outcome, Redirect, Subject, SubjectKind, \
    Success
from adapters.lockout import minutes
from adapters.password_check import ACCOUNT_BLOCKED, BAD_CREDENTIALS, PasswordCheck
from adapters.password_renewal import renew_expired_password
from adapters.rate_limit import BUSY, RATE_LIMITED
from adapters.settings import KeySettings, SettingsError

TEMPLATE = "password/login.html"  # adapters/password/templates/, next to the key
MAX_PASSWORD = 1024  # characters read from the form (idp/people/password_policy.py refuses longer new ones)
SHOWN_USERNAME = 200  # characters of the typed username given back to the form
STATUS = {BAD_CREDENTIALS: 401, ACCOUNT_BLOCKED: 403, RATE_LIMITED: 429, BUSY: 503}


class PasswordAdapter(Adapter):
    id = "password"
    group = Group.PASSWORD
    level = 100
    levels = (100, 100)
    needs_activation = True
    ports = frozenset({"credentials", "store", "clock", "audit"})
    template_folder = Path(__file__).with_name("templates")

    @dataclass(frozen=True)
    class Settings(KeySettings):
        max_failures: int = 5       # failures before the username is blocked
        lockout_seconds: int = 900  # the failure window, and how long a block lasts
        min_password_length: int = 12  # of a new password (idp/people/password_policy.py)
        password_lifetime_days: int = 730  # then the login asks for a new one (0: never)

        def __post_init__(self) -> None:
            if self.max_failures < 1:
                raise SettingsError(f"[keys.password] max_failures must be at least 1, not {self.max_failures}")
            if self.lockout_seconds < 1:
                raise SettingsError(
                    f"[keys.password] lockout_seconds must be at least 1, not {self.lockout_seconds}")
            if self.min_password_length < 8:
                raise SettingsError(
                    f"[keys.password] min_password_length must be at least 8, not {self.min_password_length}")

    @property
    def max_failures(self) -> int:
        return self.settings.max_failures

    @property
    def block_minutes(self) -> int:
        return minutes(self.settings.lockout_seconds)

    def password_check(self, ports) -> PasswordCheck:
        return PasswordCheck(credentials=ports.credentials, store=ports.store, scope=self.id,
                             max_failures=self.settings.max_failures,
                             block_seconds=self.settings.lockout_seconds, credential_key=self.id)

    def configured_for(self, person_fedid: str, ports) -> bool:
        return ports.credentials.has_active(key=self.id, person_fedid=person_fedid)

    def begin(self, ctx) -> Outcome:
        return Challenge(TEMPLATE)

    def action(self, ctx, step: str) -> Outcome:
        if step == "renew":
            return self._renew(ctx)
        if step != "submit" or ctx.method != "POST":
            return Challenge(TEMPLATE)
        # The username as typed: the check puts it in its normal form and bounds it.
        username = ctx.form.get("username") or ""
        password = ctx.form.get("password") or ""
        shown = username.strip()[:SHOWN_USERNAME]
        if not shown or not password:
            return Challenge(TEMPLATE, {"username": shown}, error="missing_credentials", status=400)
        return self._check(ctx, username, shown, password[:MAX_PASSWORD])

    def _check(self, ctx, username: str, shown: str, password: str) -> Outcome:
        ports = ctx.ports
        result = self.password_check(ports).check(username, password, remote_addr=ctx.remote_addr)
        if not result.ok:
            audit = dict(key=self.id, remote_addr=ctx.remote_addr, portal=ctx.portal, request_id=ctx.request_id,
                         username_hash=result.username_hash)
            if result.error in (RATE_LIMITED, BUSY):
                ports.audit.log(f"login.{result.error}", result=result.error, **audit)
            else:
                ports.audit.record("login.lockout" if result.blocked_now else "login.failure",
                                   result=result.error, **audit)
            if result.minutes:  # blocked, or rate limited: the page says when to retry
                return Challenge(TEMPLATE, {"username": shown, "minutes": result.minutes}, error=result.error,
                                 status=STATUS[result.error], params={"minutes": result.minutes})
            return Challenge(TEMPLATE, {"username": shown}, error=result.error, status=STATUS[result.error])
        credential = result.credential
        if credential.expired(ports.clock.now()):  # right but expired: a new one before the login ends
            ctx.state.update(username=credential.username, fedid=credential.person_fedid, renew=True)
            return Redirect(ctx.url_for_step("renew"))
        return self._success(ctx, credential.username)

    def _renew(self, ctx) -> Outcome:
        outcome = renew_expired_password(ctx, on_renewed=lambda: ctx.ports.audit.record(
            "password.renewed", key=self.id, person_fedid=ctx.state["fedid"], remote_addr=ctx.remote_addr,
            portal=ctx.portal, request_id=ctx.request_id))
        if outcome is not None:
            return outcome
        username = ctx.state["username"]
        ctx.state.clear()
        return self._success(ctx, username)

    def _success(self, ctx, username: str) -> Outcome:
        subject = Subject(SubjectKind.USERNAME, username, issuer=self.id)
        return Success(AuthResult(subject=subject, key=self.id, level=self.level,
                                  authn_instant=ctx.ports.clock.now()))

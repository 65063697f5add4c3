"""Username + password, the lowest level (DESIGN.md §3: level 100).

One error message that never tells which of the two was wrong; after
``max_failures`` failures the username is blocked for ``lockout_seconds``
(CSAM's "Mon compte a été bloqué").  Argon2 hashes; an unknown username costs
the same hash verification as a known one.  The check itself (verification
behind the lockout) is ``adapters.password_check.PasswordCheck``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapters.base import Adapter, AuthResult, Challenge, Group, Outcome, Subject, SubjectKind, Success
from adapters.lockout import minutes
from adapters.password_check import ACCOUNT_BLOCKED, PasswordCheck
from adapters.settings import KeySettings, SettingsError

TEMPLATE = "password/login.html"  # adapters/password/templates/, next to the key


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

        def __post_init__(self) -> None:
            if self.max_failures < 1:
                raise SettingsError(f"[keys.password] max_failures must be at least 1, not {self.max_failures}")
            if self.lockout_seconds < 1:
                raise SettingsError(
                    f"[keys.password] lockout_seconds must be at least 1, not {self.lockout_seconds}")

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
        if step != "submit" or ctx.method != "POST":
            return Challenge(TEMPLATE)
        username = (ctx.form.get("username") or "").strip()[:200]
        password = ctx.form.get("password") or ""
        if not username or not password:
            return Challenge(TEMPLATE, {"username": username}, error="missing_credentials", status=400)
        return self._check(ctx, username, password[:1024])

    def _check(self, ctx, username: str, password: str) -> Outcome:
        ports = ctx.ports
        result = self.password_check(ports).check(username, password)
        if not result.ok:
            audit = dict(key=self.id, remote_addr=ctx.remote_addr)
            ports.audit.record("login.lockout" if result.blocked_now else "login.failure",
                               result=result.error, **audit)
            if result.error == ACCOUNT_BLOCKED:
                return Challenge(TEMPLATE, {"username": username, "minutes": result.minutes},
                                 error=ACCOUNT_BLOCKED, status=403, params={"minutes": result.minutes})
            return Challenge(TEMPLATE, {"username": username}, error=result.error, status=401)
        credential = result.credential
        subject = Subject(SubjectKind.USERNAME, credential.username, issuer=self.id)
        return Success(AuthResult(subject=subject, key=self.id, level=self.level,
                                  authn_instant=ports.clock.now()))

"""Username + password, the lowest level (DESIGN.md §3: level 100).

One error message that never tells which of the two was wrong; after
``max_failures`` failures the username is blocked for ``lockout_seconds``
(CSAM's "Mon compte a été bloqué").  Argon2 hashes; an unknown username costs
the same hash verification as a known one.
"""
from __future__ import annotations

from adapters.base import Adapter, AuthResult, Challenge, Group, Outcome, Success
from adapters.lockout import Lockout, minutes

TEMPLATE = "login/password.html"


class PasswordAdapter(Adapter):
    id = "password"
    level = 100
    group = Group.PASSWORD
    needs_activation = True

    @property
    def max_failures(self) -> int:
        return int(self.settings.get("max_failures", 5))

    @property
    def block_minutes(self) -> int:
        return minutes(int(self.settings.get("lockout_seconds", 900)))

    def _lockout(self, services) -> Lockout:
        return Lockout(services.store, "password", self.max_failures, int(self.settings.get("lockout_seconds", 900)))

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
        services = ctx.services
        lockout = self._lockout(services)
        audit = dict(key=self.id, remote_addr=ctx.remote_addr)
        left = lockout.blocked_for(username)
        if left:
            services.audit.record("login.failure", result="account_blocked", **audit)
            return Challenge(TEMPLATE, {"username": username, "minutes": minutes(left)},
                             error="account_blocked", status=403)
        cred = services.people.credential(key=self.id, username=username)
        hasher = services.people.hasher
        ok = hasher.verify(cred.secret_hash if cred and cred.status == "active" else None, password)
        if not ok:
            blocked = lockout.failed(username)
            services.audit.record("login.lockout" if blocked else "login.failure",
                                  result="account_blocked" if blocked else "bad_credentials", **audit)
            if blocked:
                return Challenge(TEMPLATE, {"username": username, "minutes": minutes(lockout.block_seconds)},
                                 error="account_blocked", status=403)
            return Challenge(TEMPLATE, {"username": username}, error="bad_credentials", status=401)
        lockout.succeeded(username)
        if hasher.needs_rehash(cred.secret_hash):
            services.people.renew_secret_hash(cred.id, password)
        return Success(AuthResult(person_id=cred.person_id, key=self.id, level=self.level,
                                  authn_instant=services.clock.now()))


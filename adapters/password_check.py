"""One password check, shared by every key that asks for a username and a
password (the password key, and each "code after username + password" key):
Argon2 verification behind rate limits and a lockout (DESIGN.md §6).

In this order, each step counted *before* the next is tried, so that N
parallel requests never get more than the limits allow:

1. the username is put in its normal form by the ``credentials`` port
   (``idp/people/usernames.py``: case, width and surrounding spaces do not
   make another username); a name that cannot be one is refused as a wrong
   password, unverified;
2. the rate limits (``adapters/rate_limit.py``): checks per address and per
   username in a window, whatever the answer: ``rate_limited``;
3. a slot of this process's bound on concurrent Argon2 verifications, waited
   for briefly: ``busy`` when none frees up (the lockout is not touched: the
   citizen keeps every try);
4. the lockout (``adapters/lockout.py``): failures per username: a right
   password arriving while the limit-reaching guess is still being verified
   is refused;
5. the verification.  An unknown username costs the same verification and is
   counted the same way as a known one.

The ``credentials`` port provides ``canonical_username``, ``find``,
``verify_secret``, ``renew_if_needed``, and the ``limits`` and ``gate`` of
checks (``idp/people/credentials.py``).  Keys pass the request's address
(``ctx.remote_addr``); without it only the per-username limit applies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.lockout import Lockout, digest, minutes
from adapters.rate_limit import BUSY, RATE_LIMITED, RateLimits

if TYPE_CHECKING:
    from idp.people.credentials import CredentialRecord

BAD_CREDENTIALS = "bad_credentials"
ACCOUNT_BLOCKED = "account_blocked"
# The part of the username's SHA-256 digest written in audit rows: enough to
# follow one username through the trail, without writing the username.
USERNAME_HASH_LENGTH = 16


@dataclass(frozen=True)
class PasswordCheckResult:
    ok: bool
    error: str | None = None          # None | "bad_credentials" | "account_blocked" | "rate_limited" | "busy"
    minutes: int | None = None        # minutes left of a block or a rate limit, for the message
    credential: CredentialRecord | None = None  # the credential checked, on success
    blocked_now: bool = False         # this failure reached the limit (audit "login.lockout")
    username_hash: str | None = None  # the start of the username's digest, for audit rows


class PasswordCheck:
    """Verify a username + password against the ``credentials`` port, with limits and lockout.

    ``scope`` names the lockout counters (``lock:<scope>:...``): keys sharing a
    scope share their failures.  The rate limits are shared by every key.
    ``credential_key`` is the key id under which the password credential is stored.
    """

    def __init__(self, *, credentials, store, scope: str, max_failures: int, block_seconds: int,
                 credential_key: str = "password", second_factor: bool = False) -> None:
        if max_failures < 1 or block_seconds < 1:
            raise ValueError("max_failures and block_seconds must be at least 1")
        self.credentials = credentials
        self.credential_key = credential_key
        # A code follows the password: its failures are counted after a right password,
        # so a right password must not start the count again (the code's success does),
        # or whoever knows the password would get new code guesses with each login.
        self.second_factor = second_factor
        self.lockout = Lockout(store, scope, max_failures, block_seconds)
        self.rate_limits = RateLimits(store, credentials.limits)

    def check(self, username: str, password: str, *, remote_addr: str | None = None) -> PasswordCheckResult:
        """Refuse unchecked when limited or blocked; otherwise verify, counting the attempt first.

        Callers refuse an empty username or password themselves (it is not an
        attempt); here it is simply wrong, and neither counted nor verified.
        """
        if not username.strip() or not password:
            return PasswordCheckResult(False, BAD_CREDENTIALS)
        name = self.credentials.canonical_username(username)
        subject = digest(name) if name is not None else None
        seen = dict(username_hash=subject[:USERNAME_HASH_LENGTH] if subject else None)
        verdict = self.rate_limits.reserve(remote_addr=remote_addr, username_digest=subject)
        if not verdict.granted:
            return PasswordCheckResult(False, RATE_LIMITED, minutes=verdict.minutes, **seen)
        if name is None:  # no account can have it: nothing to verify, nothing to lock
            return PasswordCheckResult(False, BAD_CREDENTIALS, **seen)
        with self.credentials.gate.slot() as granted:
            if not granted:
                return PasswordCheckResult(False, BUSY, **seen)
            return self._verify(name, password, seen)

    def _verify(self, name: str, password: str, seen: dict) -> PasswordCheckResult:
        attempt = self.lockout.reserve(name)
        if not attempt.granted:
            return PasswordCheckResult(False, ACCOUNT_BLOCKED, minutes=minutes(attempt.blocked_for), **seen)
        record = self.credentials.find(key=self.credential_key, username=name)
        if not self.credentials.verify_secret(record, password):
            if self.lockout.record_failure(attempt):
                return PasswordCheckResult(False, ACCOUNT_BLOCKED, minutes=minutes(self.lockout.block_seconds),
                                           blocked_now=True, **seen)
            return PasswordCheckResult(False, BAD_CREDENTIALS, **seen)
        if not self.second_factor:
            self.lockout.record_success(attempt)
        self.credentials.renew_if_needed(record, password)
        return PasswordCheckResult(True, credential=record, **seen)

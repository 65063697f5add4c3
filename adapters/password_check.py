"""One password check, shared by every key that asks for a username and a
password (the password key, and each "code after username + password" key):
Argon2 verification behind a lockout (DESIGN.md §6).

Order matters (adapters/lockout.py): the attempt is counted *before* the
password is verified, so that N parallel guesses get at most ``max_failures``
verifications, and a right password arriving while the limit-reaching guess is
still being verified is refused.  An unknown username costs the same
verification and is counted the same way as a known one: lockout is per
username string (casefolded), whether or not the account exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.lockout import Lockout, minutes

if TYPE_CHECKING:
    from idp.people.credentials import CredentialRecord

BAD_CREDENTIALS = "bad_credentials"
ACCOUNT_BLOCKED = "account_blocked"


@dataclass(frozen=True)
class PasswordCheckResult:
    ok: bool
    error: str | None = None          # None | "bad_credentials" | "account_blocked"
    minutes: int | None = None        # minutes left of a block, for the message
    credential: CredentialRecord | None = None  # the credential checked, on success
    blocked_now: bool = False         # this failure reached the limit (audit "login.lockout")


class PasswordCheck:
    """Verify a username + password against the ``credentials`` port, with lockout.

    ``scope`` names the lockout counters (``lock:<scope>:...``): keys sharing a
    scope share their failures.  ``credential_key`` is the key id under which
    the password credential is stored.
    """

    def __init__(self, *, credentials, store, scope: str, max_failures: int, block_seconds: int,
                 credential_key: str = "password") -> None:
        if max_failures < 1 or block_seconds < 1:
            raise ValueError("max_failures and block_seconds must be at least 1")
        self.credentials = credentials
        self.credential_key = credential_key
        self.lockout = Lockout(store, scope, max_failures, block_seconds)

    def check(self, username: str, password: str) -> PasswordCheckResult:
        """Refuse unchecked when blocked; otherwise verify, counting the attempt first.

        Callers refuse an empty username or password themselves (it is not an
        attempt); here it is simply wrong, and neither counted nor verified.
        """
        username = username.strip()
        if not username or not password:
            return PasswordCheckResult(False, BAD_CREDENTIALS)
        attempt = self.lockout.reserve(username)
        if not attempt.granted:
            return PasswordCheckResult(False, ACCOUNT_BLOCKED, minutes=minutes(attempt.blocked_for))
        record = self.credentials.find(key=self.credential_key, username=username)
        if not self.credentials.verify_secret(record, password):
            if self.lockout.record_failure(attempt):
                return PasswordCheckResult(False, ACCOUNT_BLOCKED, minutes=minutes(self.lockout.block_seconds),
                                           blocked_now=True)
            return PasswordCheckResult(False, BAD_CREDENTIALS)
        self.lockout.record_success(attempt)
        self.credentials.renew_if_needed(record, password)
        return PasswordCheckResult(True, credential=record)

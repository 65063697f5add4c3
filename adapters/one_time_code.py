"""The one-time-code engine shared by every key that sends a code (DESIGN.md §6):
codes by e-mail and SMS, registration codes of an activation, recovery codes.

A *challenge* is one code waiting for one citizen, named by the caller (the
journey and the key: ``<journey id>:<key>``).  Rules, all held in the state
store so that every process and node counts together:

* the code comes from ``secrets``; the store keeps only its HMAC-SHA-256
  under the server's secret (a reader of the store cannot try the million
  six-digit codes offline) and the challenge expires after ``ttl_seconds``;
* at most ``max_attempts`` checks per challenge, each **reserved before the
  comparison** with the atomic ``incr``: parallel posts never get more; the
  count survives a resend (a new code does not buy new guesses);
* the comparison is constant-time (``hmac.compare_digest``), and a right code
  is taken with the atomic ``pop``: of two parallel posts of the right code,
  one wins, the other finds the code used;
* a resend waits ``resend_cooldown_seconds`` (``add``: one sender wins) and
  replaces the code; sends are limited per account and per address in a
  window (each costs an SMS, and floods a mailbox).

Store keys: ``otc:<scope>:<challenge>`` (the code's HMAC), ``…:tries``,
``…:cooldown``, ``otc-send:<scope>:account:<digest>``,
``otc-send:<scope>:address:<digest>``.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from adapters.lockout import digest
from adapters.rate_limit import address_digest

# Error codes (message keys in idp.messages).
CODE_EXPIRED = "code_expired"          # no code waiting: expired, used, or never sent
BAD_CODE = "bad_code"
TOO_MANY_ATTEMPTS = "too_many_code_attempts"
RESEND_TOO_SOON = "resend_too_soon"
TOO_MANY_SENDS = "too_many_sends"

MAX_CODE_INPUT = 32  # characters of a typed code looked at


@dataclass(frozen=True)
class CodePolicy:
    length: int = 6
    ttl_seconds: int = 600
    max_attempts: int = 5
    resend_cooldown_seconds: int = 60
    sends_per_account: int = 5
    sends_per_address: int = 20
    send_window_seconds: int = 3600

    def __post_init__(self) -> None:
        if not 6 <= self.length <= 12:
            raise ValueError(f"a one-time code has 6 to 12 digits, not {self.length}")
        for name in ("ttl_seconds", "max_attempts", "resend_cooldown_seconds", "sends_per_account",
                     "sends_per_address", "send_window_seconds"):
            if getattr(self, name) < 1:
                raise ValueError(f"one-time code {name} must be at least 1")


@dataclass(frozen=True)
class Issued:
    code: str | None                 # to be sent; None when refused
    error: str | None = None         # RESEND_TOO_SOON | TOO_MANY_SENDS
    retry_after: int = 0             # seconds, when refused

    @property
    def ok(self) -> bool:
        return self.code is not None


@dataclass(frozen=True)
class Checked:
    ok: bool
    error: str | None = None         # CODE_EXPIRED | BAD_CODE | TOO_MANY_ATTEMPTS
    attempts_left: int = 0


def normalise(typed: str) -> str:
    """What the citizen typed, without the spaces and dashes a code is often copied with."""
    return "".join(c for c in (typed or "")[:MAX_CODE_INPUT] if c not in " -\u00a0\t")


class OneTimeCodes:
    """Codes of one ``scope`` (a key id) under one ``policy``; ``secret`` keys the HMAC."""

    def __init__(self, store, *, scope: str, policy: CodePolicy, secret: bytes) -> None:
        self.store = store
        self.scope = scope
        self.policy = policy
        self._secret = hashlib.sha256(b"sesame one-time codes|" + secret).digest()

    def _key(self, challenge: str, suffix: str = "") -> str:
        return f"otc:{self.scope}:{challenge}{suffix}"

    def _mac(self, challenge: str, code: str) -> str:
        return hmac.new(self._secret, f"{self.scope}|{challenge}|{code}".encode(), hashlib.sha256).hexdigest()

    def new_code(self) -> str:
        return f"{secrets.randbelow(10 ** self.policy.length):0{self.policy.length}d}"

    def issue(self, challenge: str, *, account: str, remote_addr: str | None = None) -> Issued:
        """A new code for ``challenge`` (replacing any earlier one), unless too soon or too many.

        ``account`` names whose code it is (a person's stable identifier): the
        per-account send limit counts it whatever the journey.
        """
        p = self.policy
        cooldown = self._key(challenge, ":cooldown")
        if not self.store.add(cooldown, 1, ttl=p.resend_cooldown_seconds):
            return Issued(None, RESEND_TOO_SOON, self.store.ttl(cooldown) or p.resend_cooldown_seconds)
        # The address first: a send refused for its address does not count against the
        # account, so one address cannot use up another citizen's allowance.
        limits = [(f"otc-send:{self.scope}:address:{address_digest(remote_addr)}", p.sends_per_address)] \
            if remote_addr else []
        limits.append((f"otc-send:{self.scope}:account:{digest(account)}", p.sends_per_account))
        for key, limit in limits:
            if self.store.incr(key, ttl=p.send_window_seconds) > limit:
                return Issued(None, TOO_MANY_SENDS, self.store.ttl(key) or p.send_window_seconds)
        code = self.new_code()
        self.store.put(self._key(challenge), self._mac(challenge, code), ttl=p.ttl_seconds)
        return Issued(code)

    def waiting(self, challenge: str) -> bool:
        """Whether a code is waiting for this challenge."""
        return self.store.get(self._key(challenge)) is not None

    def resend_in(self, challenge: str) -> int:
        """Seconds before a new code may be sent (0: now)."""
        return self.store.ttl(self._key(challenge, ":cooldown")) or 0

    def check(self, challenge: str, typed: str) -> Checked:
        """Check a typed code: reserved, compared in constant time, taken once."""
        p = self.policy
        key = self._key(challenge)
        stored = self.store.get(key)
        if stored is None:
            return Checked(False, CODE_EXPIRED)
        tries = self.store.incr(self._key(challenge, ":tries"), ttl=p.ttl_seconds)
        if tries > p.max_attempts:
            self.store.delete(key)  # this challenge is over: a new login sends a new code
            return Checked(False, TOO_MANY_ATTEMPTS)
        code = normalise(typed)
        if not (code.isdigit() and len(code) == p.length
                and hmac.compare_digest(self._mac(challenge, code), str(stored))):
            left = p.max_attempts - tries
            if left <= 0:
                self.store.delete(key)
                return Checked(False, TOO_MANY_ATTEMPTS)
            return Checked(False, BAD_CODE, attempts_left=left)
        if self.store.pop(key) != stored:  # a parallel post took it, or a resend replaced it
            return Checked(False, CODE_EXPIRED)
        self.store.delete(self._key(challenge, ":tries"))
        return Checked(True)

    def cancel(self, challenge: str) -> None:
        self.store.delete(self._key(challenge))


class CodeBook:
    """The ``codes`` port: ``codes(scope, policy)`` gives the engine for one key."""

    def __init__(self, store, secret: bytes) -> None:
        self._store = store
        self._secret = secret

    def __call__(self, scope: str, policy: CodePolicy) -> OneTimeCodes:
        return OneTimeCodes(self._store, scope=scope, policy=policy, secret=self._secret)

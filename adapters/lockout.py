"""Shared lockout rules (DESIGN.md §6): count attempts per identifier in a fixed
window; at the limit, block for a while.  State lives in the state store, so all
Sésame processes count together.

An attempt is *reserved* (counted, atomically) before it is checked, so that
however many requests arrive at once, at most ``max_failures`` of them are
checked before the block::

    attempt = lockout.reserve(username)
    if not attempt.granted:
        ...                               # refused unchecked: blocked for attempt.blocked_for s
    elif check(...):
        lockout.record_success(attempt)   # the count starts again
    elif lockout.record_failure(attempt):
        ...                               # this failure blocked the identifier

Store keys: ``lock:<scope>:failures:<digest>`` (a counter, the window starting
at its first attempt) and ``lock:<scope>:blocked:<digest>`` (present while the
block runs).  The subject is given in its normal form by the caller (the
password check: the username's, so case and width variants count as one) and
written only as its SHA-256 digest: a key built from user input stays short
and plain whatever was typed.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Attempt:
    """A reserved attempt: ``granted`` to be checked, or refused unchecked."""

    subject: str
    granted: bool
    number: int = 0        # its place in the current window (0: not counted, a block was in force)
    blocked_for: int = 0   # when refused: seconds left of the block


@dataclass(frozen=True)
class Lockout:
    store: object
    scope: str            # e.g. "password"
    max_failures: int = 5
    block_seconds: int = 900

    def _key(self, kind: str, subject: str) -> str:
        return f"lock:{self.scope}:{kind}:{digest(subject)}"

    def blocked_for(self, subject: str) -> int:
        """Seconds left of a block, 0 when not blocked."""
        return self.store.ttl(self._key("blocked", subject)) or 0

    def reserve(self, subject: str) -> Attempt:
        """Count one attempt before it is checked; refused once the limit is used.

        A block in force refuses without counting, so attempts during a block
        do not open a new window that would outlive it.  Otherwise the atomic
        ``incr`` gives each concurrent attempt its own number: beyond
        ``max_failures`` it is refused even while the attempt that reached the
        limit is still being checked (the block is not written yet).
        """
        left = self.blocked_for(subject)
        if left:
            return Attempt(subject, granted=False, blocked_for=left)
        number = self.store.incr(self._key("failures", subject), ttl=self.block_seconds)
        if number > self.max_failures:
            return Attempt(subject, granted=False, number=number,
                           blocked_for=self.blocked_for(subject) or self.block_seconds)
        return Attempt(subject, granted=True, number=number)

    def record_failure(self, attempt: Attempt) -> bool:
        """The reserved attempt failed; True when it blocks the subject.

        The counter is kept (not deleted): it stays at the limit until its
        window ends, which is never after the block ends, so attempts racing
        with this one are still refused.
        """
        if attempt.granted and attempt.number >= self.max_failures:
            self.store.put(self._key("blocked", attempt.subject), 1, ttl=self.block_seconds)
            return True
        return False

    def record_success(self, attempt: Attempt) -> None:
        """The reserved attempt succeeded: the failure count starts again."""
        self.store.delete(self._key("failures", attempt.subject))


def minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


def digest(subject: str) -> str:
    """SHA-256 (hex) of a subject: its name in store keys (and, cut, in audit rows)."""
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()

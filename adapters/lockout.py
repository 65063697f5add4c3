"""Shared lockout rules (DESIGN.md §6): count failures per identifier in a fixed
window; at the limit, block for a while.  State lives in the state store, so all
Sésame processes count together.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Lockout:
    store: object
    scope: str            # e.g. "password"
    max_failures: int = 5
    block_seconds: int = 900

    def _key(self, kind: str, subject: str) -> str:
        return f"lock:{self.scope}:{kind}:{subject.casefold()}"

    def blocked_for(self, subject: str) -> int:
        """Seconds left of a block, 0 when not blocked."""
        return self.store.ttl(self._key("blocked", subject)) or 0

    def failed(self, subject: str) -> bool:
        """Count a failure; True when this one blocks the subject."""
        count = self.store.incr(self._key("failures", subject), ttl=self.block_seconds)
        if count >= self.max_failures:
            self.store.put(self._key("blocked", subject), 1, ttl=self.block_seconds)
            self.store.delete(self._key("failures", subject))
            return True
        return False

    def succeeded(self, subject: str) -> None:
        self.store.delete(self._key("failures", subject))


def minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))

"""The one injectable clock (DESIGN.md §7 "Time").

Every expiry, lockout and validity check reads ``app.extensions["sesame"].clock``
(or a clock handed in), so tests move time instead of sleeping.
"""
from __future__ import annotations

import datetime as dt
import time


class Clock:
    """Wall clock in UTC."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def utcnow(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now(), tz=dt.timezone.utc)


class FrozenClock(Clock):
    """A clock that only moves when told to (tests, benchmarks)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

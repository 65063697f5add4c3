"""Limits on credential checks (DESIGN.md §6), beside the lockout: how many
checks one address, and one username, may ask for in a window, and how many
Argon2 verifications one process runs at once.

The lockout (``adapters/lockout.py``) stops guessing *one* account's
password; it cannot stop one address trying one password on many usernames
(61 usernames in 10 s were all answered).  :class:`RateLimits` counts every
check per address and per username in the state store with the atomic
``incr``, **reserved before the check**, so the counts hold across threads,
workers and nodes, and parallel posts never get more checks than the limit.
A fixed window starts at the first check; checks beyond the limit are refused
until it ends (counting them does not move its end).

:class:`HashGate` is a bounded semaphore of this process: a burst of password
posts waits a short while for a slot, then is answered "busy", so it cannot
take every worker thread and starve single sign-on (which hashes nothing).

Store keys (``rate:address:<digest>``, ``rate:username:<digest>``) hold a
SHA-256 digest, never what was typed: keys stay short whatever the input.
IPv6 addresses are counted by their /64 network, which one subscriber
usually holds whole.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from adapters.lockout import digest

RATE_LIMITED = "rate_limited"
BUSY = "busy"


@dataclass(frozen=True)
class Limits:
    """``[limits]`` of the configuration; the defaults are those of defaults.toml."""

    per_address_attempts: int = 30          # checks from one address ...
    per_address_window_seconds: int = 300   # ... in this window
    per_username_attempts: int = 20         # checks of one username, from anywhere ...
    per_username_window_seconds: int = 900  # ... in this window
    max_concurrent_hashes: int = 2          # Argon2 verifications at once, per process
    hash_wait_seconds: float = 0.5          # how long a check waits for one, then "busy"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"[limits] {f.name} must be a number, not {value!r}")
            if f.name != "hash_wait_seconds" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"[limits] {f.name} must be a whole number of at least 1, not {value!r}")
        if not 0 <= self.hash_wait_seconds <= 30:
            raise ValueError(f"[limits] hash_wait_seconds must be between 0 and 30, not {self.hash_wait_seconds}")


def limits_from(conf: Mapping[str, Any]) -> Limits:
    """``[limits]`` as :class:`Limits`; an unknown or ill-typed setting raises ``ValueError``."""
    names = {f.name for f in dataclasses.fields(Limits)}
    unknown = sorted(set(conf) - names)
    if unknown:
        raise ValueError(f"[limits]: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return Limits(**conf)


@dataclass(frozen=True)
class Verdict:
    """A reserved check: ``granted``, or refused for ``retry_after`` seconds."""

    granted: bool
    retry_after: int = 0

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


GRANTED = Verdict(True)


def address_digest(remote_addr: str) -> str:
    """The digest naming an address's counter: IPv6 by its /64, IPv4 (or mapped) as is."""
    try:
        address = ipaddress.ip_address(remote_addr.strip())
    except ValueError:
        subject = remote_addr  # not an address (a test client, a misconfigured proxy): counted as given
    else:
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        subject = str(ipaddress.ip_network(f"{address}/64", strict=False)) if address.version == 6 else str(address)
    return digest(subject)


class RateLimits:
    """Per-address and per-username counters of credential checks, in the state store."""

    def __init__(self, store, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    def _reserve(self, key: str, limit: int, window: int) -> Verdict:
        if self.store.incr(key, ttl=window) <= limit:
            return GRANTED
        return Verdict(False, self.store.ttl(key) or window)

    def reserve(self, *, remote_addr: str | None, username_digest: str | None) -> Verdict:
        """Count one check, before it is made; refused once a limit is used.

        The address first: a check refused for its address does not count
        against the username, so one address cannot use up another
        citizen's allowance.  Without an address (a key that did not pass
        one) only the username is limited; without a username (a name that
        cannot be one) only the address.
        """
        limits = self.limits
        if remote_addr:
            verdict = self._reserve(f"rate:address:{address_digest(remote_addr)}", limits.per_address_attempts,
                                    limits.per_address_window_seconds)
            if not verdict.granted or username_digest is None:
                return verdict
        if username_digest is None:
            return GRANTED
        return self._reserve(f"rate:username:{username_digest}", limits.per_username_attempts,
                             limits.per_username_window_seconds)


class HashGate:
    """At most ``size`` Argon2 verifications at once in this process."""

    def __init__(self, size: int, wait_seconds: float) -> None:
        self.size = size
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """``with gate.slot() as granted:`` waits up to ``wait_seconds`` for a slot."""
        granted = self._slots.acquire(timeout=self.wait_seconds) if self.wait_seconds else \
            self._slots.acquire(blocking=False)
        try:
            yield granted
        finally:
            if granted:
                self._slots.release()

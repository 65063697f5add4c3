"""The state store interface (DESIGN.md §5 "State").

Everything a second Sésame process needs and that expires — SSO sessions,
login journeys, SAML request and assertion IDs seen, one-time-code
challenges, attempt counters, rate limits — goes through :class:`StateStore`.
Two backends implement it: :class:`idp.persistence.store.sql.SqlStore` (embedded default)
and :class:`idp.persistence.store.redis.RedisStore` (production, shared by many nodes).

Contract common to every backend:

* keys are ``str``; the store prepends its ``prefix`` (default ``"sesame:"``);
* values are JSON-serializable (dict, list, str, int, float, bool) and come
  back as ``json.loads`` gives them (tuples come back as lists); ``None`` is
  refused, since ``get`` answers ``None`` for "absent";
* ``ttl`` is a positive ``int`` number of seconds; an entry written at time
  ``t`` with ``ttl`` is present while ``clock.now() < t + ttl`` and absent
  from then on, whatever the backend still holds physically;
* time is read only from the injected :class:`idp.clock.Clock`, so tests move
  a :class:`idp.clock.FrozenClock` instead of sleeping;
* ``add``, ``pop``, ``incr`` and ``replace`` are atomic across threads and
  processes;
* values are stored in a canonical JSON encoding (sorted keys, no spaces), so
  ``replace(..., expected=...)`` compares values by that text: a value read
  with ``get`` and passed back as ``expected`` matches, whatever the order of
  its dict keys; ``1``, ``1.0`` and ``True`` do not match each other.
"""
from __future__ import annotations

import abc
import json
import math
from typing import Any, TypeAlias

from idp.clock import Clock

JSONValue: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool

DEFAULT_PREFIX = "sesame:"


class StateStore(abc.ABC):
    """Key-value store with expiry; see the module docstring for the contract."""

    def __init__(self, clock: Clock, prefix: str = DEFAULT_PREFIX) -> None:
        self.clock = clock
        self.prefix = prefix

    @abc.abstractmethod
    def put(self, key: str, value: JSONValue, *, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any entry."""

    @abc.abstractmethod
    def get(self, key: str) -> JSONValue | None:
        """The value under ``key``, or ``None`` when absent or expired."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""

    @abc.abstractmethod
    def add(self, key: str, value: JSONValue, *, ttl: int) -> bool:
        """Store ``value`` only if ``key`` is absent or expired; ``True`` if stored.

        Atomic: of many concurrent ``add`` calls on one absent key, in any
        number of processes, exactly one returns ``True`` (replay detection).
        """

    @abc.abstractmethod
    def pop(self, key: str) -> JSONValue | None:
        """Atomically get and delete: of concurrent callers, one gets the value."""

    @abc.abstractmethod
    def incr(self, key: str, *, ttl: int) -> int:
        """Add 1 to the counter under ``key`` and return the new value.

        An absent or expired counter starts at 1 and expires ``ttl`` seconds
        later; later increments do not move that expiry (a fixed window, as in
        "5 failures in 15 minutes").  Atomic: N concurrent increments add N.
        ``get`` on a counter returns its ``int`` value.  ``incr`` on a live key
        holding something else than an int is undefined (an error or a reset,
        depending on the backend): keep counters under their own keys.
        """

    @abc.abstractmethod
    def replace(self, key: str, value: JSONValue, *, expected: JSONValue | None = None,
                ttl: int | None = None) -> bool:
        """Replace the live value under ``key`` with ``value``, keeping its expiry
        (or giving it ``ttl`` seconds from now, when given: a session used is extended).

        With ``expected``, only when the current value equals it (compare-and-set;
        values compared by their canonical JSON encoding).  False, and nothing
        written, when the key is absent or expired, or holds another value.
        Atomic: of concurrent ``replace`` calls with the same ``expected``, in any
        number of processes, exactly one returns True (provided their new values
        differ from ``expected``: the winner's write is what makes the others fail).

        Never creates an entry, so a key that was deleted, popped or has expired
        stays absent (a finished login journey cannot come back), and moves the
        expiry only when ``ttl`` is given.
        """

    @abc.abstractmethod
    def ttl(self, key: str) -> int | None:
        """Whole seconds left before ``key`` expires (rounded up, so >= 1), or ``None``."""

    @abc.abstractmethod
    def purge_expired(self) -> int:
        """Physically remove expired entries; the number removed (0 when the backend expires by itself)."""

    # -- helpers shared by the backends ------------------------------------

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError("state store keys are non-empty strings")
        return self.prefix + key

    @staticmethod
    def _check_ttl(ttl: int) -> int:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ValueError(f"ttl must be a positive int number of seconds, not {ttl!r}")
        return ttl

    @staticmethod
    def _encode(value: JSONValue) -> str:
        if value is None:
            raise ValueError("None cannot be stored: get() answers None for an absent key")
        # Canonical (sorted keys, fixed separators): ``replace`` compares the
        # stored text with ``_encode(expected)``, and json.loads then _encode
        # gives the same text back (floats print as their shortest repr).
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @staticmethod
    def _decode(raw: str | bytes) -> JSONValue:
        return json.loads(raw)

    @staticmethod
    def _seconds_left(expires_at: float, now: float) -> int | None:
        left = expires_at - now
        return math.ceil(left) if left > 0 else None

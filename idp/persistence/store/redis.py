"""State store on Redis (DESIGN.md §5): production, shared by every node.

Each entry is a Redis hash ``{v: <JSON value>, e: <expiry, epoch seconds>}``.
The expiry ``e`` comes from the injected clock and is authoritative: an entry
whose ``e`` is not after ``clock.now()`` is absent, even if Redis still holds
it.  Redis's own TTL is only a cleanup bound: ``ttl + real_ttl_margin``
seconds of real time from the write, so a :class:`~idp.clock.FrozenClock`
that jumps forward (tests, benchmarks) still sees correct expiry, and with the
real clock Redis frees the memory shortly after the logical expiry.

``add``, ``incr`` and ``replace`` are Lua scripts (atomic on the server);
``put`` and ``pop`` are ``MULTI``/``EXEC`` transactions.

A Redis that restarts or is out of reach: each call gets short socket timeouts
and two quick retries on a fresh connection (a restart leaves the pool's
connections dead), then raises ``idp.errors.StoreUnavailable``, which the pages
answer with "start again" (503), never a stack trace.  A retried ``put``,
``add`` or ``replace`` is idempotent with the same arguments; a retried ``incr``
may count twice, which only makes a limit stricter.
"""
from __future__ import annotations

import functools
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from idp.errors import StoreUnavailable

from idp.clock import Clock
from idp.persistence.store.base import DEFAULT_PREFIX, JSONValue, StateStore

# KEYS[1] key; ARGV: value, expires_at, now, real ttl in ms.
_ADD_LUA = """
local e = tonumber(redis.call('HGET', KEYS[1], 'e'))
if e and e > tonumber(ARGV[3]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS[1] key; ARGV: expires_at if created now, now, real ttl in ms.
# A live counter keeps its expiry (fixed window); a dead one restarts at 1.
_INCR_LUA = """
local e = tonumber(redis.call('HGET', KEYS[1], 'e'))
if e and e > tonumber(ARGV[2]) then return redis.call('HINCRBY', KEYS[1], 'v', 1) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', '1', 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS[1] key; ARGV: value, now, expected value or '', new expires_at or '', real ttl in ms or ''.
# Only a live entry is rewritten (no HSET on a dead key, which would recreate it
# without a TTL); its 'e' and Redis's own TTL move only when a new expiry is given.
_REPLACE_LUA = """
local e = tonumber(redis.call('HGET', KEYS[1], 'e'))
if not e or e <= tonumber(ARGV[2]) then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'v') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'e', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
"""


def _unavailable(method):
    """Redis out of reach (after the client's retries) is ``StoreUnavailable``."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
    return wrapped


class RedisStore(StateStore):
    """:class:`StateStore` on a Redis server given by URL (``redis://host:port/db``)."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        prefix: str = DEFAULT_PREFIX,
        *,
        real_ttl_margin: int = 300,
        **client_kwargs: Any,
    ) -> None:
        super().__init__(clock, prefix)
        self.real_ttl_margin = real_ttl_margin
        options = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0, "health_check_interval": 30,
                   "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
                   "retry_on_error": [redis.ConnectionError, redis.TimeoutError], **client_kwargs}
        self.redis: redis.Redis = redis.Redis.from_url(url, decode_responses=True, **options)
        self._add_script = self.redis.register_script(_ADD_LUA)
        self._incr_script = self.redis.register_script(_INCR_LUA)
        self._replace_script = self.redis.register_script(_REPLACE_LUA)

    def _real_ttl_ms(self, ttl: int) -> int:
        return (self._check_ttl(ttl) + self.real_ttl_margin) * 1000

    def _live(self, raw_value: str | None, raw_expiry: str | None) -> JSONValue | None:
        if raw_value is None or raw_expiry is None or float(raw_expiry) <= self.clock.now():
            return None
        return self._decode(raw_value)

    @_unavailable
    def put(self, key: str, value: JSONValue, *, ttl: int) -> None:
        full, real_ms = self._key(key), self._real_ttl_ms(ttl)
        mapping = {"v": self._encode(value), "e": repr(self.clock.now() + ttl)}
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(full)
            pipe.hset(full, mapping=mapping)
            pipe.pexpire(full, real_ms)
            pipe.execute()

    @_unavailable
    def get(self, key: str) -> JSONValue | None:
        raw_value, raw_expiry = self.redis.hmget(self._key(key), ["v", "e"])
        return self._live(raw_value, raw_expiry)

    @_unavailable
    def delete(self, key: str) -> None:
        self.redis.delete(self._key(key))

    @_unavailable
    def add(self, key: str, value: JSONValue, *, ttl: int) -> bool:
        full, real_ms, encoded = self._key(key), self._real_ttl_ms(ttl), self._encode(value)
        now = self.clock.now()
        return bool(self._add_script(keys=[full], args=[encoded, repr(now + ttl), repr(now), real_ms]))

    @_unavailable
    def pop(self, key: str) -> JSONValue | None:
        full = self._key(key)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(full, ["v", "e"])
            pipe.delete(full)
            (raw_value, raw_expiry), _ = pipe.execute()
        return self._live(raw_value, raw_expiry)

    @_unavailable
    def incr(self, key: str, *, ttl: int) -> int:
        full, real_ms = self._key(key), self._real_ttl_ms(ttl)
        now = self.clock.now()
        return int(self._incr_script(keys=[full], args=[repr(now + ttl), repr(now), real_ms]))

    @_unavailable
    def replace(self, key: str, value: JSONValue, *, expected: JSONValue | None = None,
                ttl: int | None = None) -> bool:
        now = self.clock.now()
        args = [self._encode(value), repr(now), "" if expected is None else self._encode(expected),
                "" if ttl is None else repr(now + ttl), "" if ttl is None else self._real_ttl_ms(ttl)]
        return bool(self._replace_script(keys=[self._key(key)], args=args))

    @_unavailable
    def ttl(self, key: str) -> int | None:
        raw_expiry = self.redis.hget(self._key(key), "e")
        return None if raw_expiry is None else self._seconds_left(float(raw_expiry), self.clock.now())

    def purge_expired(self) -> int:
        """Nothing to do: Redis removes entries itself (see the module docstring)."""
        return 0

    def close(self) -> None:
        """Release the connection pool."""
        self.redis.close()

"""The state store (DESIGN.md §5): one interface with expiry, two backends.

``make_store("sql", database=db, clock=clock)`` stores in the SQL database
(the embedded default); ``make_store("redis://host:6379/0", clock=clock)`` in
Redis (production, several nodes).  See :mod:`idp.persistence.store.base` for the contract.
"""
from __future__ import annotations

from idp.clock import Clock
from idp.persistence.db import Database
from idp.persistence.store.base import DEFAULT_PREFIX, JSONValue, StateStore
from idp.persistence.store.redis import RedisStore
from idp.persistence.store.sql import SqlStore, state_entry

__all__ = ["DEFAULT_PREFIX", "JSONValue", "RedisStore", "SqlStore", "StateStore", "make_store", "state_entry"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def make_store(
    url_or_kind: str,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> StateStore:
    """Build the store named by configuration.

    ``"sql"`` selects :class:`SqlStore` on ``database`` (required then); a
    ``redis://``, ``rediss://`` or ``unix://`` URL selects :class:`RedisStore`.
    ``clock`` defaults to the wall clock.  Anything else raises ``ValueError``.
    """
    clock = clock if clock is not None else Clock()
    if url_or_kind == "sql":
        if database is None:
            raise ValueError('the "sql" state store needs the database')
        return SqlStore(database, clock, prefix)
    if url_or_kind.startswith(_REDIS_SCHEMES):
        return RedisStore(url_or_kind, clock, prefix)
    raise ValueError(f'unknown state store {url_or_kind!r}: use "sql" or a redis:// URL')

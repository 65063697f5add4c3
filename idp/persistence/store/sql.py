"""State store on the SQL database (DESIGN.md §5): the embedded default.

One table, ``state_entry(key, value JSON text, expires_at epoch seconds)``,
created by the Alembic migrations like every other table.  Each operation is
one SQL statement in its own transaction, so atomicity comes from the
database: ``add`` and ``incr`` are ``INSERT ... ON CONFLICT DO UPDATE`` whose
update only fires on an expired row (``add``) or distinguishes live from
expired rows (``incr``); ``pop`` is ``DELETE ... RETURNING``; ``replace`` is
an ``UPDATE`` whose ``WHERE`` asks for a live row (and the expected value).
This holds on PostgreSQL (row locks, the ``WHERE`` is re-checked on the latest
row version) and on SQLite >= 3.35 (one writer at a time).

Expired rows are invisible at once and physically removed by
:meth:`SqlStore.purge_expired`, which a periodic job should call.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column, Double, Engine, Index, Integer, String, Table, Text, case, cast, delete, literal, select, update,
)
from sqlalchemy.dialects import postgresql, sqlite

from idp.clock import Clock
from idp.persistence.db import Database
from idp.persistence.models import Base
from idp.persistence.store.base import DEFAULT_PREFIX, JSONValue, StateStore

MAX_KEY_LENGTH = 512

state_entry = Table(
    "state_entry",
    Base.metadata,
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", Double, nullable=False),  # seconds since the epoch, from the store's clock
    Index("ix_state_entry_expires_at", "expires_at"),
)

_t = state_entry.c


class SqlStore(StateStore):
    """:class:`StateStore` on ``state_entry``, for SQLite and PostgreSQL."""

    def __init__(self, database: Database | Engine, clock: Clock, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(clock, prefix)
        self.engine: Engine = database.engine if isinstance(database, Database) else database
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            self._insert: Any = postgresql.insert
        elif dialect == "sqlite":
            self._insert = sqlite.insert
        else:
            raise ValueError(f"SqlStore supports PostgreSQL and SQLite, not {dialect}")

    def _key(self, key: str) -> str:
        full = super()._key(key)
        if len(full) > MAX_KEY_LENGTH:
            raise ValueError(f"state store key longer than {MAX_KEY_LENGTH} characters")
        return full

    def _upsert(self, key: str, value: str, expires_at: float) -> Any:
        stmt = self._insert(state_entry).values(key=key, value=value, expires_at=expires_at)
        return stmt, {"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at}

    def put(self, key: str, value: JSONValue, *, ttl: int) -> None:
        stmt, new = self._upsert(self._key(key), self._encode(value), self.clock.now() + self._check_ttl(ttl))
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=[_t.key], set_=new))

    def get(self, key: str) -> JSONValue | None:
        query = select(_t.value).where(_t.key == self._key(key), _t.expires_at > self.clock.now())
        with self.engine.connect() as conn:
            raw = conn.execute(query).scalar_one_or_none()
        return None if raw is None else self._decode(raw)

    def delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(state_entry).where(_t.key == self._key(key)))

    def add(self, key: str, value: JSONValue, *, ttl: int) -> bool:
        now = self.clock.now()
        stmt, new = self._upsert(self._key(key), self._encode(value), now + self._check_ttl(ttl))
        # A live row makes the update's WHERE false: no row comes back.
        stmt = stmt.on_conflict_do_update(index_elements=[_t.key], set_=new, where=_t.expires_at <= now)
        with self.engine.begin() as conn:
            return conn.execute(stmt.returning(_t.key)).first() is not None

    def pop(self, key: str) -> JSONValue | None:
        stmt = delete(state_entry).where(_t.key == self._key(key)).returning(_t.value, _t.expires_at)
        with self.engine.begin() as conn:
            row = conn.execute(stmt).first()
        if row is None or row.expires_at <= self.clock.now():
            return None
        return self._decode(row.value)

    def incr(self, key: str, *, ttl: int) -> int:
        now = self.clock.now()
        stmt, _ = self._upsert(self._key(key), "1", now + self._check_ttl(ttl))
        expired = _t.expires_at <= now
        # Both SET expressions read the old row, so both see the same `expired`.
        stmt = stmt.on_conflict_do_update(
            index_elements=[_t.key],
            set_={
                "value": case((expired, literal("1")), else_=cast(cast(_t.value, Integer) + 1, Text)),
                "expires_at": case((expired, stmt.excluded.expires_at), else_=_t.expires_at),
            },
        )
        with self.engine.begin() as conn:
            return int(conn.execute(stmt.returning(_t.value)).scalar_one())

    def replace(self, key: str, value: JSONValue, *, expected: JSONValue | None = None) -> bool:
        # An UPDATE never inserts, and leaves expires_at alone.  Concurrent
        # compare-and-sets queue on the row lock; each loser's WHERE is then
        # re-checked against the winner's value and no longer matches.
        stmt = update(state_entry).where(_t.key == self._key(key), _t.expires_at > self.clock.now())
        if expected is not None:
            stmt = stmt.where(_t.value == self._encode(expected))
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(value=self._encode(value))).rowcount == 1

    def ttl(self, key: str) -> int | None:
        with self.engine.connect() as conn:
            expires_at = conn.execute(select(_t.expires_at).where(_t.key == self._key(key))).scalar_one_or_none()
        return None if expires_at is None else self._seconds_left(expires_at, self.clock.now())

    def purge_expired(self) -> int:
        """Delete this prefix's expired rows (other prefixes may run other clocks)."""
        stmt = delete(state_entry).where(
            _t.expires_at <= self.clock.now(), _t.key.startswith(self.prefix, autoescape=True)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

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

The per-request operations run their SQL text directly on the pooled DBAPI
connection (``engine.raw_connection()``): the statements are fixed, and
SQLAlchemy's statement building, caching and result machinery cost about ten
times the SQLite statement itself (bench/cpu).  On PostgreSQL the connection
is switched to autocommit for the one statement (one statement is one
transaction either way: no BEGIN/COMMIT round trips) and switched back before
it returns to the pool.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Column, Double, Engine, Index, String, Table, Text, delete

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

# The statements, written once for both databases (PostgreSQL and SQLite >= 3.35
# share this syntax); parameters in psycopg's style, turned into SQLite's at init.
_SQL = {
    "get": 'SELECT value FROM state_entry WHERE "key" = %(key)s AND expires_at > %(now)s',
    "put": 'INSERT INTO state_entry ("key", value, expires_at) VALUES (%(key)s, %(value)s, %(expires_at)s) '
           'ON CONFLICT ("key") DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at',
    "delete": 'DELETE FROM state_entry WHERE "key" = %(key)s',
    # A live row makes the update's WHERE false: no row comes back.
    "add": 'INSERT INTO state_entry ("key", value, expires_at) VALUES (%(key)s, %(value)s, %(expires_at)s) '
           'ON CONFLICT ("key") DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at '
           'WHERE state_entry.expires_at <= %(now)s RETURNING "key"',
    "pop": 'DELETE FROM state_entry WHERE "key" = %(key)s RETURNING value, expires_at',
    # Both SET expressions read the old row, so both see the same "expired".
    "incr": 'INSERT INTO state_entry ("key", value, expires_at) VALUES (%(key)s, \'1\', %(expires_at)s) '
            'ON CONFLICT ("key") DO UPDATE SET '
            "value = CASE WHEN state_entry.expires_at <= %(now)s THEN '1' "
            "ELSE CAST(CAST(state_entry.value AS INTEGER) + 1 AS TEXT) END, "
            'expires_at = CASE WHEN state_entry.expires_at <= %(now)s THEN excluded.expires_at '
            'ELSE state_entry.expires_at END RETURNING value',
    # An UPDATE never inserts, and leaves expires_at alone.  Concurrent
    # compare-and-sets queue on the row lock; each loser's WHERE is then
    # re-checked against the winner's value and no longer matches.
    "replace": 'UPDATE state_entry SET value = %(value)s WHERE "key" = %(key)s AND expires_at > %(now)s',
    "replace_expected": 'UPDATE state_entry SET value = %(value)s '
                        'WHERE "key" = %(key)s AND expires_at > %(now)s AND value = %(expected)s',
    "replace_ttl": 'UPDATE state_entry SET value = %(value)s, expires_at = %(expires_at)s '
                   'WHERE "key" = %(key)s AND expires_at > %(now)s',
    "replace_expected_ttl": 'UPDATE state_entry SET value = %(value)s, expires_at = %(expires_at)s '
                            'WHERE "key" = %(key)s AND expires_at > %(now)s AND value = %(expected)s',
    "ttl": 'SELECT expires_at FROM state_entry WHERE "key" = %(key)s',
}
_PYFORMAT = re.compile(r"%\((\w+)\)s")


class SqlStore(StateStore):
    """:class:`StateStore` on ``state_entry``, for SQLite and PostgreSQL."""

    def __init__(self, database: Database | Engine, clock: Clock, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(clock, prefix)
        self.engine: Engine = database.engine if isinstance(database, Database) else database
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            self._sql = dict(_SQL)
        elif dialect == "sqlite":
            self._sql = {name: _PYFORMAT.sub(r":\1", sql) for name, sql in _SQL.items()}
        else:
            raise ValueError(f"SqlStore supports PostgreSQL and SQLite, not {dialect}")
        self._postgresql = dialect == "postgresql"

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A DBAPI cursor on a pooled connection, for one statement, committed.

        PostgreSQL: autocommit while we hold it (the statement is its own
        transaction, as with ``engine.begin()``), restored before the connection
        goes back.  SQLite: the module opens a transaction before a write; it is
        committed here.  Any error rolls back.
        """
        fairy = self.engine.raw_connection()
        dbapi = fairy.dbapi_connection
        try:
            if self._postgresql:
                dbapi.autocommit = True
            cursor = dbapi.cursor()
            try:
                yield cursor
                if not self._postgresql:
                    dbapi.commit()
            finally:
                cursor.close()
        except BaseException:
            with contextlib.suppress(Exception):
                dbapi.rollback()
            raise
        finally:
            if self._postgresql:
                with contextlib.suppress(Exception):
                    dbapi.autocommit = False
            fairy.close()

    def _one(self, name: str, params: dict[str, Any]) -> Any:
        """The first row of statement ``name`` (``None`` when none)."""
        with self._cursor() as cursor:
            cursor.execute(self._sql[name], params)
            return cursor.fetchone() if cursor.description is not None else None

    def _count(self, name: str, params: dict[str, Any]) -> int:
        """The number of rows statement ``name`` changed."""
        with self._cursor() as cursor:
            cursor.execute(self._sql[name], params)
            return cursor.rowcount

    def _key(self, key: str) -> str:
        full = super()._key(key)
        if len(full) > MAX_KEY_LENGTH:
            raise ValueError(f"state store key longer than {MAX_KEY_LENGTH} characters")
        return full

    def put(self, key: str, value: JSONValue, *, ttl: int) -> None:
        self._count("put", {"key": self._key(key), "value": self._encode(value),
                            "expires_at": self.clock.now() + self._check_ttl(ttl)})

    def get(self, key: str) -> JSONValue | None:
        row = self._one("get", {"key": self._key(key), "now": self.clock.now()})
        return None if row is None else self._decode(row[0])

    def delete(self, key: str) -> None:
        self._count("delete", {"key": self._key(key)})

    def add(self, key: str, value: JSONValue, *, ttl: int) -> bool:
        now = self.clock.now()
        row = self._one("add", {"key": self._key(key), "value": self._encode(value),
                                "expires_at": now + self._check_ttl(ttl), "now": now})
        return row is not None

    def pop(self, key: str) -> JSONValue | None:
        row = self._one("pop", {"key": self._key(key)})
        if row is None or row[1] <= self.clock.now():
            return None
        return self._decode(row[0])

    def incr(self, key: str, *, ttl: int) -> int:
        now = self.clock.now()
        row = self._one("incr", {"key": self._key(key), "expires_at": now + self._check_ttl(ttl), "now": now})
        return int(row[0])

    def replace(self, key: str, value: JSONValue, *, expected: JSONValue | None = None,
                ttl: int | None = None) -> bool:
        now = self.clock.now()
        params = {"key": self._key(key), "value": self._encode(value), "now": now}
        name = "replace"
        if expected is not None:
            params["expected"] = self._encode(expected)
            name += "_expected"
        if ttl is not None:
            params["expires_at"] = now + self._check_ttl(ttl)
            name += "_ttl"
        return self._count(name, params) == 1

    def ttl(self, key: str) -> int | None:
        row = self._one("ttl", {"key": self._key(key)})
        return None if row is None else self._seconds_left(row[0], self.clock.now())

    def purge_expired(self) -> int:
        """Delete this prefix's expired rows (other prefixes may run other clocks)."""
        stmt = delete(state_entry).where(
            _t.expires_at <= self.clock.now(), _t.key.startswith(self.prefix, autoescape=True)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

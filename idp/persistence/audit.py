"""Audit events (DESIGN.md §7): a row and a structured log line for each.

Never a password, PIN, code or full national number in either.

The row is one ``INSERT`` run on the pooled DBAPI connection, with the
columns' own SQLAlchemy bind processors (so values are stored exactly as the
ORM would store them: the timestamp, the JSON ``detail``): an audit row is
written for every SAML response, and the ORM's unit of work cost several
times the insert itself (bench/cpu).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any

from idp.persistence.models import AuditEvent

log = logging.getLogger("sesame.audit")

_COLUMNS = ("time", "event", "result", "person_fedid", "portal", "key", "level", "request_id", "remote_addr",
            "detail")


class _Insert:
    """``INSERT INTO audit_event (...)`` for one engine: SQL text and bind processors, made once."""

    def __init__(self, engine) -> None:
        dialect = engine.dialect
        table = AuditEvent.__table__
        if {c.name for c in table.columns} != {"id", *_COLUMNS}:  # a column this writer does not know
            raise LookupError("audit_event has other columns than the direct INSERT writes")
        self.engine = engine
        self.postgresql = dialect.name == "postgresql"
        self.processors = {}
        for name in _COLUMNS:
            processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
        marks = [f"%({name})s" if dialect.paramstyle == "pyformat" else f":{name}" for name in _COLUMNS]
        if dialect.paramstyle not in ("pyformat", "named", "qmark"):
            raise ValueError(f"unsupported DBAPI paramstyle {dialect.paramstyle}")
        if dialect.paramstyle == "qmark":  # sqlite3 also takes :name with a mapping
            marks = [f":{name}" for name in _COLUMNS]
        quote = dialect.identifier_preparer.quote
        self.sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in _COLUMNS)}) "
                    f"VALUES ({', '.join(marks)})")

    def __call__(self, values: dict[str, Any]) -> None:
        params = {name: (self.processors[name](values[name]) if name in self.processors else values[name])
                  for name in _COLUMNS}
        fairy = self.engine.raw_connection()
        dbapi = fairy.dbapi_connection
        try:
            if self.postgresql:  # one statement, its own transaction: no BEGIN/COMMIT round trips
                dbapi.autocommit = True
            cursor = dbapi.cursor()
            try:
                cursor.execute(self.sql, params)
            finally:
                cursor.close()
            if not self.postgresql:
                dbapi.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                dbapi.rollback()
            raise
        finally:
            if self.postgresql:
                with contextlib.suppress(Exception):
                    dbapi.autocommit = False
            fairy.close()


class Audit:
    def __init__(self, database) -> None:
        self.database = database
        self._insert: _Insert | bool | None = None  # False: the ORM writes the rows

    def log(self, event: str, **fields: Any) -> None:
        """A structured log line only, for frequent events that need no row."""
        log.info(event, extra={"audit": {"event": event, **{k: v for k, v in fields.items() if v is not None}}})

    def record(self, event: str, *, result: str = "ok", person_fedid: str | None = None,
               portal: str | None = None, key: str | None = None, level: int | None = None,
               request_id: str | None = None, remote_addr: str | None = None,
               **detail: Any) -> None:
        fields = {"event": event, "result": result, "person_fedid": person_fedid, "portal": portal,
                  "key": key, "level": level, "request_id": request_id, "remote_addr": remote_addr}
        log.info(event, extra={"audit": {**{k: v for k, v in fields.items() if v is not None}, **detail}})
        values = {k: (v[:1024] if isinstance(v, str) else v) for k, v in fields.items()}
        try:
            if self._insert is None:
                try:
                    self._insert = _Insert(self.database.engine)
                except LookupError:
                    self._insert = False
            if self._insert:
                self._insert({"time": dt.datetime.now(dt.timezone.utc), "detail": detail, **values})
            else:  # the ORM, which knows every column's default
                with self.database.session() as s:
                    s.add(AuditEvent(detail=detail, **values))
        except Exception:  # the audit trail must not turn a login into a 500; the log line stands
            log.exception("audit row not written for %s", event)

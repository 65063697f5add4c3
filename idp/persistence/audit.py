"""Audit events (DESIGN.md §7): a row and a structured log line for each.

Never a password, PIN, code or full national number in either.
"""
from __future__ import annotations

import logging
from typing import Any

from idp.persistence.models import AuditEvent

log = logging.getLogger("sesame.audit")


class Audit:
    def __init__(self, database) -> None:
        self.database = database

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
        try:
            with self.database.session() as s:
                s.add(AuditEvent(detail=detail, **{k: (v[:1024] if isinstance(v, str) else v)
                                                   for k, v in fields.items()}))
        except Exception:  # the audit trail must not turn a login into a 500; the log line stands
            log.exception("audit row not written for %s", event)

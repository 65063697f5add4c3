"""Structured logging: one JSON object a line (or plain text for the demo).

A JSON line's own fields are ``time``, ``severity`` (info, warning, ...),
``logger``, ``message`` and ``exception``; an audit event's or a SAML
message's fields are added beside them, never over them.  ``level`` is an
audit event's level of assurance, as in the audit table (the severity was
named ``level`` too, and an audit line lost one of the two).
"""
from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "severity": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        for extra in ("audit", "saml"):
            for name, value in (getattr(record, extra, None) or {}).items():
                entry.setdefault(name, value)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        audit = getattr(record, "audit", None)
        return f"{line} {json.dumps(audit, ensure_ascii=False, default=str)}" if audit else line


class CurrentStderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record, not as it was when logging was
    set up: whoever replaces it later (a daemon, a test's capture) keeps the log lines,
    and a replaced stream that was closed is never written to."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(*, level: str, fmt: str) -> None:
    root = logging.getLogger("sesame")
    if getattr(root, "_sesame_configured", False):
        root.setLevel(level.upper())
        return
    handler = CurrentStderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    root._sesame_configured = True  # type: ignore[attr-defined]

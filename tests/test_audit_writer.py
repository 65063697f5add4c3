"""Audit rows written by the direct INSERT (idp.persistence.audit) read back as the ORM wrote them."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

import idp.persistence.audit as audit_module
from idp.persistence.audit import Audit
from idp.persistence.db import Database
from idp.persistence.models import AuditEvent


def _rows(db):
    with db.session() as s:
        return [(e.event, e.result, e.person_fedid, e.portal, e.key, e.level, e.request_id, e.remote_addr,
                 e.detail, e.time) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_direct_insert_and_orm_give_the_same_rows(tmp_path, monkeypatch):
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.upgrade()
    direct = Audit(db)
    fields = dict(result="ok", person_fedid="f" * 36, portal="https://p.example/" + "x" * 2000, key="password",
                  level=100, request_id="_r1", remote_addr="192.0.2.1", signed_request=True, encrypted=False,
                  reason="é\"'<>")
    direct.record("saml.response", **fields)
    assert direct._insert and type(direct._insert).__name__ == "_Insert"
    monkeypatch.setattr(audit_module, "_COLUMNS", audit_module._COLUMNS[:-1])  # a column it does not know
    orm = Audit(db)
    orm.record("saml.response", **fields)
    assert orm._insert is False
    first, second = _rows(db)
    assert first[:-1] == second[:-1]
    assert len(first[3]) == 1024 and first[8] == {"signed_request": True, "encrypted": False, "reason": "é\"'<>"}
    assert abs((second[-1] - first[-1]).total_seconds()) < 60 and isinstance(first[-1], dt.datetime)
    db.dispose()


def test_a_failing_database_does_not_raise(tmp_path, caplog):
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")  # not migrated: no audit_event table
    Audit(db).record("saml.response", portal="p")
    assert any("audit row not written" in r.getMessage() for r in caplog.records)
    db.dispose()

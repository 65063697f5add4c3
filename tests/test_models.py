"""Persistent records and their migrations (idp.persistence.models, idp.persistence.db, DESIGN.md §5).

Every test runs on SQLite and on PostgreSQL (``db_url`` of tests/services.py),
with the schema built by the Alembic migrations, never by ``create_all``.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError

import idp
from idp.persistence.db import Database, alembic_config, make_engine, normalize_url, upgrade
from idp.persistence.models import AuditEvent, Base, Credential, Person
from idp.persistence.store.sql import state_entry

TABLES = {"person", "credential", "portal", "audit_event", "state_entry",
          "office", "officer_role", "registration", "activation_code",  # the registration office (0003)
          "own_key"}  # Sésame's own keys and their rollover (0004)


def _person(nrn: str = "85073003328", **kw: object) -> Person:
    return Person(nrn=nrn, surname="Peeters", given_name="Marie", **kw)


def _count(db: Database, model: type[Base]) -> int:
    with db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def test_migrated_schema_matches_the_models(db: Database) -> None:
    assert state_entry.metadata is Base.metadata
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        assert set(sa.inspect(conn).get_table_names()) == TABLES | {"alembic_version"}
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert MigrationContext.configure(conn).get_current_revision() == head


def test_migrations_are_idempotent_and_reversible(db: Database) -> None:
    db.upgrade()  # already at head: nothing to do, no error
    with db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert set(sa.inspect(db.engine).get_table_names()) == {"alembic_version"}
    db.upgrade()
    assert TABLES <= set(sa.inspect(db.engine).get_table_names())


def test_upgrade_needs_no_ini_nor_working_directory(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script_location = Path(alembic_config().get_main_option("script_location") or "")
    assert script_location == Path(idp.__file__).resolve().parent / "persistence" / "migrations"
    upgrade(sqlite_url)
    assert TABLES <= set(sa.inspect(make_engine(sqlite_url)).get_table_names())


def test_person_with_a_credential(db: Database) -> None:
    with db.session() as s:
        person = _person(birth_date=dt.date(1985, 7, 30))
        person.credentials.append(Credential(key="password", username="marie", secret_hash="$argon2id$..."))
        s.add(person)
    with db.session() as s:
        got = s.scalars(sa.select(Person).where(Person.nrn == "85073003328")).one()
        assert len(got.fedid) == 36 and got.pref_language == "fr"
        assert got.birth_date == dt.date(1985, 7, 30)
        [cred] = got.credentials
        assert (cred.key, cred.username, cred.status, cred.data) == ("password", "marie", "active", {})


def test_duplicate_username_for_the_same_key_is_refused(db: Database) -> None:
    with db.session() as s:
        s.add(_person(credentials=[Credential(key="password", username="marie")]))
    with pytest.raises(IntegrityError):
        with db.session() as s:
            s.add(_person("90010100174", credentials=[Credential(key="password", username="marie")]))
    assert _count(db, Person) == 1  # the failed transaction left nothing behind
    with db.session() as s:  # same username for another key, and keys without username: fine
        person = s.scalars(sa.select(Person)).one()
        person.credentials += [Credential(key="totp", username="marie"), Credential(key="totp"), Credential(key="totp")]
    assert _count(db, Credential) == 4


def test_duplicate_national_number_is_refused(db: Database) -> None:
    with db.session() as s:
        s.add(_person())
    with pytest.raises(IntegrityError):
        with db.session() as s:
            s.add(_person())


def test_deleting_a_person_deletes_the_credentials(db: Database) -> None:
    with db.session() as s:
        s.add(_person(credentials=[Credential(key="password", username="m"), Credential(key="totp")]))
    with db.session() as s:
        s.delete(s.scalars(sa.select(Person)).one())
    assert (_count(db, Person), _count(db, Credential)) == (0, 0)


def test_database_cascades_without_the_orm(db: Database) -> None:
    """ON DELETE CASCADE in the schema (SQLite: needs the foreign_keys pragma)."""
    with db.session() as s:
        s.add(_person(credentials=[Credential(key="password", username="m")]))
    with db.engine.begin() as conn:
        conn.execute(sa.delete(Person.__table__))
    assert _count(db, Credential) == 0
    with pytest.raises(IntegrityError):  # and a credential needs an existing person
        with db.session() as s:
            s.add(Credential(person_id=12345, key="password"))


def test_audit_event_round_trip(db: Database) -> None:
    when = dt.datetime(2025, 3, 14, 9, 26, 53, tzinfo=dt.timezone.utc)
    detail = {"reason": "pin_blocked", "attempts": [1, 2, 3], "sp": {"name": "Mon Espace — Sésame"}, "ok": False}
    with db.session() as s:
        s.add(AuditEvent(time=when, event="login.failure", result="pin_blocked", key="eid", level=500,
                         request_id="_abc", detail=detail))
        s.add(AuditEvent(event="login.success", result="ok"))
    with db.session() as s:
        got = s.scalars(sa.select(AuditEvent).where(AuditEvent.event == "login.failure")).one()
        other = s.scalars(sa.select(AuditEvent).where(AuditEvent.event == "login.success")).one()
    assert got.detail == detail and other.detail == {}
    assert (got.key, got.level, got.request_id) == ("eid", 500, "_abc")
    stored = got.time if got.time.tzinfo else got.time.replace(tzinfo=dt.timezone.utc)  # SQLite drops the zone
    assert stored == when
    assert other.time is not None


def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        with db.session() as s:
            s.add(_person())
            s.flush()
            raise RuntimeError("boom")
    assert _count(db, Person) == 0


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_in_memory_sqlite_is_one_shared_database() -> None:
    db = Database("sqlite://")
    db.upgrade()
    with db.session() as s:
        s.add(_person())
    assert _count(db, Person) == 1


def test_postgresql_urls_use_psycopg() -> None:
    assert normalize_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert make_engine("postgresql://u@127.0.0.1/d").dialect.driver == "psycopg"

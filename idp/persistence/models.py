"""Persistent records (DESIGN.md §5): people, their keys, portals, audit events.

SQLite by default, PostgreSQL in production; schema changes are Alembic
migrations in ``idp/migrations``.  Short-lived state (sessions, login
journeys, counters) is not here but in the state store (``idp.persistence.store``).
"""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# Every constraint gets a deterministic name, so that migrations (and SQLite
# batch mode, which rebuilds tables) can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Person(Base):
    """A citizen: national register number, or a registration-office identifier."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fedid: Mapped[str] = mapped_column(String(36), unique=True, default=lambda: str(uuid.uuid4()))
    nrn: Mapped[str | None] = mapped_column(String(11), unique=True)
    surname: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[dt.date | None] = mapped_column(nullable=True)
    mail: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(16))   # E.164 mobile number (SMS codes)
    pref_language: Mapped[str] = mapped_column(String(2), default="fr")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)

    credentials: Mapped[list["Credential"]] = relationship(back_populates="person", cascade="all, delete-orphan")


class Credential(Base):
    """One digital key of one person (password, TOTP secret, token card...)."""

    __tablename__ = "credential"
    __table_args__ = (
        UniqueConstraint("key", "username", name="uq_credential_key_username"),
        Index("ix_credential_person_key", "person_id", "key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(32))           # adapter id
    username: Mapped[str | None] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(Text)  # Argon2 hash; never a clear secret
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | pending | revoked
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    # A number that only ever grows (TOTP: the last accepted time step), moved by one
    # conditional UPDATE so that two requests can never both accept the same step.
    counter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    person: Mapped[Person] = relationship(back_populates="credentials")


class Portal(Base):
    """A registered SAML service provider: its metadata and its policy."""

    __tablename__ = "portal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(1024), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    metadata_xml: Mapped[str] = mapped_column(Text)
    metadata_source: Mapped[str | None] = mapped_column(String(2048))  # file path or URL
    policy: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow, onupdate=_utcnow)


class AuditEvent(Base):
    """Who did what, where, with which key, at which level, with which result."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_time", "time"), Index("ix_audit_event_event", "event"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    event: Mapped[str] = mapped_column(String(64))        # login.success, saml.rejected, portal.registered...
    result: Mapped[str] = mapped_column(String(32))       # ok | error code
    person_fedid: Mapped[str | None] = mapped_column(String(36))
    portal: Mapped[str | None] = mapped_column(String(1024))
    key: Mapped[str | None] = mapped_column(String(32))
    level: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(256))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)

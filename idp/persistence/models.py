"""Persistent records (DESIGN.md §5): people, their keys, portals, audit events.

SQLite by default, PostgreSQL in production; schema changes are Alembic
migrations in ``idp/migrations``.  Short-lived state (sessions, login
journeys, counters) is not here but in the state store (``idp.persistence.store``).
"""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy import text
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


# --- the registration office (idp/office) -----------------------------------------------
class Office(Base):
    """A registration office (bureau d'enregistrement local), by its short code."""

    __tablename__ = "office"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class OfficerRole(Base):
    """A person who may register people at one office (granted with `sesame officer grant`)."""

    __tablename__ = "officer_role"
    __table_args__ = (UniqueConstraint("office_id", "person_id", name="uq_officer_role_office_person"),
                      Index("ix_officer_role_person", "person_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("office.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class Registration(Base):
    """A person seen in person at an office, with the identity document shown.

    One registration per document (type, number, issuing country): the same
    passport cannot make two people."""

    __tablename__ = "registration"
    __table_args__ = (UniqueConstraint("doc_type", "doc_number", "doc_country", name="uq_registration_document"),
                      Index("ix_registration_office", "office_id"),
                      Index("ix_registration_person", "person_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    office_id: Mapped[int] = mapped_column(ForeignKey("office.id"))
    officer_fedid: Mapped[str] = mapped_column(String(36))  # who registered (kept if the role goes)
    doc_type: Mapped[str] = mapped_column(String(16))       # passport | id_card | residence_permit
    doc_number: Mapped[str] = mapped_column(String(32))     # upper case, without spaces or dashes
    doc_country: Mapped[str] = mapped_column(String(2))     # ISO 3166-1 alpha-2
    doc_expiry: Mapped[dt.date] = mapped_column()
    nationality: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    terms_accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ActivationCode(Base):
    """An activation code and the e-mail link that goes with it: both only as HMACs.

    ``status``: pending → redeemed (the right code, once) → activated (a key
    set up), or replaced (re-issued).  A pending code whose ``attempts`` reached
    the limit is void, one past ``expires_at`` expired: both read, never written,
    so that a right code whose attempt was counted in time still redeems."""

    __tablename__ = "activation_code"
    __table_args__ = (Index("ix_activation_code_registration", "registration_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registration.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    link_hash: Mapped[str] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    issued_by: Mapped[str] = mapped_column(String(36))      # the officer's fedid
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --- Sésame's own keys and their rollover (keys/keyring.py) -------------------------------
class OwnKey(Base):
    """One of Sésame's own keys (signing or encryption) and its rollover state.

    ``backend``: "configured" (each node's ``[signing]`` key), "sealed" (the
    PEM private key in ``sealed_key``, sealed with the seal key, so that every
    node has it) or "hsm" (``key_ref`` is the key's label on the ``[hsm]``
    token).  The certificate is public and lives here so every node publishes it."""

    __tablename__ = "own_key"
    __table_args__ = (
        # At most one current key per use, whatever two nodes do at once.
        Index("uq_own_key_current", "use", unique=True, sqlite_where=text("state = 'current'"),
              postgresql_where=text("state = 'current'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    use: Mapped[str] = mapped_column(String(16))          # signing | encryption
    label: Mapped[str] = mapped_column(String(64), unique=True)
    backend: Mapped[str] = mapped_column(String(16))
    key_ref: Mapped[str] = mapped_column(String(200), default="")
    sealed_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    certificate_pem: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))        # new | published | current | previous | retired
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)

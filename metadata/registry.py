"""The portal registry: registered service providers, their metadata and policy.

Rows live in the table the caller hands in (``model``: Sésame's
``idp.persistence.models.Portal``), so this package imports nothing of ``idp``
(DESIGN.md §5: shared by every process).
``PortalRegistry.get`` is on the path of every SSO request, so it reads no
database at all in the usual case.  Each process keeps an index of every
registered row, entity ID -> ``(id, updated_at)``, and the parsed portals,
parsed at their first lookup and kept while the row's tag is the same.  The
index is checked against the table at most every ``refresh_seconds`` (1 s by
default, of real time: ``time.monotonic``, whatever the injected clock) by one aggregate query, ``count(*),
max(updated_at), sum(id)``, and reloaded (tags only, no parsing) when that
changed.  Every write moves ``max(updated_at)`` strictly forward (a write
stamps the row later than any row of the table), so a portal replaced or
removed by another process (the CLI, another node) is seen within that delay,
without restart, and a registration at once: a lookup of an entity ID missing
from the index asks the database (one indexed SELECT), so a portal registered
a moment ago is never refused for the delay.  Writes through this registry are
seen by it at once.

At lookup ``validUntil`` is checked against the clock: metadata that expired
after registration makes the portal unknown, with a warning in the log.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metadata.errors import MetadataError
from metadata.policy import PortalPolicy, policy_from_mapping
from metadata.portal_metadata import PortalMetadata, format_instant, parse_sp_metadata, reload_sp_metadata

log = logging.getLogger("sesame.metadata")

SessionFactory = Callable[[], AbstractContextManager[Session]]


class Clock(Protocol):
    def now(self) -> float: ...

MAX_NAME = 200      # the portal table's name column
MAX_SOURCE = 2048   # its metadata_source column


@dataclass(frozen=True)
class RegisteredPortal:
    """A registered portal; ``updated_at`` is timezone-aware UTC."""

    entity_id: str
    name: str
    metadata: PortalMetadata
    policy: PortalPolicy
    source: str | None
    updated_at: dt.datetime


def _already_registered(entity_id: str) -> MetadataError:
    return MetadataError(f"portal {entity_id!r} is already registered (use replace to update it)")


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; the column stores UTC.
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


class PortalRegistry:
    """Register, list, remove and look up portals.

    ``session_factory()`` returns a context manager yielding a SQLAlchemy
    ``Session``; the registry commits its own writes.  ``known_keys`` and
    ``levels`` are the configured adapter ids and level scale, against which
    every policy is checked, at registration and when read back.
    """

    def __init__(self, session_factory: SessionFactory, *, model: Any, clock: Clock,
                 known_keys: Iterable[str], levels: Iterable[int], refresh_seconds: float = 1.0) -> None:
        self._sessions = session_factory
        self._model = model  # the mapped class of the portal table
        self._clock = clock
        self._known_keys = tuple(known_keys)
        self._levels = tuple(levels)
        self._cache: dict[str, tuple[tuple[int, dt.datetime], RegisteredPortal | None]] = {}
        self._lock = threading.Lock()
        self.refresh_seconds = float(refresh_seconds)
        # every registered row: entity ID -> (id, updated_at); None until first read
        self._tags: dict[str, tuple[int, dt.datetime]] | None = None
        self._signature: tuple | None = None
        self._checked_at: float | None = None

    # -- writes -------------------------------------------------------------------
    def add(self, *, xml: bytes, source: str | None, policy: PortalPolicy,
            name: str | None = None, replace: bool = False) -> RegisteredPortal:
        """Check and store a portal; return it as stored.

        Everything is checked before anything is written (metadata at the
        clock's instant, policy, name, source), and the write is one
        transaction.  A portal with the same entity ID is refused with
        ``MetadataError`` unless ``replace`` is true; replacing keeps the row.
        """
        metadata = parse_sp_metadata(xml, now=self._clock.now())
        policy = self._policy(policy.to_mapping())
        if policy.encrypt_assertions and not metadata.encryption_certs:
            raise MetadataError("the policy asks for encrypted assertions but the metadata has no "
                                "KeyDescriptor for encryption")
        name = " ".join((name or policy.display_name or metadata.display_name or metadata.entity_id).split())
        name = name[:MAX_NAME]
        if source is not None and len(source) > MAX_SOURCE:
            raise MetadataError(f"metadata source is longer than {MAX_SOURCE} characters")
        try:
            text = bytes(xml).decode("utf-8")
        except UnicodeDecodeError:
            raise MetadataError("metadata must be encoded in UTF-8 to be stored") from None
        try:
            with self._sessions() as session:
                row = session.scalars(select(self._model).where(self._model.entity_id == metadata.entity_id)).one_or_none()
                if row is not None and not replace:
                    raise _already_registered(metadata.entity_id)
                now = dt.datetime.now(dt.timezone.utc)
                latest = session.scalar(select(func.max(self._model.updated_at)))
                if latest is not None:  # later than every row: max(updated_at) tells every process
                    now = max(now, _utc(latest) + dt.timedelta(microseconds=1))
                if row is None:
                    row = self._model(entity_id=metadata.entity_id, created_at=now)
                    session.add(row)
                else:  # strictly later than before, so every cache sees the change
                    now = max(now, _utc(row.updated_at) + dt.timedelta(microseconds=1))
                row.name, row.metadata_xml, row.metadata_source = name, text, source
                row.policy, row.updated_at = policy.to_mapping(), now
                session.commit()
                stored_at = session.scalars(select(self._model.updated_at).where(self._model.id == row.id)).one()
        except IntegrityError:  # another process registered the same entity ID meanwhile
            raise _already_registered(metadata.entity_id) from None
        with self._lock:
            if self._tags is not None:
                self._tags[metadata.entity_id] = (row.id, _utc(stored_at))
        log.info("portal registered", extra={"event": "portal.registered", "portal": metadata.entity_id,
                                             "replace": replace, "source": source})
        return RegisteredPortal(metadata.entity_id, name, metadata, policy, source, _utc(stored_at))

    def remove(self, entity_id: str) -> bool:
        """Delete a portal; False when it was not registered."""
        with self._sessions() as session:
            row = session.scalars(select(self._model).where(self._model.entity_id == entity_id)).one_or_none()
            if row is not None:
                session.delete(row)
                session.commit()
        with self._lock:
            self._cache.pop(entity_id, None)
            if self._tags is not None:
                self._tags.pop(entity_id, None)
        if row is not None:
            log.info("portal removed", extra={"event": "portal.removed", "portal": entity_id})
        return row is not None

    # -- reads --------------------------------------------------------------------
    def get(self, entity_id: str) -> RegisteredPortal | None:
        """The portal registered as ``entity_id``, or None when unknown, expired or unreadable.

        No database read when the index knows the entity ID and its parsed
        portal is cached (see the module docstring); a changed row is parsed
        again, an entity ID the index lacks is looked up in the table.
        """
        tags = self._fresh_tags()
        tag = tags.get(entity_id)
        if tag is not None:
            cached = self._cache.get(entity_id)
            if cached is not None and cached[0] == tag:
                return self._usable(cached[1], entity_id)
        return self._usable(self._read(entity_id), entity_id)

    def refresh(self) -> None:
        """Check the table now (as a lookup does every ``refresh_seconds``)."""
        self._checked_at = None
        self._fresh_tags()

    def _fresh_tags(self) -> dict[str, tuple[int, dt.datetime]]:
        tags, checked = self._tags, self._checked_at
        now = time.monotonic()
        if tags is not None and checked is not None and now - checked < self.refresh_seconds:
            return tags
        model = self._model
        with self._sessions() as session:
            count, latest, ids = session.execute(
                select(func.count(model.id), func.max(model.updated_at), func.sum(model.id))).one()
            signature = (count, _utc(latest) if latest is not None else None, ids)
            if tags is None or signature != self._signature:
                tags = {row.entity_id: (row.id, _utc(row.updated_at))
                        for row in session.execute(select(model.entity_id, model.id, model.updated_at))}
                with self._lock:
                    self._tags, self._signature = tags, signature
                    for gone in [e for e in self._cache if e not in tags]:
                        del self._cache[gone]
        self._checked_at = now
        return tags

    def _read(self, entity_id: str) -> RegisteredPortal | None:
        """One indexed SELECT of (id, updated_at); the stored XML is parsed only when the row changed."""
        with self._sessions() as session:
            tag_row = session.execute(
                select(self._model.id, self._model.updated_at).where(self._model.entity_id == entity_id)
            ).one_or_none()
            if tag_row is None:
                with self._lock:
                    self._cache.pop(entity_id, None)
                    if self._tags is not None:
                        self._tags.pop(entity_id, None)
                return None
            tag = (tag_row.id, _utc(tag_row.updated_at))
            with self._lock:
                if self._tags is not None:
                    self._tags[entity_id] = tag
            cached = self._cache.get(entity_id)
            if cached is not None and cached[0] == tag:
                return cached[1]
            row = session.get(self._model, tag_row.id)
            if row is None:  # removed between the two statements
                return None
            return self._load(row)

    def list(self) -> list[RegisteredPortal]:
        """Every readable registered portal, by entity ID, expired ones included."""
        portals = []
        with self._sessions() as session:
            for row in session.scalars(select(self._model).order_by(self._model.entity_id)):
                cached = self._cache.get(row.entity_id)
                portal = cached[1] if cached and cached[0] == (row.id, _utc(row.updated_at)) else self._load(row)
                if portal is not None:
                    portals.append(portal)
        return portals

    # -- internals ----------------------------------------------------------------
    def _policy(self, mapping: Any) -> PortalPolicy:
        return policy_from_mapping(mapping, known_keys=self._known_keys, levels=self._levels)

    def _load(self, row: Any) -> RegisteredPortal | None:
        """Parse a row and cache the result, a failure included (cached as None) until the row changes."""
        tag = (row.id, _utc(row.updated_at))
        try:
            metadata = reload_sp_metadata(row.metadata_xml.encode("utf-8"))
            policy = self._policy(row.policy or {})
            portal: RegisteredPortal | None = RegisteredPortal(
                row.entity_id, row.name, metadata, policy, row.metadata_source, tag[1])
        except MetadataError as exc:
            log.warning("registered portal %s is unusable: %s", row.entity_id, exc.detail,
                        extra={"event": "portal.unusable", "portal": row.entity_id})
            portal = None
        else:
            if metadata.cert_not_after is not None and metadata.cert_not_after <= self._clock.now():
                log.warning("portal %s publishes a certificate that expired on %s", row.entity_id,
                            format_instant(metadata.cert_not_after),
                            extra={"event": "portal.cert_expired", "portal": row.entity_id})
        with self._lock:
            self._cache[row.entity_id] = (tag, portal)
        return portal

    def _usable(self, portal: RegisteredPortal | None, entity_id: str) -> RegisteredPortal | None:
        if portal is None:
            return None
        problem = portal.metadata.time_problem(self._clock.now())
        if problem:
            log.warning("portal %s treated as unknown: %s", entity_id, problem,
                        extra={"event": "portal.expired", "portal": entity_id})
            return None
        return portal

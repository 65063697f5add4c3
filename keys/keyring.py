"""Rollover of Sésame's own keys (signing and encryption), with the state in the database.

Every node reads the same table, so a step taken on one node (``sesame keys
…``) reaches all of them.  A key goes through these states, one command each::

    new ──publish──▶ published ──activate──▶ current ──(next activate)──▶ previous ──retire──▶ retired

* ``new``: generated or imported, not yet shown to anyone;
* ``published``: in Sésame's metadata beside the current key, so that portals
  that refresh their copy learn it before it signs anything;
* ``current``: signs (or is the first key tried to decrypt); one per use,
  which a partial unique index enforces in the database too;
* ``previous``: no longer signs but stays in the metadata for the grace
  period, so that a portal that has not yet refreshed still trusts what it
  signed, and stays a decryption key for what was encrypted to it;
* ``retired``: out of the metadata and out of use.  A ``new`` or
  ``published`` key that is given up is retired directly.

``activate`` is refused before the key has been published for
``min_published_seconds`` (portals refresh metadata at most every
``cacheDuration``), and ``retire`` of a previous key before
``grace_seconds``; an out-of-order step raises ``RolloverError`` and changes
nothing.  Concurrent steps: each is one transaction whose UPDATEs name the
state they expect, and a step that finds another state (another node was
first) is refused whole.

A node sees a change without a restart and without a database read per
request: ``KeyRing.view()`` reads the (small) table at most every
``refresh_seconds``, like the portal registry's index.  When a node cannot
load the new current key (a token without that label, say) it keeps signing
with the key it had and says so in ``problems``.

Framework-free: the table (a SQLAlchemy model), the sessions and the
``load`` function that turns a row into a ``Signer`` or a decryption key are
given by the caller (``idp/app/rollover.py``).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select, update

from keys.algorithms import SAML_ISSUER
from keys.signer import Signer

log = logging.getLogger("sesame.keys")

USES = ("signing", "encryption")
STATES = ("new", "published", "current", "previous", "retired")
# What the metadata shows, in this order: the current key first.
PUBLISHED_STATES = ("current", "published", "previous")


class RolloverError(ValueError):
    """A rollover step refused; ``code`` for the audit trail, the message for the operator."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class KeyRecord:
    id: int
    use: str
    label: str
    backend: str
    key_ref: str
    state: str
    certificate_pem: bytes
    sealed_key: str | None
    created_at: dt.datetime | None
    published_at: dt.datetime | None
    activated_at: dt.datetime | None
    deactivated_at: dt.datetime | None
    retired_at: dt.datetime | None

    @classmethod
    def of(cls, row: Any) -> "KeyRecord":
        return cls(row.id, row.use, row.label, row.backend, row.key_ref, row.state, row.certificate_pem.encode(),
                   row.sealed_key, *(_utc(getattr(row, n)) for n in
                                     ("created_at", "published_at", "activated_at", "deactivated_at", "retired_at")))


@dataclass(frozen=True)
class View:
    """What one node uses, rebuilt when the table changes."""

    signature: tuple
    records: tuple[KeyRecord, ...]
    signer: Signer | None                 # the current signing key, None: the configured one
    decryption_keys: tuple[Any, ...]       # current, then published, then previous
    problems: tuple[str, ...]

    def published(self, use: str) -> list[KeyRecord]:
        order = {state: i for i, state in enumerate(PUBLISHED_STATES)}
        return sorted((r for r in self.records if r.use == use and r.state in order),
                      key=lambda r: (order[r.state], -r.id))


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite gives naive datetimes back
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


class KeyRing:
    def __init__(self, sessions: Callable, model: type, *, clock, load: Callable[[KeyRecord], Any],
                 min_published_seconds: int, grace_seconds: int, refresh_seconds: float = 1.0,
                 report: Callable[[KeyRecord, str], None] | None = None) -> None:
        self._sessions, self._model, self._clock, self._load = sessions, model, clock, load
        self._report = report  # told once per view about each key this node cannot load (the audit trail)
        self.min_published_seconds, self.grace_seconds = int(min_published_seconds), int(grace_seconds)
        self.refresh_seconds = float(refresh_seconds)
        self._lock = threading.Lock()
        self._view: View | None = None
        self._checked_at: float | None = None
        self._loaded: dict[int, Any] = {}  # key id -> Signer or decryption key, built once

    # -- reads -----------------------------------------------------------------------
    def records(self, use: str | None = None) -> list[KeyRecord]:
        with self._sessions() as session:
            query = select(self._model).order_by(self._model.id)
            if use is not None:
                query = query.where(self._model.use == use)
            return [KeyRecord.of(row) for row in session.scalars(query)]

    def find(self, label: str) -> KeyRecord:
        with self._sessions() as session:
            row = session.scalars(select(self._model).where(self._model.label == label)).one_or_none()
            if row is None:
                raise RolloverError("unknown_key", f"no key labelled {label!r} (see `sesame keys list`)")
            return KeyRecord.of(row)

    def view(self) -> View:
        """This node's view, read again at most every ``refresh_seconds``."""
        view, checked = self._view, self._checked_at
        now = time.monotonic()
        if view is not None and checked is not None and now - checked < self.refresh_seconds:
            return view
        with self._lock:
            if self._view is not view:  # another thread refreshed meanwhile
                return self._view
            try:
                with self._sessions() as session:
                    rows = session.execute(select(self._model.id, self._model.state, self._model.updated_at)).all()
                signature = tuple(sorted((r.id, r.state, str(_utc(r.updated_at))) for r in rows))
                if view is None or signature != view.signature:
                    view = self._build(signature, view)
            except Exception as exc:  # database down: keep signing with what we have
                if view is None:
                    raise
                log.warning("key states not refreshed: %s", exc.__class__.__name__)
            self._view, self._checked_at = view, now
            return view

    def refresh(self) -> View:
        self._checked_at = None
        return self.view()

    def _build(self, signature: tuple, old: View | None) -> View:
        records = tuple(self.records())
        problems: list[str] = []
        signer = old.signer if old is not None else None
        current = [r for r in records if r.use == "signing" and r.state == "current"]
        if current:
            try:
                signer = self._loaded_key(current[0])
            except Exception as exc:
                problems.append(f"signing key {current[0].label!r} cannot be used here ({exc}); "
                                "still signing with the key this node had")
                self._tell(current[0], str(exc))
                log.error("signing key %s cannot be used on this node: %s", current[0].label, exc,
                          extra={"event": "keys.load_failed", "label": current[0].label})
        elif not any(r.use == "signing" for r in records):
            signer = None
        decryption = []
        for record in View(signature, records, None, (), ()).published("encryption"):
            try:
                decryption.append(self._loaded_key(record))
            except Exception as exc:
                problems.append(f"encryption key {record.label!r} cannot be used here ({exc})")
                self._tell(record, str(exc))
                log.error("encryption key %s cannot be used on this node: %s", record.label, exc,
                          extra={"event": "keys.load_failed", "label": record.label})
        return View(signature, records, signer, tuple(decryption), tuple(problems))

    def _tell(self, record: KeyRecord, reason: str) -> None:
        if self._report is not None:
            try:
                self._report(record, reason)
            except Exception:  # the audit trail down too: the log line stands
                log.exception("key problem not reported")

    def _loaded_key(self, record: KeyRecord):
        found = self._loaded.get(record.id)
        if found is None:
            found = self._loaded[record.id] = self._load(record)
        return found

    def check_usable(self, record: KeyRecord) -> None:
        """Load ``record``'s key on this node (``RolloverError`` when it cannot be)."""
        try:
            self._loaded_key(record)
        except Exception as exc:
            raise RolloverError("key_unusable", f"key {record.label!r} cannot be used on this node: {exc}") from None

    # -- steps -----------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock.now(), dt.timezone.utc)

    def add(self, *, use: str, label: str, backend: str, key_ref: str, certificate_pem: bytes,
            sealed_key: str | None = None, state: str = "new") -> KeyRecord:
        if use not in USES:
            raise RolloverError("bad_use", f"use must be one of {', '.join(USES)}, not {use!r}")
        if not label or len(label) > 64 or not all(c.isalnum() or c in "-_." for c in label):
            raise RolloverError("bad_label", "a key label is 1 to 64 letters, digits, '-', '_' or '.'")
        now = self._now()
        with self._sessions() as session:
            if session.scalars(select(self._model.id).where(self._model.label == label)).first() is not None:
                raise RolloverError("duplicate_label", f"a key labelled {label!r} exists already")
            row = self._model(use=use, label=label, backend=backend, key_ref=key_ref,
                              certificate_pem=certificate_pem.decode("ascii"), sealed_key=sealed_key, state=state,
                              created_at=now, updated_at=now,
                              activated_at=now if state == "current" else None)
            session.add(row)
            session.flush()
            return KeyRecord.of(row)

    def _move(self, session, record: KeyRecord, expected: str, **values) -> None:
        done = session.execute(update(self._model).where(self._model.id == record.id, self._model.state == expected)
                               .values(updated_at=self._now(), **values))
        if done.rowcount != 1:
            raise RolloverError("concurrent_change", f"key {record.label!r} changed meanwhile (another node?); "
                                                     "see `sesame keys list`")

    def publish(self, label: str) -> KeyRecord:
        record = self.find(label)
        if record.state != "new":
            raise RolloverError("out_of_order", f"key {label!r} is {record.state}: only a new key is published")
        with self._sessions() as session:
            self._move(session, record, "new", state="published", published_at=self._now())
        return self.find(label)

    def activate(self, label: str) -> KeyRecord:
        """``label`` becomes current; the current key of the same use becomes previous."""
        record = self.find(label)
        if record.state != "published":
            raise RolloverError("out_of_order", f"key {label!r} is {record.state}: publish it first, then wait "
                                                f"{self.min_published_seconds} s before activating it")
        waited = (self._now() - record.published_at).total_seconds()
        if waited < self.min_published_seconds:
            raise RolloverError("not_published_long_enough",
                                f"key {label!r} was published {int(waited)} s ago; portals may not have it yet: "
                                f"activate it after {self.min_published_seconds} s ([rollover] min_published_seconds)")
        self.check_usable(record)
        now = self._now()
        with self._sessions() as session:
            # The old current first (the unique index allows one current per use);
            # at most one row, and the WHERE on the state makes a concurrent step lose.
            session.execute(update(self._model).where(self._model.use == record.use, self._model.state == "current")
                            .values(state="previous", deactivated_at=now, updated_at=now))
            self._move(session, record, "published", state="current", activated_at=now)
        return self.find(label)

    def retire(self, label: str, *, force: bool = False) -> KeyRecord:
        record = self.find(label)
        if record.state == "current":
            raise RolloverError("out_of_order", f"key {label!r} is current: activate another key first")
        if record.state == "retired":
            raise RolloverError("out_of_order", f"key {label!r} is retired already")
        if record.state == "previous" and not force:
            waited = (self._now() - record.deactivated_at).total_seconds()
            if waited < self.grace_seconds:
                raise RolloverError("grace_period", f"key {label!r} stopped signing {int(waited)} s ago; portals that "
                                                    f"have not refreshed still need it: retire it after "
                                                    f"{self.grace_seconds} s ([rollover] grace_seconds)")
        with self._sessions() as session:
            self._move(session, record, record.state, state="retired", retired_at=self._now())
        return self.find(label)


class RollingSigner(Signer):
    """The signer every caller holds: the keyring's current signing key, else ``fallback``
    (the ``[signing]`` key), chosen again at each call (``KeyRing.view`` is cheap)."""

    def __init__(self, keyring: KeyRing, fallback: Signer) -> None:
        self.keyring, self.fallback = keyring, fallback

    def current(self) -> Signer:
        return self.keyring.view().signer or self.fallback

    @property
    def certificate_pem(self) -> bytes:
        return self.current().certificate_pem

    @property
    def default_algorithm(self) -> str:
        return self.current().default_algorithm

    def certificate_b64(self) -> str:
        return self.current().certificate_b64()

    def sign_bytes(self, data: bytes, *, algorithm: str | None = None) -> bytes:
        return self.current().sign_bytes(data, algorithm=algorithm)

    def sign_xml(self, xml, *, reference_id: str, insert_after_tag: str | None = SAML_ISSUER,
                 algorithm: str | None = None) -> bytes:
        return self.current().sign_xml(xml, reference_id=reference_id, insert_after_tag=insert_after_tag,
                                       algorithm=algorithm)

    def sign_element(self, target, *, insert_after_tag: str | None = SAML_ISSUER, algorithm: str | None = None) -> None:
        self.current().sign_element(target, insert_after_tag=insert_after_tag, algorithm=algorithm)

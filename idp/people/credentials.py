"""The ``credentials`` port handed to keys (DESIGN.md §6, §8.1): find a
credential by key and username, check a secret against it at constant cost,
renew its hash when the cost parameters change, and tell whether a person has
an active credential of a key.

Usernames are stored and looked up in their normal form
(``idp/people/usernames.py``): keys hand in what was typed, and get the
normal form from :meth:`Credentials.canonical_username` to count attempts by.
The port also carries the limits under which secrets may be checked
(``[limits]``, ``adapters/rate_limit.py``) and, for this process, the gate
that bounds concurrent Argon2 verifications: ``adapters/password_check.py``
applies both.

Keys never see ORM objects: they get :class:`CredentialRecord`, a frozen copy
naming the person by ``fedid`` (the stable identifier), never by row id.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError

from adapters.rate_limit import HashGate, Limits
from idp.people import usernames
from idp.people.hashing import SecretHasher
from idp.persistence.models import Credential, Person

ACTIVE = "active"


@dataclass(frozen=True)
class CredentialRecord:
    """One credential as keys see it (the hash is kept out of ``repr``)."""

    id: int
    person_fedid: str
    key: str
    username: str | None
    status: str
    secret_hash: str | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


class Credentials:
    """Credentials of people, over the database, with one :class:`SecretHasher`.

    ``limits`` (``[limits]``; the built-in defaults when not given) bound the
    checks of secrets; ``gate`` is this process's bound on concurrent Argon2
    verifications: build one port per process.
    """

    def __init__(self, database, hasher: SecretHasher, limits: Limits | None = None) -> None:
        self.database = database
        self.hasher = hasher
        self.limits = limits or Limits()
        self.gate = HashGate(self.limits.max_concurrent_hashes, self.limits.hash_wait_seconds)

    @staticmethod
    def canonical_username(typed: str) -> str | None:
        """The normal form of a typed username, or None when it cannot be one
        (empty, too long, control characters): such a name is never looked up."""
        return usernames.canonical(typed)

    def find(self, *, key: str, username: str) -> CredentialRecord | None:
        """The credential of ``key`` whose username is the normal form of ``username``, whatever its status.

        A name that cannot be a username finds nothing, without a query (a NUL
        byte would make PostgreSQL refuse the statement).
        """
        username = usernames.canonical(username)
        if username is None:
            return None
        query = (
            select(Credential.id, Person.fedid, Credential.key, Credential.username, Credential.status,
                   Credential.secret_hash)
            .join(Person, Credential.person_id == Person.id)
            .where(Credential.key == key, Credential.username == username)
        )
        with self.database.session() as s:
            row = s.execute(query).first()
        if row is None:
            return None
        return CredentialRecord(id=row[0], person_fedid=row[1], key=row[2], username=row[3], status=row[4],
                                secret_hash=row[5])

    def verify_secret(self, record: CredentialRecord | None, secret: str) -> bool:
        """Whether ``secret`` matches an *active* credential.

        Constant cost: no record, an inactive one or one without a hash cost
        the same Argon2 verification (against a dummy hash) as a real one, and
        a hash at older, cheaper parameters is padded up to the current cost
        (``idp/people/hashing.py``).
        """
        usable = record is not None and record.active and bool(record.secret_hash)
        return self.hasher.verify(record.secret_hash if usable else None, secret)

    def renew_if_needed(self, record: CredentialRecord, secret: str) -> None:
        """Re-hash ``secret`` with the current cost parameters, after a successful check.

        Only replaces the hash that was checked: a secret changed meanwhile is kept.
        """
        if not record.secret_hash or not self.hasher.needs_rehash(record.secret_hash):
            return
        renewed = self.hasher.hash(secret)
        with self.database.session() as s:
            s.execute(update(Credential)
                      .where(Credential.id == record.id, Credential.secret_hash == record.secret_hash)
                      .values(secret_hash=renewed))

    def has_active(self, *, key: str, person_fedid: str) -> bool:
        """Whether the person has an active credential of ``key`` (Keycloak ``configuredFor``)."""
        query = select(exists().where(
            Credential.person_id == Person.id, Person.fedid == person_fedid,
            Credential.key == key, Credential.status == ACTIVE))
        with self.database.session() as s:
            return bool(s.scalar(query))

    def activate(self, *, key: str, person_fedid: str, username: str | None = None, secret: str | None = None,
                 data: dict | None = None) -> bool:
        """Give the person an active credential of ``key`` (an activation's last step).

        Once: False, and nothing written, when the person already has one of
        that key (two activations racing: the database's unique row decides) or
        does not exist.  ``secret`` is stored hashed, never in clear; a
        ``username`` in its normal form (``usernames.UsernameRefused`` when it
        cannot be one).
        """
        if username:
            username = usernames.for_storage(username)
        with self.database.session() as s:
            person = s.scalar(select(Person).where(Person.fedid == person_fedid))
            if person is None or self.has_active(key=key, person_fedid=person_fedid):
                return False
            # A credential without a username is unique per (key, person): "person:<id>" keeps
            # the (key, username) constraint doing that job under concurrency.
            s.add(Credential(person_id=person.id, key=key, username=username or f"person:{person.fedid}",
                             secret_hash=self.hasher.hash(secret) if secret else None, status=ACTIVE,
                             activated_at=dt.datetime.now(dt.timezone.utc), data=data or {}))
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                return False
        return True

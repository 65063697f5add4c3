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

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from adapters.port_errors import UsernameUnavailable  # noqa: F401 (raised here, caught by keys and views)
from adapters.rate_limit import HashGate, Limits
from idp.people import password_policy, usernames
from idp.people.hashing import SecretHasher
from idp.persistence.models import Credential, Person

ACTIVE = "active"
PASSWORD_KEY = "password"  # the key whose credential holds the username + password every code key asks for
USERNAME_TAKEN = "username_taken"


@dataclass(frozen=True)
class PasswordRules:
    """What a new password must be, and how long it lasts (``[keys.password]``)."""

    min_length: int = password_policy.DEFAULT_MIN_LENGTH
    lifetime_days: int = 730  # 0: passwords never expire


@dataclass(frozen=True)
class CredentialRecord:
    """One credential as keys see it (the hash is kept out of ``repr``)."""

    id: int
    person_fedid: str
    key: str
    username: str | None
    status: str
    secret_hash: str | None = field(default=None, repr=False)
    data: dict = field(default_factory=dict, repr=False)
    counter: int | None = None
    activated_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    changed_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def expired(self, now: float) -> bool:
        """Whether its secret has expired at ``now`` (epoch seconds): the login asks for a new one."""
        return self.expires_at is not None and _aware(self.expires_at).timestamp() <= now


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite gives back naive datetimes: they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


_COLUMNS = (Credential.id, Person.fedid, Credential.key, Credential.username, Credential.status,
            Credential.secret_hash, Credential.data, Credential.counter, Credential.activated_at,
            Credential.expires_at, Credential.changed_at)


def _record(row) -> CredentialRecord:
    return CredentialRecord(id=row[0], person_fedid=row[1], key=row[2], username=row[3], status=row[4],
                            secret_hash=row[5], data=dict(row[6] or {}), counter=row[7],
                            activated_at=_aware(row[8]) if row[8] else None,
                            expires_at=_aware(row[9]) if row[9] else None,
                            changed_at=_aware(row[10]) if row[10] else None)


class Credentials:
    """Credentials of people, over the database, with one :class:`SecretHasher`.

    ``limits`` (``[limits]``; the built-in defaults when not given) bound the
    checks of secrets; ``gate`` is this process's bound on concurrent Argon2
    verifications: build one port per process.
    """

    def __init__(self, database, hasher: SecretHasher, limits: Limits | None = None,
                 rules: PasswordRules | None = None, clock=None) -> None:
        self.database = database
        self.hasher = hasher
        self.limits = limits or Limits()
        self.rules = rules or PasswordRules()
        self.clock = clock
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
        query = (select(*_COLUMNS).join(Person, Credential.person_id == Person.id)
                 .where(Credential.key == key, Credential.username == username))
        with self.database.session() as s:
            row = s.execute(query).first()
        return _record(row) if row is not None else None

    def of_person(self, *, key: str, person_fedid: str) -> CredentialRecord | None:
        """The person's credential of ``key`` (active or not), or None."""
        query = (select(*_COLUMNS).join(Person, Credential.person_id == Person.id)
                 .where(Credential.key == key, Person.fedid == person_fedid)
                 .order_by(Credential.id.desc()))
        with self.database.session() as s:
            row = s.execute(query).first()
        return _record(row) if row is not None else None

    def all_of_person(self, person_fedid: str) -> list[CredentialRecord]:
        """Every credential of the person ("Mes clés numériques")."""
        query = (select(*_COLUMNS).join(Person, Credential.person_id == Person.id)
                 .where(Person.fedid == person_fedid).order_by(Credential.id))
        with self.database.session() as s:
            return [_record(row) for row in s.execute(query)]

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
                 data: dict | None = None, counter: int | None = None,
                 new_password: tuple[str, str] | None = None) -> bool:
        """Give the person an active credential of ``key`` (an activation's last step).

        Once: False, and nothing written, when the person already has one of
        that key (two activations racing: the database's unique row decides) or
        does not exist.  ``secret`` is stored hashed, never in clear; a
        ``username`` in its normal form (``usernames.UsernameRefused`` when it
        cannot be one).  A previous, inactive credential of the key (revoked)
        is replaced.

        ``new_password`` (username, password), for a person without a password
        credential: created in the same transaction (a key that works only
        with a username + password is never left without one), its username
        checked first (:class:`UsernameUnavailable`), the password judged by
        the caller (:meth:`password_problems`).
        """
        if username:
            username = usernames.for_storage(username)
        now = self._now()
        with self.database.session() as s:
            person = s.scalar(select(Person).where(Person.fedid == person_fedid))
            if person is None or self.has_active(key=key, person_fedid=person_fedid):
                return False
            s.execute(delete(Credential).where(Credential.person_id == person.id, Credential.key == key,
                                               Credential.status != ACTIVE))
            if new_password is not None and not self.has_active(key=PASSWORD_KEY, person_fedid=person_fedid):
                name = self._free_username(s, new_password[0])
                s.add(self._password_credential(person.id, name, new_password[1], now))
            # A credential without a username is unique per (key, person): "person:<id>" keeps
            # the (key, username) constraint doing that job under concurrency.
            s.add(Credential(person_id=person.id, key=key, username=username or f"person:{person.fedid}",
                             secret_hash=self.hasher.hash(secret) if secret else None, status=ACTIVE,
                             activated_at=now, changed_at=now, data=data or {}, counter=counter))
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                if new_password is not None:
                    raise UsernameUnavailable(USERNAME_TAKEN) from None
                return False
        return True

    # --- self-service ("Mes clés numériques") ---------------------------------------
    def password_problems(self, password: str, *, username: str | None = None) -> list[str]:
        """Why ``password`` cannot be a new password (codes of ``password_policy``), or []."""
        return password_policy.problems(password, username=username, min_length=self.rules.min_length)

    def username_problem(self, typed: str, *, person_fedid: str | None = None) -> str | None:
        """Why ``typed`` cannot be this person's new username (a code), or None."""
        problem = usernames.problem(typed)
        if problem:
            return f"username_{problem}"  # username_empty, username_too_long, username_bad_characters
        found = self.find(key=PASSWORD_KEY, username=typed)
        if found is not None and found.person_fedid != person_fedid:
            return USERNAME_TAKEN
        return None

    def set_password(self, record: CredentialRecord, new_password: str) -> bool:
        """A new secret for a password credential, lasting ``rules.lifetime_days``.

        Only over the hash that was read (``record``): a change racing with
        another loses, False, nothing written."""
        now = self._now()
        with self.database.session() as s:
            done = s.execute(update(Credential)
                             .where(Credential.id == record.id, Credential.secret_hash == record.secret_hash)
                             .values(secret_hash=self.hasher.hash(new_password), changed_at=now,
                                     expires_at=self._expiry(now)))
            return done.rowcount == 1

    def set_username(self, record: CredentialRecord, typed: str) -> None:
        """A new username (:class:`UsernameUnavailable` when it cannot be one or is taken)."""
        problem = self.username_problem(typed, person_fedid=record.person_fedid)
        if problem:
            raise UsernameUnavailable(problem)
        with self.database.session() as s:
            s.execute(update(Credential).where(Credential.id == record.id)
                      .values(username=usernames.normalise(typed), changed_at=self._now()))
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                raise UsernameUnavailable(USERNAME_TAKEN) from None

    def set_data(self, record: CredentialRecord, data: dict, *, counter: int | None = None) -> bool:
        """Replace a credential's data (a new seed, a new address), only over what was read."""
        with self.database.session() as s:
            row = s.get(Credential, record.id)
            if row is None or dict(row.data or {}) != record.data:
                return False
            row.data = data
            row.counter = counter
            row.changed_at = self._now()
        return True

    def advance_counter(self, record: CredentialRecord, value: int) -> bool:
        """Move the credential's counter up to ``value``; False when it is already there or beyond.

        One conditional UPDATE: of two requests accepting the same TOTP step,
        exactly one moves it (replay refused, whatever runs in parallel)."""
        with self.database.session() as s:
            done = s.execute(update(Credential)
                             .where(Credential.id == record.id, Credential.status == ACTIVE,
                                    or_(Credential.counter.is_(None), Credential.counter < value))
                             .values(counter=value))
            return done.rowcount == 1

    def remove(self, *, key: str, person_fedid: str) -> bool:
        """Delete the person's credential of ``key``; False when there was none."""
        with self.database.session() as s:
            person_id = s.scalar(select(Person.id).where(Person.fedid == person_fedid))
            if person_id is None:
                return False
            done = s.execute(delete(Credential).where(Credential.person_id == person_id, Credential.key == key))
            return done.rowcount > 0

    # --- helpers -----------------------------------------------------------------
    def _now(self) -> dt.datetime:
        seconds = self.clock.now() if self.clock is not None else None
        if seconds is None:
            return dt.datetime.now(dt.timezone.utc)
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)

    def _expiry(self, now: dt.datetime) -> dt.datetime | None:
        return now + dt.timedelta(days=self.rules.lifetime_days) if self.rules.lifetime_days else None

    def _free_username(self, s, typed: str) -> str:
        problem = usernames.problem(typed)
        if problem:
            raise UsernameUnavailable(f"username_{problem}")
        name = usernames.normalise(typed)
        if s.scalar(select(Credential.id).where(Credential.key == PASSWORD_KEY, Credential.username == name)):
            raise UsernameUnavailable(USERNAME_TAKEN)
        return name

    def _password_credential(self, person_id: int, username: str, password: str, now: dt.datetime) -> Credential:
        return Credential(person_id=person_id, key=PASSWORD_KEY, username=username,
                          secret_hash=self.hasher.hash(password), status=ACTIVE, activated_at=now,
                          changed_at=now, expires_at=self._expiry(now))

"""From what a key proved to a person (DESIGN.md §6): find, link or provision.

Keys return a ``Subject`` (``adapters.base``), never a database row; this is
the one place that turns it into a ``Person``:

* ``username``: the person owning the active credential ``(issuer, username)``;
* ``nrn`` / ``bis``: the person with that register number, else a new person
  when the key may provision (the eID card, itsme: the register vouches);
* ``upstream``: the person linked to ``(key, issuer, identifier)`` by an
  earlier login, else linked now (by a register number the upstream gave) or
  provisioned;
* ``fedid``: a person already known to the journey.

Attributes learned fill what the person row lacks; they never overwrite it
(the register of record is Sésame's, and an upstream may be less exact).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from adapters.base import AuthResult, SubjectKind
from idp.errors import UnknownPerson
from idp.people.directory import check_nrn
from idp.persistence.models import Credential, Person

FILLABLE = {"surname": "surname", "given_name": "given_name", "mail": "mail"}


def _birth_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


class Identities:
    def __init__(self, database) -> None:
        self.database = database

    def resolve(self, result: AuthResult, *, may_provision: bool) -> Person:
        """The person ``result`` proved; ``UnknownPerson`` when there is none to be had."""
        subject = result.subject
        with self.database.session() as s:
            person = self._find(s, result)
            if person is None and subject.kind is SubjectKind.UPSTREAM:
                person = self._link_upstream(s, result, may_provision)
            if person is None and may_provision and subject.kind in (SubjectKind.NRN, SubjectKind.BIS):
                if not check_nrn(subject.value):
                    raise UnknownPerson("register number fails its check digits")
                person = self._provision(s, result, nrn=subject.value)
            if person is None:
                raise UnknownPerson(f"no person for a {subject.kind.value} subject of {result.key}")
            self._fill(person, result.attributes)
            s.flush()
            s.expunge(person)
            return person

    @staticmethod
    def _find(s, result: AuthResult) -> Person | None:
        subject = result.subject
        if subject.kind is SubjectKind.USERNAME:
            return s.scalar(select(Person).join(Credential).where(
                Credential.key == (subject.issuer or result.key), Credential.username == subject.value,
                Credential.status == "active"))
        if subject.kind in (SubjectKind.NRN, SubjectKind.BIS):
            return s.scalar(select(Person).where(Person.nrn == subject.value))
        if subject.kind is SubjectKind.FEDID:
            return s.scalar(select(Person).where(Person.fedid == subject.value))
        return s.scalar(select(Person).join(Credential).where(
            Credential.key == result.key, Credential.username == _upstream_name(result)))

    def _link_upstream(self, s, result: AuthResult, may_provision: bool) -> Person | None:
        nrn = result.attributes.get("nrn")
        person = s.scalar(select(Person).where(Person.nrn == nrn)) if nrn and check_nrn(nrn) else None
        if person is None and may_provision:
            person = self._provision(s, result, nrn=nrn if nrn and check_nrn(nrn) else None)
        if person is not None:
            person.credentials.append(Credential(key=result.key, username=_upstream_name(result), status="active",
                                                 activated_at=dt.datetime.now(dt.timezone.utc)))
        return person

    @staticmethod
    def _provision(s, result: AuthResult, *, nrn: str | None) -> Person:
        learned = result.attributes
        person = Person(nrn=nrn, surname=learned.get("surname", "")[:200],
                        given_name=learned.get("given_name", "")[:200], mail=learned.get("mail"),
                        birth_date=_birth_date(learned.get("birth_date")))
        s.add(person)
        return person

    @staticmethod
    def _fill(person: Person, learned) -> None:
        for name, column in FILLABLE.items():
            if learned.get(name) and not getattr(person, column):
                setattr(person, column, learned[name][:200])
        if person.birth_date is None and _birth_date(learned.get("birth_date")):
            person.birth_date = _birth_date(learned.get("birth_date"))


def _upstream_name(result: AuthResult) -> str:
    """The link row's username: the upstream's identifier, qualified by who issued it."""
    return f"{result.subject.issuer}|{result.subject.value}"[:200]

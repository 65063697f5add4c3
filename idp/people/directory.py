"""People and their credentials: the few queries the flows and the CLI need.

Usernames are stored and looked up in their normal form (``idp/people/usernames.py``).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from idp.people import usernames
from idp.people.hashing import SecretHasher
from idp.persistence.models import Credential, Person


def check_nrn(nrn: str) -> bool:
    """National register (or BIS) number check digits (DESIGN.md §2)."""
    if len(nrn) != 11 or not nrn.isdigit():
        return False
    body, check = int(nrn[:9]), int(nrn[9:])
    return 97 - body % 97 == check or 97 - (2_000_000_000 + body) % 97 == check


class UsernameTaken(ValueError):
    """A new credential's username, in its normal form, is already someone's."""


class People:
    def __init__(self, database, hasher: SecretHasher | None = None, rules=None) -> None:
        self.database = database
        self.hasher = hasher or SecretHasher()
        self.rules = rules  # idp.people.credentials.PasswordRules: how long a new password lasts

    def get(self, person_id: int) -> Person | None:
        with self.database.session() as s:
            person = s.get(Person, person_id)
            if person is not None:
                s.expunge(person)
            return person

    def create(self, *, surname: str, given_name: str, nrn: str | None = None, mail: str | None = None,
               birth_date: dt.date | None = None, pref_language: str = "fr",
               username: str | None = None, password: str | None = None) -> Person:
        """A person, with a password key when ``username`` and ``password`` are given.

        The username is stored in its normal form: ``usernames.UsernameRefused``
        when it cannot be one, :class:`UsernameTaken` when that form is already
        a password key's (``Marie.Dupont`` beside ``marie.dupont``; the unique
        (key, username) row settles two creations racing).  The password is
        not judged here (tests and the demo create people directly): callers
        that take a new password from someone apply ``password_policy`` first.

        One transaction: nothing is written when any part fails.
        """
        if nrn is not None and not check_nrn(nrn):
            raise ValueError("national register number fails its check digits")
        if username and password:
            username = usernames.for_storage(username)
        with self.database.session() as s:
            if username and password and s.scalar(select(Credential.id).where(
                    Credential.key == "password", Credential.username == username)) is not None:
                raise UsernameTaken(f"username {username!r} is taken")
            person = Person(surname=surname, given_name=given_name, nrn=nrn, mail=mail,
                            birth_date=birth_date, pref_language=pref_language)
            s.add(person)
            if username and password:
                now = dt.datetime.now(dt.timezone.utc)
                lifetime = self.rules.lifetime_days if self.rules is not None else 0
                person.credentials.append(Credential(
                    key="password", username=username, secret_hash=self.hasher.hash(password), status="active",
                    activated_at=now, changed_at=now,
                    expires_at=now + dt.timedelta(days=lifetime) if lifetime else None))
            s.flush()
            s.expunge_all()
            return person

    def set_pref_language(self, person_id: int, lang: str) -> None:
        with self.database.session() as s:
            person = s.get(Person, person_id)
            if person is not None and person.pref_language != lang:
                person.pref_language = lang

"""The ``people`` port handed to keys: what a key may read of the person a
journey is for (names, e-mail address, mobile number, language) and the two
things it may change (the address and the number an activation confirms).

Keys get a :class:`Contact`, never an ORM object, and name the person by
``fedid``.  Values are checked by the caller with ``adapters.contacts``.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from idp.persistence.models import Person


@dataclass(frozen=True)
class Contact:
    fedid: str
    given_name: str
    surname: str
    mail: str | None
    phone: str | None
    lang: str
    has_nrn: bool

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.surname}".strip()


class Contacts:
    def __init__(self, database) -> None:
        self.database = database

    def get(self, person_fedid: str) -> Contact | None:
        with self.database.session() as s:
            p = s.scalar(select(Person).where(Person.fedid == person_fedid))
            if p is None:
                return None
            return Contact(fedid=p.fedid, given_name=p.given_name, surname=p.surname, mail=p.mail, phone=p.phone,
                           lang=p.pref_language or "fr", has_nrn=bool(p.nrn))

    def set_mail(self, person_fedid: str, mail: str) -> None:
        with self.database.session() as s:
            s.execute(update(Person).where(Person.fedid == person_fedid).values(mail=mail))

    def set_phone(self, person_fedid: str, phone: str | None) -> None:
        with self.database.session() as s:
            s.execute(update(Person).where(Person.fedid == person_fedid).values(phone=phone))

    def set_language(self, person_fedid: str, lang: str) -> None:
        with self.database.session() as s:
            s.execute(update(Person).where(Person.fedid == person_fedid).values(pref_language=lang))

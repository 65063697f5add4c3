"""What an officer types at registration, checked into :class:`NewPerson`, or
the error code of the first field that cannot be (``idp.messages``)."""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Mapping

from adapters.contacts import email_address
from idp.office.bis import SEXES
from idp.people.directory import check_nrn

DOCUMENT_TYPES = ("passport", "id_card", "residence_permit")
_DOC_NUMBER = re.compile(r"^[A-Z0-9]{5,20}$")   # ICAO 9303 numbers are 9; national ones vary
_COUNTRY = re.compile(r"^[A-Z]{2}$")            # ISO 3166-1 alpha-2
_DROPPED = re.compile(r"[\s\-./]")
OLDEST = dt.date(1900, 1, 1)
FIELDS = ("doc_type", "doc_number", "doc_country", "doc_expiry", "surname", "given_names", "birth_date", "sex",
          "nationality", "mail", "lang", "nrn")


@dataclass(frozen=True)
class NewPerson:
    doc_type: str
    doc_number: str
    doc_country: str
    doc_expiry: dt.date
    surname: str
    given_names: str
    birth_date: dt.date
    sex: str
    nationality: str
    mail: str
    lang: str
    nrn: str | None  # a national register or BIS number the person already has; else one is assigned


class Refused(ValueError):
    """A field that cannot be: ``code`` for the message, ``field`` to point at."""

    def __init__(self, code: str, field: str | None = None) -> None:
        super().__init__(code)
        self.code, self.field = code, field


def date(typed: str) -> dt.date | None:
    """ISO (what ``<input type=date>`` sends) or DD/MM/YYYY (what an officer types)."""
    typed = typed.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(typed, fmt).date()
        except ValueError:
            pass
    return None


def name(typed: str) -> str | None:
    value = unicodedata.normalize("NFC", " ".join(typed.split()))
    if not value or len(value) > 200 or any(unicodedata.category(c)[0] == "C" for c in value):
        return None
    return value


def new_person(form: Mapping[str, str], *, today: dt.date, languages) -> NewPerson:
    """The checked registration; :class:`Refused` at the first bad field."""
    typed = {f: str(form.get(f) or "")[:300] for f in FIELDS}
    required = [f for f in FIELDS if f not in ("sex", "nrn") and not typed[f].strip()]
    if required:
        raise Refused("office_missing_fields", required[0])
    if typed["doc_type"] not in DOCUMENT_TYPES:
        raise Refused("bad_document_type", "doc_type")
    number = _DROPPED.sub("", typed["doc_number"]).upper()
    if not _DOC_NUMBER.match(number):
        raise Refused("bad_document_number", "doc_number")
    country, nationality = typed["doc_country"].strip().upper(), typed["nationality"].strip().upper()
    if not _COUNTRY.match(country):
        raise Refused("bad_country", "doc_country")
    if not _COUNTRY.match(nationality):
        raise Refused("bad_country", "nationality")
    expiry = date(typed["doc_expiry"])
    if expiry is None:
        raise Refused("bad_document_expiry", "doc_expiry")
    if expiry < today:  # an expired document proves nothing
        raise Refused("document_expired", "doc_expiry")
    surname, given = name(typed["surname"]), name(typed["given_names"])
    if surname is None:
        raise Refused("bad_name", "surname")
    if given is None:
        raise Refused("bad_name", "given_names")
    birth = date(typed["birth_date"])
    if birth is None or not OLDEST <= birth <= today:
        raise Refused("bad_birth_date", "birth_date")
    sex = typed["sex"].strip().upper()
    if sex not in SEXES:
        raise Refused("bad_sex", "sex")
    mail = email_address(typed["mail"])
    if mail is None:
        raise Refused("bad_email", "mail")
    if typed["lang"] not in languages:
        raise Refused("bad_language", "lang")
    nrn = _DROPPED.sub("", typed["nrn"]) or None
    if nrn is not None and not check_nrn(nrn):
        raise Refused("bad_nrn", "nrn")
    return NewPerson(doc_type=typed["doc_type"], doc_number=number, doc_country=country, doc_expiry=expiry,
                     surname=surname, given_names=given, birth_date=birth, sex=sex, nationality=nationality,
                     mail=mail, lang=typed["lang"], nrn=nrn)

"""BIS numbers (DESIGN.md glossary): the national register number's shape
``YYMMDD SSS CC`` for people the national register does not know, the birth
month + 20 when the sex is known, + 40 when it is not; the sequence odd for
men, even for women; the same check digits (97 - body mod 97, with a ``2``
before the body for people born in 2000 or later).  ``check_nrn`` accepts them.
"""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Callable

from idp.people.directory import check_nrn

SEXES = ("M", "F", "")  # "" : unknown


def bis_number(birth: dt.date, sex: str, sequence: int) -> str:
    if not 1 <= sequence <= 997:
        raise ValueError("sequence out of 001..997")
    month = birth.month + (40 if not sex else 20)
    body = f"{birth:%y}{month:02d}{birth:%d}{sequence:03d}"
    base = int(body) + (2_000_000_000 if birth.year >= 2000 else 0)
    number = f"{body}{97 - base % 97:02d}"
    assert check_nrn(number)
    return number


def new_bis(birth: dt.date, sex: str, taken: Callable[[str], bool], *, tries: int = 50) -> str:
    """A BIS number no one has (``taken`` asks the database); random sequences,
    so that two offices registering the same day rarely pick the same one (the
    unique column settles it when they do)."""
    if sex not in SEXES:
        raise ValueError(f"sex {sex!r}")
    for _ in range(tries):
        sequence = secrets.randbelow(997) + 1
        if sex == "M" and sequence % 2 == 0 or sex == "F" and sequence % 2 == 1:
            sequence = sequence - 1 if sequence > 1 else sequence + 1  # odd for men, even for women
        number = bis_number(birth, sex, sequence)
        if not taken(number):
            return number
    raise RuntimeError("no free BIS number for this birth date")

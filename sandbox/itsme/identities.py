"""The sandbox's itsme users: a mobile number each, a person with a national
register number whose check digits are right (``85031412302`` is the demo's
Marie Dupont, so a demo citizen can log in with itsme too)."""
from __future__ import annotations

import datetime as dt


def make_nrn(birth: dt.date, serial: int) -> str:
    body = f"{birth:%y%m%d}{serial:03d}"
    return f"{body}{97 - (int(body) + (2_000_000_000 if birth.year >= 2000 else 0)) % 97:02d}"


def _person(given: str, family: str, birth: dt.date, serial: int, mail: str, phone: str) -> dict:
    return {"nrn": make_nrn(birth, serial), "given_name": given, "family_name": family,
            "birthdate": birth.isoformat(), "email": mail, "phone_number": phone}


# Mobile number (digits, with the country code) -> the person itsme knows.
IDENTITIES = {
    "32470123456": _person("Marie", "Dupont", dt.date(1985, 3, 14), 123, "marie.dupont@example.be", "+32470123456"),
    "32470234567": _person("Jan", "Peeters", dt.date(1990, 7, 2), 45, "jan.peeters@example.be", "+32470234567"),
    "32470345678": _person("Lea", "Schmitz", dt.date(2001, 11, 30), 208, "lea.schmitz@example.be", "+32470345678"),
    # Not a demo citizen: Sésame creates the person at the first login.
    "32470456789": _person("Yannick", "Nouveau", dt.date(1992, 5, 17), 811, "yannick.nouveau@example.be",
                           "+32470456789"),
}


def normalize_phone(value: str) -> str:
    """``0470 12 34 56``, ``+32 470 12 34 56``, ``0032470123456`` -> ``32470123456``."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if digits.startswith("00"):
        return digits[2:]
    if digits.startswith("0"):
        return "32" + digits[1:]
    return digits

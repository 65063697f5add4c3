"""The attribute profile and NameID of DESIGN.md §4, released by portal policy."""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Mapping, Sequence

PROFILE = ("egovNRN", "surname", "givenName", "mail", "PrefLanguage", "fedid", "birthDate",
           "authenticationMethod", "eidasIdentifier")


# What keys learn (adapters.base.LEARNABLE) under the profile's names.
LEARNED_AS = {"surname": "surname", "given_name": "givenName", "mail": "mail", "birth_date": "birthDate",
              "nrn": "egovNRN", "eidas_identifier": "eidasIdentifier"}


def person_attributes(*, person, key: str, lang: str | None,
                      learned: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Every attribute of the profile Sésame knows for this person and login.

    What the keys of the session learned fills what the person row lacks.
    """
    found = {
        "egovNRN": person.nrn,
        "surname": person.surname,
        "givenName": person.given_name,
        "mail": person.mail,
        "PrefLanguage": lang or person.pref_language,
        "fedid": person.fedid,
        "birthDate": person.birth_date.isoformat() if person.birth_date else None,
        "authenticationMethod": key,
    }
    for name, value in (learned or {}).items():
        if name in LEARNED_AS and value and not found.get(LEARNED_AS[name]):
            found[LEARNED_AS[name]] = value
    return found


def release(*, available: Mapping[str, str | None], allowed: Sequence[str]) -> dict[str, list[str]]:
    """Only what the portal's policy lists, and only values Sésame has."""
    return {name: [available[name]] for name in allowed if available.get(name)}


def pairwise_id(*, secret: bytes, sp_entity_id: str, fedid: str) -> str:
    """A persistent NameID that differs for each portal (SAML core §8.3.7)."""
    mac = hmac.new(secret, f"{sp_entity_id}\x00{fedid}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

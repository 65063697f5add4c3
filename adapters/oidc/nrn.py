"""The national register number's check digits (the keys may not import
``idp``: this repeats ``idp.people.directory.check_nrn``, five lines)."""
from __future__ import annotations


def check_nrn(nrn: str) -> bool:
    """11 digits whose last two are 97 - (first nine mod 97); born in 2000 or
    later, the nine are prefixed with a 2 (2 000 000 000 + body)."""
    if len(nrn) != 11 or not nrn.isdigit():
        return False
    body, check = int(nrn[:9]), int(nrn[9:])
    return 97 - body % 97 == check or 97 - (2_000_000_000 + body) % 97 == check


def normalize_nrn(value: object) -> str:
    """Digits only: providers write ``85.03.14-123.02`` or ``850314 123 02``."""
    return "".join(ch for ch in str(value or "") if ch.isdigit())

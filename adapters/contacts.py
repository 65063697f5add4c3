"""The forms a citizen's e-mail address and mobile number must have (shared by
the code keys' activation and by "Mon profil").  Each returns the value in the
form it is stored and sent to, or None when it cannot be one.

Mobile numbers are E.164 (``+32470123456``): typed with spaces, dots, dashes,
slashes or brackets, with ``00`` for ``+``, or nationally (``0470 12 34 56``,
read in ``default_country``).  A Belgian number must be a mobile one (04x):
a code sent to a landline never arrives.
"""
from __future__ import annotations

import re

MAX_EMAIL = 254  # RFC 5321 path limit
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_BELGIAN_MOBILE = re.compile(r"^\+324[5-9][0-9]{7}$")


def email_address(typed: str | None) -> str | None:
    value = (typed or "").strip()
    if not value or len(value) > MAX_EMAIL or value.count("@") != 1:
        return None
    local, domain = value.split("@")
    if not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return f"{local}@{domain.lower()}"


def mobile_number(typed: str | None, default_country: str = "+32") -> str | None:
    value = re.sub(r"[\s./()\-\u00a0]", "", (typed or "")[:40])
    if value.startswith("00"):
        value = "+" + value[2:]
    elif value.startswith("0"):
        value = default_country + value[1:]
    if not _E164.match(value):
        return None
    if value.startswith("+32") and not _BELGIAN_MOBILE.match(value):
        return None
    return value

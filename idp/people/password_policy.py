"""What a new password must be (DESIGN.md §6): one function, :func:`problems`,
for every place that sets a password (``sesame user add`` now, the
self-service pages later).

It answers a list of problem codes, empty when the password is acceptable;
each code is a message key of ``idp/messages.py``:

* ``password_too_short``: fewer than ``min_length`` characters (default 12,
  ``[keys.password] min_password_length``; never below 8);
* ``password_too_long``: more than :data:`MAX_LENGTH` characters, which the
  login form would cut (``adapters/password``): it could never be typed;
* ``password_common``: in the list of common passwords
  (``common_passwords.txt``, compared case-insensitively), or one of them with
  digits or symbols added before or after it (``Soleil2026!`` is ``soleil``);
* ``password_contains_username``: the username is inside the password (any case).

Length is counted in characters of the NFKC form, as typed on any keyboard.
No rule on character classes: length and the common list do that job better
(NIST SP 800-63B §3.1.1.2).
"""
from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

from idp.people.usernames import normalise

DEFAULT_MIN_LENGTH = 12
LOWEST_MIN_LENGTH = 8
MAX_LENGTH = 1024  # the password key reads at most this many characters
COMMON_FILE = Path(__file__).with_name("common_passwords.txt")

TOO_SHORT = "password_too_short"
TOO_LONG = "password_too_long"
COMMON = "password_common"
CONTAINS_USERNAME = "password_contains_username"
# Shorter usernames would be found inside too many good passwords.
_MIN_USERNAME_CHECKED = 3


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased, read once."""
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))


def _core(folded: str) -> str:
    """The password less what surrounds its letters: ``2026-soleil!!`` gives ``soleil``."""
    start, end = 0, len(folded)
    while start < end and not folded[start].isalpha():
        start += 1
    while end > start and not folded[end - 1].isalpha():
        end -= 1
    return folded[start:end]


def problems(password: str, *, username: str | None = None, min_length: int = DEFAULT_MIN_LENGTH) -> list[str]:
    """The problem codes of ``password`` as a new password (see the module docstring)."""
    if min_length < LOWEST_MIN_LENGTH:
        raise ValueError(f"a minimum password length below {LOWEST_MIN_LENGTH} is not allowed, not {min_length}")
    text = unicodedata.normalize("NFKC", password)
    found = []
    if len(text) < min_length:
        found.append(TOO_SHORT)
    if len(text) > MAX_LENGTH:
        found.append(TOO_LONG)
    folded = text.casefold()
    common = common_passwords()
    if folded.strip() in common or _core(folded) in common:
        found.append(COMMON)
    if username:
        name = normalise(username)
        if len(name) >= _MIN_USERNAME_CHECKED and name in folded:
            found.append(CONTAINS_USERNAME)
    return found

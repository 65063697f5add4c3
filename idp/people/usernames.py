"""Usernames: one normal form, used everywhere a username is stored or looked up.

``Marie.Dupont``, full-width ``ｍarie.dupont`` and ``" marie.dupont"`` are one
username: :func:`normalise` (Unicode NFKC, case folding, NFKC again, surrounding
white space stripped) makes them ``marie.dupont``.  People.create and the
credentials port store that form; a login looks up the normal form of what was
typed; the lockout and the rate limits count by it.  So a second account cannot
be created beside the first under a variant of its name, and an attacker
cannot get more guesses by varying case or width.

A normal form that is empty, longer than :data:`MAX_LENGTH` (the column's size)
or holds control, format or unassigned characters is no username: at login it
is refused like a wrong password (never an error page), at creation with a
reason.
"""
from __future__ import annotations

import unicodedata

MAX_LENGTH = 200  # credential.username is String(200)
# Raw input is refused before normalising beyond this: NFKC can expand a
# character up to 18 times, and nobody types a username this long.
MAX_TYPED = 4 * MAX_LENGTH
# Control (Cc), format (Cf: bidi overrides, zero-width joiners, BOM), surrogate,
# private use, unassigned; line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

EMPTY = "empty"
TOO_LONG = "too_long"
BAD_CHARACTERS = "bad_characters"


class UsernameRefused(ValueError):
    """A username that cannot be stored; ``reason`` is one of the codes above."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"username refused: {reason}")
        self.reason = reason


def normalise(typed: str) -> str:
    """The normal form of ``typed`` (NFKC, casefold, NFKC, stripped); not checked."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", typed).casefold())
    return folded.strip()


def problem(typed: str) -> str | None:
    """Why ``typed`` cannot be a username (a code above), or None."""
    if len(typed) > MAX_TYPED:
        return TOO_LONG
    name = normalise(typed)
    if not name:
        return EMPTY
    if len(name) > MAX_LENGTH:
        return TOO_LONG
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in name):
        return BAD_CHARACTERS
    return None


def canonical(typed: str) -> str | None:
    """The normal form of a username typed at login, or None when it cannot be one."""
    return None if problem(typed) else normalise(typed)


def for_storage(typed: str) -> str:
    """The normal form to store for a new credential; :class:`UsernameRefused` otherwise."""
    reason = problem(typed)
    if reason:
        raise UsernameRefused(reason)
    return normalise(typed)


"""Activation codes: ``XXXXX XXXXX XXXXX XXXXX`` from an alphabet without the
characters people confuse (0/O, 1/I/L), shown once to the officer, then kept
only as an HMAC.

Why HMAC-SHA256 under a server secret rather than Argon2: 20 characters of 31
are ~99 bits drawn by ``secrets``, so nobody can search the code space, slow
hash or not; the key (derived from ``[server] secret_key``, never in the
database) also means a database reader cannot test even one guess, and the
HMAC lets the link be looked up by its hash.  A slow hash would only cost CPU
at every attempt.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0, 1, I, L, O
GROUPS, GROUP_SIZE = 4, 5
LENGTH = GROUPS * GROUP_SIZE
_SEPARATORS = re.compile(r"[\s\-.]")


def new_code() -> str:
    """A new code, in its normal form (20 characters, no spaces)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def shown(code: str) -> str:
    """As printed for the citizen: four groups of five."""
    return " ".join(code[i:i + GROUP_SIZE] for i in range(0, LENGTH, GROUP_SIZE))


def normalise(typed: str | None) -> str | None:
    """What the citizen typed, upper case, without spaces or dashes; None when it cannot be a code."""
    value = _SEPARATORS.sub("", (typed or "")[:100]).upper()
    if len(value) != LENGTH or any(c not in ALPHABET for c in value):
        return None
    return value


def new_link() -> str:
    """The random part of the activation e-mail's link (also kept only as an HMAC)."""
    return secrets.token_urlsafe(24)


class CodeMac:
    """HMAC-SHA256 of codes and links, under a key derived from the server secret."""

    def __init__(self, secret_key: bytes) -> None:
        self._key = hmac.new(secret_key, b"sesame registration office activation codes", hashlib.sha256).digest()

    def __call__(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def matches(self, kind: str, value: str, expected: str) -> bool:
        return hmac.compare_digest(self(kind, value), expected)

"""Levels of assurance and SAML authentication contexts (DESIGN.md §3).

Pure logic: which level a requested authentication context asks for, and
whether a level satisfies it, following SAML core §3.3.2.2.1.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

FAS_PREFIX = "urn:be:fedict:iam:fas:citizen:Level"
EIDAS_PREFIX = "http://eidas.europa.eu/LoA/"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"


class Level(enum.IntEnum):
    PASSWORD = 100
    EMAIL_CODE = 200
    SMS_CODE = 300
    APP_CODE = 400
    EID = 500


EIDAS_OF_LEVEL = {100: "low", 200: "low", 300: "substantial", 400: "substantial", 500: "high"}
LEVEL_OF_EIDAS = {"low": 100, "substantial": 300, "high": 500}


class Comparison(str, enum.Enum):
    EXACT = "exact"
    MINIMUM = "minimum"
    BETTER = "better"
    MAXIMUM = "maximum"


def context_class(level: int) -> str:
    """The ``AuthnContextClassRef`` Sésame states for a level reached."""
    return f"{FAS_PREFIX}{int(level)}"


def level_of_context(class_ref: str, key_classes: dict[str, int] | None = None) -> int | None:
    """The level a context class reference stands for, or None when unknown."""
    if class_ref.startswith(FAS_PREFIX):
        tail = class_ref[len(FAS_PREFIX):]
        return int(tail) if tail.isascii() and tail.isdigit() else None
    if class_ref.startswith(EIDAS_PREFIX):
        return LEVEL_OF_EIDAS.get(class_ref[len(EIDAS_PREFIX):])
    if class_ref == PASSWORD_PROTECTED:
        return 100
    if key_classes and class_ref in key_classes:
        return key_classes[class_ref]
    return None


@dataclass(frozen=True)
class LevelRequirement:
    """What a request asks for: a comparison over a set of levels (SAML core §3.3.2.2.1)."""

    comparison: Comparison
    levels: tuple[int, ...]

    def accepts(self, level: int) -> bool:
        if not self.levels:
            return True
        if self.comparison is Comparison.EXACT:
            return level in self.levels
        if self.comparison is Comparison.MINIMUM:
            return level >= min(self.levels)
        if self.comparison is Comparison.BETTER:
            return level > min(self.levels)
        return level <= max(self.levels)  # MAXIMUM


def requirement_from(class_refs: list[str], comparison: str | None,
                     key_classes: dict[str, int] | None = None) -> LevelRequirement | None:
    """Turn a ``RequestedAuthnContext`` into a requirement.

    Returns None when none of the class references is known: the caller answers
    ``NoAuthnContext``.  An empty list means "no requirement".
    """
    try:
        comp = Comparison(comparison or "exact")
    except ValueError:
        return None
    if not class_refs:
        return LevelRequirement(comp, ())
    levels = tuple(lv for lv in (level_of_context(c, key_classes) for c in class_refs) if lv is not None)
    if not levels:
        return None
    return LevelRequirement(comp, levels)


def stated_class(level: int, class_refs: list[str] | tuple[str, ...], comparison: str | None) -> str:
    """The class the response states: for an ``exact`` request, the requested class
    that the level reached matches (SAML core §3.3.2.2.1); else Sésame's own class."""
    if (comparison or "exact") == "exact":
        for ref in class_refs:
            if level_of_context(ref) == level:
                return ref
    return context_class(level)

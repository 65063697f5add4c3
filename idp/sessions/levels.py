"""Levels of assurance and SAML authentication contexts (DESIGN.md §3).

Pure logic: which levels a requested authentication context asks for, whether a
level (reached with a key) satisfies it, following SAML core §3.3.2.2.1, and
which class a response states.  The scale and the eIDAS ranges come from the
``[levels]`` section of the configuration, read once at start into a
``LevelTable``; each key's own ``AuthnContextClassRef`` is handed in with it.

Every requested class is a *range* of levels: ``…:citizen:Level<N>`` is (N, N),
an eIDAS level the range configured for it (``substantial`` is 300–400 by
default), ``PasswordProtectedTransport`` is (100, 100), and a key's own class
is (level, level) of that key.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence

FAS_PREFIX = "urn:be:fedict:iam:fas:citizen:Level"
EIDAS_PREFIX = "http://eidas.europa.eu/LoA/"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
PASSWORD_PROTECTED_LEVEL = 100

EIDAS_NAMES = ("low", "substantial", "high")  # in increasing strength
SCALE_KEY = "scale"
EIDAS_KEY_PREFIX = "eidas_"

# The built-in [levels] section; idp/app/defaults.toml carries the same (a test checks).
class Comparison(str, enum.Enum):
    EXACT = "exact"
    MINIMUM = "minimum"
    BETTER = "better"
    MAXIMUM = "maximum"


def context_class(level: int) -> str:
    """Sésame's own (FAS) ``AuthnContextClassRef`` for a level."""
    return f"{FAS_PREFIX}{int(level)}"


@dataclass(frozen=True)
class LevelRequirement:
    """What a request asks for: a comparison over ranges of levels (SAML core §3.3.2.2.1).

    ``keys``: when the request names keys' own classes with ``exact`` (and
    nothing else), only those keys may answer; None is no key restriction.
    ``owners`` runs alongside ``ranges``: the key whose own class each range
    came from (None for the shared vocabularies); under ``exact`` a range owned
    by a key is met only by that key, so ``exact [totp's class, Level500]`` is
    met by totp at its level or by any key at 500.
    """

    comparison: Comparison
    ranges: tuple[tuple[int, int], ...]
    keys: frozenset[str] | None = None
    owners: tuple[str | None, ...] = ()

    def _owner(self, i: int) -> str | None:
        return self.owners[i] if i < len(self.owners) else None

    def accepts(self, level: int, key: str | None = None) -> bool:
        """Whether ``level`` (reached with ``key``, if known) meets the request.

        exact: the level lies in one of the ranges (from the key owning it, if
        any); minimum: at least the lowest of the ranges; better: above the
        lowest top of the ranges; maximum: at most the highest top.  Without a
        requested class, everything is accepted.
        """
        if not self.ranges:
            return True
        if self.comparison is Comparison.EXACT:
            if self.keys is not None and key not in self.keys:
                return False
            return any(lo <= level <= hi and self._owner(i) in (None, key)
                       for i, (lo, hi) in enumerate(self.ranges))
        if self.comparison is Comparison.MINIMUM:
            return level >= min(lo for lo, _ in self.ranges)
        if self.comparison is Comparison.BETTER:
            return level > min(hi for _, hi in self.ranges)
        return level <= max(hi for _, hi in self.ranges)  # MAXIMUM


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"[levels] {what}: expected an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class LevelTable:
    """The configured scale of levels, the eIDAS ranges and the keys' own classes."""

    scale: tuple[int, ...]
    eidas: Mapping[str, tuple[int, int]]         # "low"/"substantial"/"high" -> (lowest, highest) level
    key_classes: Mapping[str, tuple[str, int]]   # a key's own AuthnContextClassRef -> (key id, its level)

    @classmethod
    def from_settings(cls, levels_section: Mapping,
                      key_classes: Mapping[str, tuple[str, int]] | None = None) -> "LevelTable":
        """Read and check the ``[levels]`` section; raise ``ValueError`` on any fault.

        The scale is strictly increasing positive integers; each ``eidas_<name>``
        (``low``, ``substantial``, ``high``) a range ``[lowest, highest]`` of
        levels of the scale, ordered and not overlapping; a key's own class is
        none of the shared vocabularies and states a level of the scale.
        """
        section = dict(levels_section)
        unknown = sorted(k for k in section
                         if k != SCALE_KEY and k not in {EIDAS_KEY_PREFIX + n for n in EIDAS_NAMES})
        if unknown:
            known = [SCALE_KEY] + [EIDAS_KEY_PREFIX + n for n in EIDAS_NAMES]
            raise ValueError(f"[levels]: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        raw_scale = section.get(SCALE_KEY)
        if not isinstance(raw_scale, (list, tuple)) or not raw_scale:
            raise ValueError(f"[levels] scale: expected a non-empty list of levels, got {raw_scale!r}")
        scale = tuple(_int(v, "scale") for v in raw_scale)
        if scale[0] <= 0:
            raise ValueError(f"[levels] scale: levels must be positive, got {scale[0]}")
        if any(a >= b for a, b in zip(scale, scale[1:])):
            raise ValueError(f"[levels] scale: levels must be strictly increasing, got {list(scale)}")

        eidas: dict[str, tuple[int, int]] = {}
        for name in EIDAS_NAMES:
            setting = EIDAS_KEY_PREFIX + name
            if setting not in section:
                continue
            raw = section[setting]
            if not isinstance(raw, (list, tuple)) or len(raw) != 2:
                raise ValueError(f"[levels] {setting}: expected [lowest, highest], got {raw!r}")
            lo, hi = _int(raw[0], setting), _int(raw[1], setting)
            if lo > hi:
                raise ValueError(f"[levels] {setting}: lowest {lo} is above highest {hi}")
            outside = [v for v in (lo, hi) if v not in scale]
            if outside:
                raise ValueError(f"[levels] {setting}: {', '.join(map(str, outside))} not in the scale "
                                 f"{list(scale)}")
            eidas[name] = (lo, hi)
        ordered = [n for n in EIDAS_NAMES if n in eidas]
        for weaker, stronger in zip(ordered, ordered[1:]):
            if eidas[weaker][1] >= eidas[stronger][0]:
                raise ValueError(f"[levels] eidas_{weaker} {list(eidas[weaker])} must lie below "
                                 f"eidas_{stronger} {list(eidas[stronger])}")

        classes: dict[str, tuple[str, int]] = {}
        for ref, (key, level) in (key_classes or {}).items():
            if not ref or _shared_vocabulary(ref):
                raise ValueError(f"key {key}: own context class {ref!r} must not be empty or a FAS, "
                                 f"eIDAS or SAML class")
            if level not in scale:
                raise ValueError(f"key {key}: level {level} of its context class is not in the scale "
                                 f"{list(scale)}")
            classes[ref] = (str(key), int(level))
        return cls(scale=scale, eidas=MappingProxyType(eidas), key_classes=MappingProxyType(classes))

    # --- reading requested classes ------------------------------------------------------
    def range_of(self, class_ref: str) -> tuple[int, int] | None:
        """The range of levels a class reference stands for, or None when unknown."""
        if class_ref.startswith(FAS_PREFIX):
            tail = class_ref[len(FAS_PREFIX):]
            if tail.isascii() and tail.isdigit():
                return int(tail), int(tail)
            return None
        if class_ref.startswith(EIDAS_PREFIX):
            return self.eidas.get(class_ref[len(EIDAS_PREFIX):])
        if class_ref == PASSWORD_PROTECTED:
            return PASSWORD_PROTECTED_LEVEL, PASSWORD_PROTECTED_LEVEL
        if class_ref in self.key_classes:
            level = self.key_classes[class_ref][1]
            return level, level
        return None

    def requirement(self, class_refs: Sequence[str], comparison: str | None) -> LevelRequirement | None:
        """Turn a ``RequestedAuthnContext`` into a requirement.

        None when the comparison is not one of SAML's, or when none of the class
        references is known: the caller answers ``NoAuthnContext``.  Unknown
        references among known ones are ignored.  No reference at all is no
        requirement (everything is accepted).
        """
        try:
            comp = Comparison(comparison or "exact")
        except ValueError:
            return None
        if not class_refs:
            return LevelRequirement(comp, ())
        ranges: list[tuple[int, int]] = []
        owners: list[str | None] = []
        for ref in class_refs:
            found = self.range_of(ref)
            if found is None:
                continue
            ranges.append(found)
            owners.append(self.key_classes[ref][0] if ref in self.key_classes else None)
        if not ranges:
            return None
        keys = None
        if comp is Comparison.EXACT and all(owner is not None for owner in owners):
            keys = frozenset(owners)
        if comp is not Comparison.EXACT or not any(owners):
            owners = []
        return LevelRequirement(comp, tuple(ranges), keys, tuple(owners))

    # --- what a response states ------------------------------------------------------
    def eidas_name(self, level: int) -> str | None:
        """The eIDAS level whose range holds ``level``; else the highest one whose
        lowest level is below it; else None."""
        for name, (lo, hi) in self.eidas.items():
            if lo <= level <= hi:
                return name
        below = [name for name, (lo, _) in self.eidas.items() if lo <= level]
        return max(below, key=lambda n: self.eidas[n][0], default=None)

    def stated_class(self, *, level: int, key: str | None, class_refs: Sequence[str],
                     comparison: str | None) -> str:
        """The ``AuthnContextClassRef`` a response states for ``level`` reached with ``key``.

        For ``exact``, the first requested class the level (and key) meets, so
        the portal gets back one of the classes it asked for (SAML core
        §3.3.2.2.1).  Otherwise the vocabulary of the first known requested
        class: eIDAS -> the eIDAS level of ``level``; a key's own class -> that
        class, when ``key`` is that key; ``PasswordProtectedTransport`` -> that
        class at level 100; else (FAS, or no request) ``…:citizen:Level<level>``.
        """
        if (comparison or "exact") == Comparison.EXACT.value:
            for ref in class_refs:
                found = self.range_of(ref)
                if found is None or not found[0] <= level <= found[1]:
                    continue
                if ref in self.key_classes and self.key_classes[ref][0] != key:
                    continue
                return ref
        first = next((ref for ref in class_refs if self.range_of(ref) is not None), None)
        if first is not None:
            if first.startswith(EIDAS_PREFIX):
                name = self.eidas_name(level)
                if name is not None:
                    return f"{EIDAS_PREFIX}{name}"
            elif first in self.key_classes:
                if self.key_classes[first][0] == key:
                    return first
            elif first == PASSWORD_PROTECTED and level == PASSWORD_PROTECTED_LEVEL:
                return first
        return context_class(level)


def _shared_vocabulary(ref: str) -> bool:
    return ref.startswith(FAS_PREFIX) or ref.startswith(EIDAS_PREFIX) or ref in (PASSWORD_PROTECTED, UNSPECIFIED)

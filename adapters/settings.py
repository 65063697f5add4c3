"""Typed settings of a key (DESIGN.md §8.3): ``[keys.<id>]`` of the configuration,
checked once at start against the key's ``Settings`` dataclass.

An unknown setting, or one of the wrong type, raises ``SettingsError`` at start,
never at the first login.  Supported field types: ``bool``, ``int``,
``float``, ``str``, ``tuple[str, ...]``, ``tuple[int, int]`` and ``X | None``
of those.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar


class SettingsError(ValueError):
    """A key's configuration is wrong; the message names the setting."""


@dataclasses.dataclass(frozen=True)
class KeySettings:
    """Settings every key has; a key's own class adds its fields."""

    level: int | None = None                # the level it states (within ``levels``)
    levels: tuple[int, int] | None = None   # the range a variable-level key may reach
    context_class: str | None = None        # its own AuthnContextClassRef


S = TypeVar("S", bound=KeySettings)


def _check(name: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(name, value, inner[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(name, v, args[0]) for v in value)
        if len(value) != len(args):
            raise SettingsError(f"{name}: expected {len(args)} values, got {value!r}")
        return tuple(_check(name, v, a) for v, a in zip(value, args))
    if hint is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{name}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{name}: expected a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SettingsError(f"{name}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{name}: unsupported settings type {hint!r}")


def settings_from(cls: type[S], data: Mapping[str, Any], *, key: str) -> S:
    """Build ``cls`` from a configuration mapping, refusing unknown or ill-typed values."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SettingsError(f"[keys.{key}]: unknown setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(names))}")
    values = {name: _check(f"[keys.{key}] {name}", value, hints[name]) for name, value in data.items()}
    return cls(**values)

"""Digital keys.  Each key is one module exposing one ``Adapter`` subclass.

``ADAPTERS`` is the explicit registry (DESIGN.md §8.3): configuration selects
keys by id, and an unknown id fails at start, not at the first login.
Adding a key means adding one module and one line here.
"""
from __future__ import annotations

from typing import Mapping

from adapters.base import Adapter, AuthResult, Challenge, Failure, Group, Redirect, Success  # noqa: F401
from adapters.password import PasswordAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    PasswordAdapter.id: PasswordAdapter,
}


def build_adapters(enabled: list[str], settings: Mapping[str, Mapping]) -> dict[str, Adapter]:
    """Instantiate the configured keys, in configuration order; unknown ids raise."""
    unknown = [k for k in enabled if k not in ADAPTERS]
    if unknown:
        from idp.errors import ConfigError

        raise ConfigError(f"unknown digital key(s) in [keys] enabled: {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(ADAPTERS))}")
    return {k: ADAPTERS[k](settings.get(k, {})) for k in enabled}

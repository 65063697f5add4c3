"""Digital keys.  Each key is one module (or package) exposing one ``Adapter`` subclass.

``ADAPTERS`` is the explicit registry (DESIGN.md §8.3): configuration selects
keys by id, and an unknown id or an ill-typed setting fails at start, not at
the first login.  Adding a key means adding one module and one line here,
plus its id in ``[keys] enabled``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from adapters.base import (  # noqa: F401
    Adapter, AuthResult, Challenge, Failure, Group, Json, Purpose, Redirect, Subject, SubjectKind, Success,
)
from adapters.eid import EidAdapter
from adapters.eidas import EidasAdapter
from adapters.email_code import EmailCodeAdapter
from adapters.itsme import ItsmeAdapter
from adapters.password import PasswordAdapter
from adapters.settings import SettingsError
from adapters.sms_code import SmsCodeAdapter
from adapters.token import TokenAdapter
from adapters.totp import TotpAdapter

# Pages several keys share (the security-code keys' steps, adapters/security_code.py).
SHARED_TEMPLATES = Path(__file__).with_name("templates")

ADAPTERS: dict[str, type[Adapter]] = {
    PasswordAdapter.id: PasswordAdapter,
    EmailCodeAdapter.id: EmailCodeAdapter,
    SmsCodeAdapter.id: SmsCodeAdapter,
    TotpAdapter.id: TotpAdapter,
    ItsmeAdapter.id: ItsmeAdapter,
    TokenAdapter.id: TokenAdapter,
    EidAdapter.id: EidAdapter,
    EidasAdapter.id: EidasAdapter,
}


def build_adapters(enabled: list[str], settings: Mapping[str, Mapping],
                   registry: Mapping[str, type[Adapter]] | None = None) -> dict[str, Adapter]:
    """Instantiate the configured keys, in configuration order.

    ``registry`` defaults to ``ADAPTERS``; an unknown id, or settings that do
    not fit the key's ``Settings``, raise ``SettingsError``.
    """
    registry = ADAPTERS if registry is None else registry
    unknown = [k for k in enabled if k not in registry]
    if unknown:
        raise SettingsError(f"unknown digital key(s) in [keys] enabled: {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(registry))}")
    return {k: registry[k](settings.get(k, {})) for k in enabled}

"""Everything a request handler or an adapter may use, built once at start.

Kept in ``app.extensions["sesame"]``.  Keys never see it: they get the ports they declare (``ports``).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from adapters import SettingsError, build_adapters
from idp.persistence.audit import Audit
from idp.clock import Clock
from idp.app.config import Settings
from idp.persistence.db import Database
from idp.persistence.models import Portal
from idp.errors import ConfigError
from idp.people.hashing import hasher_from
from idp.people.directory import People
from idp.sessions.sso_session import SsoSessions
from idp.saml.single_logout import SingleLogout
from idp.saml.sso import SsoService
from idp.persistence.store import make_store
from idp.journeys.engine import key_ports
from idp.journeys.journey import Journeys
from idp.journeys.return_state import ReturnStates
from idp.people.credentials import Credentials
from idp.people.identity import Identities
from idp.sessions.levels import LevelTable
from keys.generate import ensure_key_pair
from keys.signer import FileSigner
from metadata.registry import PortalRegistry


def _secret(settings: Settings, name: str, configured: str = "") -> bytes:
    """A secret from configuration, else generated once into the data folder."""
    if configured:
        return configured.encode()
    path = settings.data_dir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def make_signer(settings: Settings):
    conf = settings["signing"]
    if conf["backend"] != "file":
        raise ConfigError(f"[signing] backend {conf['backend']!r} unknown; known: file")
    if conf["key_file"] and conf["cert_file"]:
        key, cert = Path(conf["key_file"]), Path(conf["cert_file"])
    else:
        key, cert = ensure_key_pair(directory=settings.data_dir / "keys", common_name=settings.entity_id[:64],
                                    key_size=int(conf["key_size"]))
    return FileSigner(key, cert)


@dataclass
class Services:
    settings: Settings
    clock: Any
    database: Database
    store: Any
    registry: PortalRegistry
    signer: Any
    adapters: dict
    levels: LevelTable
    audit: Audit
    people: People
    credentials: Credentials
    identities: Identities
    sessions: SsoSessions
    journeys: Journeys
    returns: ReturnStates
    secret_key: bytes
    pairwise_secret: bytes
    sso: Any = None
    logout: Any = None
    ports: dict = field(default_factory=dict)  # what keys may declare (``adapters.base.Adapter.ports``)
    cache: dict = field(default_factory=dict)  # derived values of this instance only (our signed metadata)

    @classmethod
    def build(cls, settings: Settings, *, clock=None, migrate: bool = True,
              key_types: Mapping[str, type] | None = None) -> "Services":
        """Everything, once.  ``key_types`` is the registry of keys to choose the
        enabled ones from (``adapters.ADAPTERS`` unless a caller embeds others)."""
        clock = clock or Clock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            adapters = build_adapters(settings.enabled_keys, settings.key_settings(), key_types)
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
        levels = level_table(settings, adapters)
        database = Database(settings.database_url)
        if migrate:
            database.upgrade()
        store = make_store(settings["store"]["url"], database=database, clock=clock,
                           prefix=settings["store"]["prefix"])
        registry = PortalRegistry(database.session, model=Portal, clock=clock, known_keys=list(adapters),
                                  levels=levels.scale)
        session_conf = settings["session"]
        hasher = hasher_from(settings["hashing"])
        secret_key = _secret(settings, "secret_key", settings["server"]["secret_key"])
        services = cls(
            settings=settings, clock=clock, database=database, store=store, registry=registry,
            signer=make_signer(settings), adapters=adapters, levels=levels, audit=Audit(database),
            people=People(database, hasher), credentials=Credentials(database, hasher),
            identities=Identities(database),
            sessions=SsoSessions(store, lifetime=int(session_conf["lifetime_seconds"]), clock=clock),
            journeys=Journeys(store, ttl=int(session_conf["transaction_ttl_seconds"])),
            returns=ReturnStates(store, secret=secret_key, ttl=int(session_conf["return_ttl_seconds"])),
            secret_key=secret_key, pairwise_secret=_secret(settings, "pairwise_secret"),
        )
        services.sso = SsoService(services)
        services.logout = SingleLogout(services)
        services.ports = key_ports(services)
        return services


def level_table(settings: Settings, adapters: Mapping[str, Any]) -> LevelTable:
    """The level table of ``[levels]``, with each key's own context class wired in."""
    classes = {a.context_class: (key, a.level) for key, a in adapters.items() if a.context_class}
    try:
        table = LevelTable.from_settings(settings["levels"], classes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    off_scale = [k for k, a in adapters.items() if a.level not in table.scale]
    if off_scale:
        raise ConfigError(f"key(s) {', '.join(off_scale)} state a level outside [levels] scale {list(table.scale)}")
    return table

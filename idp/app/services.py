"""Everything a request handler or an adapter may use, built once at start.

Kept in ``app.extensions["sesame"]``; adapters reach it as ``ctx.services``.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters import build_adapters
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
from idp.journeys.transactions import Transactions
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
    audit: Audit
    people: People
    sessions: SsoSessions
    transactions: Transactions
    secret_key: bytes
    pairwise_secret: bytes
    sso: Any = None
    logout: Any = None
    cache: dict = field(default_factory=dict)  # derived values of this instance only (our signed metadata)

    @classmethod
    def build(cls, settings: Settings, *, clock=None, migrate: bool = True) -> "Services":
        clock = clock or Clock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        adapters = build_adapters(settings.enabled_keys, settings.key_settings())
        database = Database(settings.database_url)
        if migrate:
            database.upgrade()
        store = make_store(settings["store"]["url"], database=database, clock=clock,
                           prefix=settings["store"]["prefix"])
        levels = sorted({100, 200, 300, 400, 500} | {a.level for a in adapters.values()})
        registry = PortalRegistry(database.session, model=Portal, clock=clock, known_keys=list(adapters), levels=levels)
        session_conf = settings["session"]
        services = cls(
            settings=settings, clock=clock, database=database, store=store, registry=registry,
            signer=make_signer(settings), adapters=adapters, audit=Audit(database), people=People(database, hasher_from(settings["hashing"])),
            sessions=SsoSessions(store, lifetime=int(session_conf["lifetime_seconds"]), clock=clock),
            transactions=Transactions(store, ttl=int(session_conf["transaction_ttl_seconds"])),
            secret_key=_secret(settings, "secret_key", settings["server"]["secret_key"]),
            pairwise_secret=_secret(settings, "pairwise_secret"),
        )
        services.sso = SsoService(services)
        services.logout = SingleLogout(services)
        return services

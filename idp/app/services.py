"""Everything a request handler or an adapter may use, built once at start.

Kept in ``app.extensions["sesame"]``.  Keys never see it: they get the ports they declare (``ports``).
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from adapters import SettingsError, build_adapters
from adapters.rate_limit import limits_from
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
from idp.people.credentials import Credentials, PasswordRules
from idp.people.contacts import Contacts
from idp.people.notices import Notices
from idp.people.sealing import Sealer
from idp.messaging.delivery import make_mailer, make_sms
from adapters.one_time_code import CodeBook
from idp.people.identity import Identities
from idp.sessions.levels import LevelTable
from keys.generate import ensure_key_pair
from keys.signer import FileSigner
from metadata.registry import PortalRegistry
from idp.app.metrics import MetricsAudit, ObservedStore, TimedSigner
from idp.app.rollover import RolloverMetadata, decryption_keys, install as install_rollover


INIT_COMMAND = "sesame init-secrets"
SECRETS = ("secret_key", "pairwise_secret", "seal_key")  # [server] settings, else files of the data folder


def _data_folder(settings: Settings) -> Path:
    """The data folder, created mode 0700 when missing (it holds the secrets and
    the SQLite database).  An existing folder is left as the operator made it."""
    folder = settings.data_dir
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _missing(item: str) -> ConfigError:
    return ConfigError(f"missing {item}: outside demo mode every node needs the same one; create the "
                       f"secrets once with `{INIT_COMMAND}` and copy them into every node's data folder "
                       f"(or name them in the configuration)")


def _write_secret(path: Path) -> None:
    """Create ``path`` (mode 0600) with a new random secret, unless it exists.

    Written under a private name then hard-linked into place: a link never
    overwrites, so processes starting together end up reading one secret."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won: its secret stands
    finally:
        tmp.unlink(missing_ok=True)


def _secret(settings: Settings, name: str) -> bytes:
    """``[server] <name>`` when set, else the file ``<data_dir>/<name>``.

    A missing file is generated (0600) in demo mode only; outside it is a
    ``ConfigError``: a secret made up by one node alone would differ from the
    other nodes' (session cookies, pairwise NameIDs)."""
    configured = settings["server"].get(name, "")
    if configured:
        return str(configured).encode()
    path = settings.data_dir / name
    if not path.exists():
        if not settings.demo:
            raise _missing(f"[server] {name} (or the file {path})")
        _data_folder(settings)
        _write_secret(path)
    value = path.read_text().strip()
    if not value:
        raise ConfigError(f"{path} is empty: [server] {name} needs a secret")
    return value.encode()


def _signing_files(settings: Settings) -> tuple[Path, Path] | None:
    """The configured ``[signing] key_file``/``cert_file``, or None for the data folder's pair."""
    conf = settings["signing"]
    if conf["key_file"] or conf["cert_file"]:
        if not (conf["key_file"] and conf["cert_file"]):
            raise ConfigError("[signing] key_file and cert_file go together: set both, or neither "
                              "(the data folder's keys/signing.key and .crt)")
        return Path(conf["key_file"]).expanduser(), Path(conf["cert_file"]).expanduser()
    return None


def _ensure_signing_key(settings: Settings) -> tuple[Path, Path]:
    return ensure_key_pair(directory=settings.data_dir / "keys", common_name=settings.entity_id[:64],
                           key_size=int(settings["signing"]["key_size"]))


def make_signer(settings: Settings):
    """The signer of ``[signing]``: the configured key and certificate files,
    else ``<data_dir>/keys/signing.key`` and ``.crt``, generated when missing in
    demo mode only (outside it, a missing file is a ``ConfigError``)."""
    conf = settings["signing"]
    if conf["backend"] == "hsm":  # the key stays on the [hsm] token (keys/hsm.py)
        from idp.app.rollover import hsm_signer
        return hsm_signer(settings)
    if conf["backend"] != "file":
        raise ConfigError(f"[signing] backend {conf['backend']!r} unknown; known: file, hsm")
    configured = _signing_files(settings)
    if configured:
        key, cert = configured
        absent = [str(p) for p in configured if not p.is_file()]
        if absent:
            raise ConfigError(f"[signing] key_file / cert_file: no file {', '.join(absent)}")
    elif settings.demo:
        _data_folder(settings)
        key, cert = _ensure_signing_key(settings)
    else:
        key, cert = settings.data_dir / "keys" / "signing.key", settings.data_dir / "keys" / "signing.crt"
        absent = [str(p) for p in (key, cert) if not p.is_file()]
        if absent:
            raise _missing(f"signing key {', '.join(absent)} ([signing] key_file and cert_file are not set)")
    return FileSigner(key, cert)


def init_secrets(settings: Settings) -> list[tuple[str, Path | None, str]]:
    """Create once, into the data folder, what a node needs and lacks: ``secret_key``,
    ``pairwise_secret`` (0600 files) and the signing key pair (``keys/``).

    What the configuration sets (``[server] secret_key``, ``[signing] key_file``…)
    and files already there are left alone: nothing is ever overwritten.
    Returns ``(item, path or None, "created" | "present" | "configured")`` for each."""
    folder = _data_folder(settings)
    done: list[tuple[str, Path | None, str]] = []
    for name in SECRETS:
        path = folder / name
        if settings["server"].get(name, ""):
            done.append((name, None, "configured"))
        elif path.exists():
            done.append((name, path, "present"))
        else:
            _write_secret(path)
            done.append((name, path, "created"))
    configured = _signing_files(settings)
    if configured:
        done.append(("signing key", configured[0], "configured"))
    else:
        key = folder / "keys" / "signing.key"
        existed = key.exists()
        try:
            key, _ = _ensure_signing_key(settings)
        except FileExistsError as exc:
            raise ConfigError(f"signing key: {exc}; remove the lone file or restore its pair") from None
        done.append(("signing key", key.parent, "present" if existed else "created"))
    return done


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
    contacts: Contacts = None
    mailer: Any = None
    sms: Any = None
    sealer: Sealer = None
    notices: Notices = None
    sso: Any = None
    logout: Any = None
    ports: dict = field(default_factory=dict)  # what keys may declare (``adapters.base.Adapter.ports``)
    cache: dict = field(default_factory=dict)  # derived values of this instance only (our signed metadata)
    codes: Any = None  # the one-time-code engines' factory (``adapters.one_time_code.CodeBook``)
    keyring: Any = None  # Sésame's own keys and their rollover (``keys.keyring.KeyRing``)

    @classmethod
    def build(cls, settings: Settings, *, clock=None, migrate: bool = True,
              key_types: Mapping[str, type] | None = None) -> "Services":
        """Everything, once.  ``key_types`` is the registry of keys to choose the
        enabled ones from (``adapters.ADAPTERS`` unless a caller embeds others)."""
        clock = clock or Clock()
        _data_folder(settings)
        try:
            adapters = build_adapters(settings.enabled_keys, settings.key_settings(), key_types)
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
        levels = level_table(settings, adapters)
        try:
            mailer, sms = make_mailer(settings), make_sms(settings)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for port, section, backend in (("mailer", "mail", "smtp"), ("sms", "sms", "http")):
            needing = [k for k, a in adapters.items() if port in a.ports]
            if needing and (mailer if port == "mailer" else sms) is None:
                raise ConfigError(f"key(s) {', '.join(needing)} send messages: configure [{section}] backend = "
                                  f"\"{backend}\" (\"outbox\" is for the demo only)")
        # Secrets and key first: a node that lacks them stops before it touches the database.
        secret_key, pairwise_secret = _secret(settings, "secret_key"), _secret(settings, "pairwise_secret")
        signer = make_signer(settings)
        database = Database(settings.database_url)
        if migrate:
            database.upgrade()
        store = make_store(settings["store"]["url"], database=database, clock=clock,
                           prefix=settings["store"]["prefix"])
        store = ObservedStore(store)  # counts store errors for /metrics (idp/app/metrics.py)
        registry = PortalRegistry(database.session, model=Portal, clock=clock, known_keys=list(adapters),
                                  levels=levels.scale)
        session_conf = settings["session"]
        hasher = hasher_from(settings["hashing"])
        password_conf = settings["keys"].get("password", {})
        rules = PasswordRules(min_length=int(password_conf.get("min_password_length", 12)),
                              lifetime_days=int(password_conf.get("password_lifetime_days", 730)))
        services = cls(
            settings=settings, clock=clock, database=database, store=store, registry=registry,
            signer=signer, adapters=adapters, levels=levels, audit=Audit(database),
            people=People(database, hasher, rules), credentials=Credentials(database, hasher, limits=limits_from(settings["limits"]),
                                                                    rules=rules, clock=clock),
            identities=Identities(database),
            sessions=SsoSessions(store, lifetime=int(session_conf["lifetime_seconds"]),
                                 idle=int(session_conf["idle_seconds"]), clock=clock),
            journeys=Journeys(store, ttl=int(session_conf["transaction_ttl_seconds"])),
            returns=ReturnStates(store, secret=secret_key, ttl=int(session_conf["return_ttl_seconds"])),
            secret_key=secret_key, pairwise_secret=pairwise_secret,
            contacts=Contacts(database), mailer=mailer, sms=sms, sealer=Sealer(_secret(settings, "seal_key")),
        )
        # Operations (issue 15): the audit port counted into /metrics, the signer behind
        # the rollover keyring (idp/app/rollover.py) and timed; before any port is handed out.
        services.audit = MetricsAudit(services.audit)
        install_rollover(services)
        services.signer = TimedSigner(services.signer, settings["signing"]["backend"])
        services.notices = Notices(mailer, services.contacts)
        services.codes = CodeBook(store, secret_key)
        services.sso = SsoService(services)
        services.logout = SingleLogout(services)
        services.ports = key_ports(services)
        services.ports["client_certificate"] = ClientCertificateHeader()  # the eID key's proxy-header mode
        # The eIDAS key (adapters/eidas) signs its requests with Sésame's key: the keyring's
        # current one (idp/app/rollover.py), timed for /metrics.
        services.ports["signer"] = services.signer
        services.sso.metadata = RolloverMetadata(services)  # publishes next/current/previous keys
        # Sésame's decryption keys to try in turn (current, next, previous), for a key that
        # decrypts what is encrypted to Sésame (eIDAS): each works with keys.xmldec.decrypt_element.
        services.ports["decryption_keys"] = lambda: decryption_keys(services)
        return services


class ClientCertificateHeader:
    """A port of the eID key (proxy-header mode): the TCP peer of this request,
    before any X-Forwarded-For rewriting (the proxy itself, which the key checks
    against its ``trusted_proxies``), and one header's value."""

    def read(self, header: str) -> tuple[str, str | None]:
        from flask import request

        environ = request.environ
        peer = environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR") or environ.get("REMOTE_ADDR") or ""
        return peer, request.headers.get(header)


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

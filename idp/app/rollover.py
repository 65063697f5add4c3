"""Wiring of Sésame's own keys: the ``[hsm]`` token, the rollover keyring
(``keys/keyring.py``) over the ``own_key`` table, the metadata that publishes
every key of the keyring, and the ``sesame keys …`` commands.

Each rollover step is audited (``keys.<step>``, or ``keys.refused`` with the
reason) and refused steps change nothing.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree

from idp.errors import ConfigError
from keys.generate import generate_key_pair
from keys.hsm import HsmDecryptionKey, HsmError, HsmSigner, HsmToken, read_pin
from keys.keyring import KeyRecord, KeyRing, RolloverError, RollingSigner
from keys.signer import FileSigner
from keys.xmldec import load_decryption_key

_TOKENS: dict[tuple, HsmToken] = {}
_TOKENS_LOCK = threading.Lock()


def _audit_refusal(settings, event: str, code: str, message: str) -> None:
    """An audit row for a start refused before the services exist (best effort)."""
    try:
        from idp.persistence.audit import Audit
        from idp.persistence.db import Database

        database = Database(settings.database_url)
        database.upgrade()  # the refusal comes before the start's own migration; idempotent
        Audit(database).record(event, result=code, reason=message[:300])
    except Exception:  # no database yet either: the log line and the message stand
        pass


def hsm_token(settings) -> HsmToken:
    """The ``[hsm]`` token, opened once per process; ``ConfigError`` (and an audit
    event ``keys.hsm_refused``) when the module, token or PIN cannot be used."""
    conf = settings["hsm"]
    key = (conf["module"], conf["token_label"])
    with _TOKENS_LOCK:
        if key not in _TOKENS:
            try:
                if not conf["module"]:
                    raise HsmError("hsm_module", "[hsm] module is empty: the path of the PKCS#11 library")
                pin = read_pin(pin_file=conf["pin_file"], pin_env=conf["pin_env"])
                _TOKENS[key] = HsmToken(module=conf["module"], token_label=conf["token_label"], pin=pin,
                                        pool_size=int(conf["pool_size"]))
            except HsmError as exc:
                _audit_refusal(settings, "keys.hsm_refused", exc.code, str(exc))
                raise ConfigError(str(exc)) from None
        return _TOKENS[key]


def hsm_signer(settings) -> HsmSigner:
    """``[signing] backend = "hsm"``: the key ``[signing] key_label`` of the ``[hsm]`` token,
    its certificate on the token or in ``[signing] cert_file``."""
    conf = settings["signing"]
    token = hsm_token(settings)
    try:
        cert = Path(conf["cert_file"]).expanduser().read_bytes() if conf["cert_file"] else None
        return HsmSigner(token, conf["key_label"], cert)
    except OSError as exc:
        raise ConfigError(f"[signing] cert_file: {exc}") from None
    except HsmError as exc:
        _audit_refusal(settings, "keys.hsm_refused", exc.code, str(exc))
        raise ConfigError(str(exc)) from None


def _pem_signer(key_pem: bytes, cert_pem: bytes) -> FileSigner:
    """A FileSigner of a key held in memory: written only to a private temporary folder, removed at once."""
    with tempfile.TemporaryDirectory(prefix="sesame-key-") as folder:  # mode 0700
        key, cert = Path(folder) / "k.pem", Path(folder) / "c.pem"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        cert.write_bytes(cert_pem)
        return FileSigner(key, cert)


def _owner(label: str) -> str:
    return f"own_key:{label}"  # binds a sealed key to its row: a copy under another label does not open


def make_keyring(services, fallback) -> KeyRing:
    from idp.persistence.models import OwnKey

    settings = services.settings
    conf = settings["rollover"]

    def load(record: KeyRecord):
        if record.backend == "configured":
            return fallback
        if record.backend == "sealed":
            pem = services.sealer.open(record.sealed_key, owner=_owner(record.label)).encode("ascii")
            if record.use == "signing":
                return _pem_signer(pem, record.certificate_pem)
            return load_decryption_key(pem)
        if record.backend == "hsm":
            token = hsm_token(settings)
            if record.use == "signing":
                return HsmSigner(token, record.key_ref, record.certificate_pem)
            return HsmDecryptionKey(token, record.key_ref)
        raise ValueError(f"unknown key backend {record.backend!r}")

    def report(record: KeyRecord, reason: str) -> None:
        services.audit.record("keys.load_failed", result="key_unusable", label=record.label, use=record.use,
                              backend=record.backend, reason=reason[:300])

    return KeyRing(services.database.session, OwnKey, clock=services.clock, load=load,
                   min_published_seconds=int(conf["min_published_seconds"]),
                   grace_seconds=int(conf["grace_seconds"]), refresh_seconds=float(conf["refresh_seconds"]),
                   report=report)


class RolloverMetadata:
    """Sésame's metadata (``SsoService.metadata``) with every published key of the
    keyring: the current signing key first, then the next and the previous ones,
    and the encryption keys.  Rebuilt when the keyring changes (at most a second
    after a step on another node) and at least hourly, like the original."""

    def __init__(self, services) -> None:
        self.s = services
        self._cached: tuple | None = None

    def __call__(self) -> bytes:
        from idp.people.attributes import PROFILE
        from idp.saml.sso import metadata_details
        from metadata.idp_metadata import build_idp_metadata

        s = self.s
        view = s.keyring.view()
        now = s.clock.now()
        cached = self._cached
        if cached is not None and cached[0] == view.signature and 0 <= now - cached[1] <= 3600:
            return cached[2]
        current = s.signer.certificate_b64()
        others = [_b64(r.certificate_pem) for r in view.published("signing")]
        base, saml = s.settings.base_url, s.settings["saml"]
        valid_days, cache_seconds = int(saml["metadata_valid_days"]), int(saml["metadata_cache_seconds"])
        xml = build_idp_metadata(
            entity_id=s.settings.entity_id, sso_url=f"{base}/saml/sso", slo_url=f"{base}/saml/slo",
            signing_cert_b64=current, extra_signing_certs_b64=[c for c in others if c != current],
            encryption_certs_b64=[_b64(r.certificate_pem) for r in view.published("encryption")],
            valid_for_seconds=valid_days * 86400 if valid_days else None, now=now,
            cache_duration_seconds=cache_seconds or None, attribute_names=PROFILE,
            **metadata_details(s.settings))
        signed = s.signer.sign_xml(xml, reference_id=etree.fromstring(xml).get("ID"))
        self._cached = (view.signature, now, signed)
        return signed


def _b64(pem: bytes) -> str:
    import base64

    return base64.b64encode(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)).decode()


def install(services) -> None:
    """Put the keyring in front of the ``[signing]`` signer (``services.signer`` stays a ``Signer``)."""
    fallback = services.signer
    services.keyring = make_keyring(services, fallback)
    services.signer = RollingSigner(services.keyring, fallback)
    try:
        services.keyring.view()  # read at start, so that the first request finds the keys ready
    except Exception as exc:  # a database without the table yet (built with migrate=False): read later
        logging.getLogger("sesame.keys").warning("key states not read at start: %s", exc.__class__.__name__)


def decryption_keys(services) -> list:
    """Sésame's decryption keys to try, in order (current, next, previous): for a caller of
    ``keys.xmldec.decrypt_element`` such as the eIDAS key.  Empty when no encryption key
    has been through the keyring (the caller then uses its own configured key)."""
    return list(services.keyring.view().decryption_keys)


# --- sesame keys … ----------------------------------------------------------------------
def _adopt_configured(services) -> None:
    """The first step of a first rollover records the ``[signing]`` key as the current
    signing key, so that it is published as "previous" once the next key signs."""
    ring = services.keyring
    if not any(r.use == "signing" for r in ring.records("signing")):
        fallback = services.signer.fallback
        try:
            ring.add(use="signing", label="configured-signing", backend="configured", key_ref="",
                     certificate_pem=fallback.certificate_pem, state="current")
        except RolloverError:
            pass  # another node did it at the same moment


def _label(use: str) -> str:
    return f"{use}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"


def keys_generate(services, *, use: str, backend: str, label: str | None, key_size: int) -> KeyRecord:
    _adopt_configured(services)
    label = label or _label(use)
    name = services.settings.entity_id[:64]
    if backend == "hsm":
        token = hsm_token(services.settings)
        try:
            token.generate_rsa(label, key_size)
            cert = token.self_signed_certificate(label, common_name=name)
        except HsmError as exc:
            raise RolloverError(exc.code, str(exc)) from None
        return services.keyring.add(use=use, label=label, backend="hsm", key_ref=label, certificate_pem=cert)
    if backend != "sealed":
        raise RolloverError("bad_backend", "backend is \"sealed\" (the database, sealed) or \"hsm\"")
    key_pem, cert = generate_key_pair(common_name=name, key_size=key_size)
    return services.keyring.add(use=use, label=label, backend="sealed", key_ref="", certificate_pem=cert,
                                sealed_key=services.sealer.seal(key_pem.decode("ascii"), owner=_owner(label)))


def keys_import(services, *, use: str, label: str, cert_file: str, key_file: str = "",
                hsm_label: str = "") -> KeyRecord:
    _adopt_configured(services)
    try:
        cert = Path(cert_file).read_bytes()
        x509.load_pem_x509_certificate(cert)
    except (OSError, ValueError) as exc:
        raise RolloverError("bad_certificate", f"{cert_file}: not a PEM certificate ({exc.__class__.__name__})") from None
    if hsm_label:
        try:
            if use == "signing":
                HsmSigner(hsm_token(services.settings), hsm_label, cert)
            else:
                HsmDecryptionKey(hsm_token(services.settings), hsm_label)
        except HsmError as exc:
            raise RolloverError(exc.code, str(exc)) from None
        return services.keyring.add(use=use, label=label, backend="hsm", key_ref=hsm_label, certificate_pem=cert)
    try:
        key_pem = Path(key_file).read_bytes()
        _pem_signer(key_pem, cert)  # checks that the certificate is the key's, and the key type
        load_decryption_key(key_pem)  # RSA of 2048 bits or more, for either use
    except (OSError, ValueError, TypeError) as exc:
        raise RolloverError("bad_key", f"{key_file}: {exc}") from None
    return services.keyring.add(use=use, label=label, backend="sealed", key_ref="", certificate_pem=cert,
                                sealed_key=services.sealer.seal(key_pem.decode("ascii"), owner=_owner(label)))


def _run_step(services, step: str, func, **fields) -> int:
    try:
        record = func()
    except (RolloverError, ConfigError) as exc:
        code = getattr(exc, "code", "config")
        message = getattr(exc, "detail", None) or str(exc)
        services.audit.record("keys.refused", result=code, step=step, **fields)
        print(f"refused: {message}", file=sys.stderr)
        return 1
    services.audit.record(f"keys.{step}", key=None, label=record.label, use=record.use, backend=record.backend,
                          state=record.state)
    print(f"{record.label}\t{record.use}\t{record.state}")
    return 0


def cmd_keys(args, services_of) -> int:
    services = services_of(args)
    ring = services.keyring
    if args.action == "list":
        _adopt_configured(services)
        view = ring.refresh()
        print("label\tuse\tbackend\tstate\tpublished\tactivated\tdeactivated\tcertificate (SHA-256)")
        for r in ring.records():
            fp = x509.load_pem_x509_certificate(r.certificate_pem).fingerprint(hashes.SHA256()).hex()[:16]
            times = [f"{t:%Y-%m-%d %H:%M}" if t else "-" for t in (r.published_at, r.activated_at, r.deactivated_at)]
            print("\t".join([r.label, r.use, r.backend, r.state, *times, fp]))
        for problem in view.problems:
            print(f"problem on this node: {problem}", file=sys.stderr)
        return 0
    if args.action == "generate":
        return _run_step(services, "generated", lambda: keys_generate(
            services, use=args.use, backend=args.backend, label=args.label, key_size=args.key_size),
            use=args.use)
    if args.action == "import":
        return _run_step(services, "imported", lambda: keys_import(
            services, use=args.use, label=args.label, cert_file=args.cert, key_file=args.key or "",
            hsm_label=args.hsm_label or ""), use=args.use)
    step = {"publish": ("published", ring.publish), "activate": ("activated", ring.activate),
            "retire": ("retired", lambda label: ring.retire(label, force=args.force))}
    name, func = step[args.action]
    return _run_step(services, name, lambda: func(args.label), label=args.label)


def add_key_commands(sub, services_of) -> None:
    keys = sub.add_parser("keys", help="Sésame's own keys: list, generate, import, publish, activate, retire "
                                       "(docs/operations.md, key rollover)").add_subparsers(dest="action", required=True)
    p = keys.add_parser("list", help="every key, its state and dates")
    p = keys.add_parser("generate", help="a new key (state new), in the database (sealed) or on the [hsm] token")
    p.add_argument("--use", choices=("signing", "encryption"), default="signing")
    p.add_argument("--backend", choices=("sealed", "hsm"), default="sealed")
    p.add_argument("--label", help="default: <use>-<date>")
    p.add_argument("--key-size", type=int, default=3072)
    p = keys.add_parser("import", help="an existing key: --key (PEM file) or --hsm-label, with its --cert")
    p.add_argument("label")
    p.add_argument("--use", choices=("signing", "encryption"), default="signing")
    p.add_argument("--cert", required=True)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--key")
    group.add_argument("--hsm-label")
    for action, text in (("publish", "put a new key in the metadata, beside the current one"),
                         ("activate", "sign with a published key (after [rollover] min_published_seconds)"),
                         ("retire", "take a previous key out of the metadata (after [rollover] grace_seconds)")):
        p = keys.add_parser(action, help=text)
        p.add_argument("label")
        if action == "retire":
            p.add_argument("--force", action="store_true", help="before the grace period ends (a compromised key)")
    for parser in keys.choices.values():
        parser.set_defaults(func=lambda args: cmd_keys(args, services_of))

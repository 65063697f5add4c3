"""metadata.registry: registering portals, looking them up through the cache, across processes.

"Another process" is a second registry with its own SQLAlchemy engine on the
same SQLite file.  SP metadata is generated at run time by pysaml2.
"""
from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

import metadata.registry as registry_module
from idp.clock import FrozenClock
from metadata.errors import MetadataError
from idp.persistence.models import Base, Portal
from metadata.policy import PortalPolicy
from metadata.registry import PortalRegistry, RegisteredPortal

KEYS = ("password", "eid", "itsme", "totp", "email_code", "sms_code", "token", "eidas")
LEVELS = (100, 200, 300, 400, 500)
SP = "https://portal.example.be/sp"
POLICY = PortalPolicy(accepted_keys=("eid", "itsme"), min_level=400, attributes=("surname", "givenName"))


@pytest.fixture(scope="module")
def keypair(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sp")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    (tmp / "sp.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    (tmp / "sp.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return tmp / "sp.key", tmp / "sp.crt"


@pytest.fixture
def sp_metadata(keypair):
    def make(entity_id: str = SP, acs: str = "https://portal.example.be/acs", valid_for_hours: int = 24) -> bytes:
        conf = {"entityid": entity_id, "key_file": str(keypair[0]), "cert_file": str(keypair[1]),
                "valid_for": valid_for_hours,
                "service": {"sp": {"endpoints": {"assertion_consumer_service": [(acs, BINDING_HTTP_POST)]}}}}
        return str(entity_descriptor(SPConfig().load(conf))).encode()
    return make


def session_factory(url: str):
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)

    @contextmanager
    def session():
        with maker() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
    return session


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'sesame.db'}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def new_registry(db_url: str, clock, **kw) -> PortalRegistry:
    return PortalRegistry(session_factory(db_url), model=Portal, clock=clock, known_keys=kw.get("known_keys", KEYS),
                          levels=kw.get("levels", LEVELS))


@pytest.fixture
def registry(db_url, clock) -> PortalRegistry:
    return new_registry(db_url, clock)


def rows(db_url: str) -> list[tuple]:
    with session_factory(db_url)() as s:
        return [tuple(r) for r in s.execute(select(Portal.entity_id, Portal.metadata_xml, Portal.policy))]


def test_add_get_list_remove(registry, sp_metadata, db_url):
    added = registry.add(xml=sp_metadata(), source="/etc/sesame/portal.xml", policy=POLICY, name="Mon portail")
    assert isinstance(added, RegisteredPortal)
    assert added.entity_id == SP and added.name == "Mon portail" and added.source == "/etc/sesame/portal.xml"
    assert added.updated_at.tzinfo is not None
    got = registry.get(SP)
    assert got is not None and got.policy == POLICY
    assert got.metadata.default_acs().location == "https://portal.example.be/acs"
    assert got.updated_at == added.updated_at
    assert [p.entity_id for p in registry.list()] == [SP]
    assert rows(db_url)[0][2]["min_level"] == 400
    assert registry.get("https://unknown.example.be") is None
    assert registry.remove(SP) is True
    assert registry.get(SP) is None and registry.list() == []
    assert registry.remove(SP) is False


def test_name_defaults_to_policy_then_metadata_then_entity_id(registry, sp_metadata):
    assert registry.add(xml=sp_metadata(), source=None, policy=PortalPolicy(display_name="FSE")).name == "FSE"
    assert registry.add(xml=sp_metadata("urn:be:other"), source=None, policy=PortalPolicy()).name == "urn:be:other"


def test_duplicate_refused_and_replace_works(registry, sp_metadata, db_url):
    first = registry.add(xml=sp_metadata(), source=None, policy=POLICY)
    before = rows(db_url)
    with pytest.raises(MetadataError) as info:
        registry.add(xml=sp_metadata(acs="https://portal.example.be/new-acs"), source=None, policy=PortalPolicy())
    assert "already registered" in info.value.detail
    assert rows(db_url) == before

    replaced = registry.add(xml=sp_metadata(acs="https://portal.example.be/new-acs"), source=None,
                            policy=PortalPolicy(min_level=500), replace=True)
    assert replaced.updated_at > first.updated_at
    got = registry.get(SP)
    assert got.metadata.default_acs().location == "https://portal.example.be/new-acs"
    assert got.policy.min_level == 500
    assert len(rows(db_url)) == 1


def test_nothing_written_on_refusal(registry, sp_metadata, db_url):
    with pytest.raises(MetadataError):
        registry.add(xml=sp_metadata(acs="http://evil.example/acs"), source=None, policy=POLICY)
    with pytest.raises(MetadataError) as info:
        registry.add(xml=sp_metadata(), source=None, policy=PortalPolicy(accepted_keys=("carrier_pigeon",)))
    assert "carrier_pigeon" in info.value.detail
    with pytest.raises(MetadataError):
        registry.add(xml=sp_metadata(), source=None, policy=PortalPolicy(min_level=250))
    with pytest.raises(MetadataError):
        registry.add(xml=sp_metadata(), source="x" * 3000, policy=POLICY)
    assert rows(db_url) == []

    registry.add(xml=sp_metadata(), source=None, policy=POLICY)
    before = rows(db_url)
    with pytest.raises(MetadataError):
        registry.add(xml=b"<not-metadata/>", source=None, policy=POLICY, replace=True)
    assert rows(db_url) == before


def test_get_parses_once_then_uses_the_cache(registry, sp_metadata, monkeypatch):
    calls = []
    real = registry_module.reload_sp_metadata
    monkeypatch.setattr(registry_module, "reload_sp_metadata", lambda xml: calls.append(1) or real(xml))
    registry.add(xml=sp_metadata(), source=None, policy=POLICY)
    first = registry.get(SP)
    for _ in range(5):
        assert registry.get(SP) is first
    assert len(calls) == 1


def test_another_process_sees_changes_without_restart(db_url, clock, sp_metadata):
    server = new_registry(db_url, clock)
    cli = new_registry(db_url, clock)  # its own engine: another process
    assert server.get(SP) is None

    cli.add(xml=sp_metadata(), source=None, policy=POLICY)
    assert server.get(SP).metadata.default_acs().location == "https://portal.example.be/acs"

    cli.add(xml=sp_metadata(acs="https://portal.example.be/acs2"), source=None, policy=POLICY, replace=True)
    server.refresh()  # what a lookup does by itself refresh_seconds after the last check
    assert server.get(SP).metadata.default_acs().location == "https://portal.example.be/acs2"

    cli.remove(SP)
    server.refresh()
    assert server.get(SP) is None
    cli.add(xml=sp_metadata(acs="https://portal.example.be/acs3"), source=None, policy=POLICY)
    assert server.get(SP).metadata.default_acs().location == "https://portal.example.be/acs3"


def test_lookups_read_no_database_and_see_other_processes_within_refresh_seconds(db_url, clock, sp_metadata,
                                                                                  monkeypatch):
    server = new_registry(db_url, clock)
    cli = new_registry(db_url, clock)
    cli.add(xml=sp_metadata(), source=None, policy=POLICY)
    cli.add(xml=sp_metadata("urn:be:other"), source=None, policy=POLICY)
    assert server.get(SP) is not None  # registered by another process: seen at once
    statements = []
    real_sessions = server._sessions

    def counting_sessions():
        statements.append(1)
        return real_sessions()

    monkeypatch.setattr(server, "_sessions", counting_sessions)
    now = [1000.0]
    monkeypatch.setattr(registry_module.time, "monotonic", lambda: now[0])
    server.refresh()
    assert server.get("urn:be:other") is not None  # parsed at its first lookup
    statements.clear()
    for _ in range(100):
        assert server.get(SP) is not None and server.get("urn:be:other") is not None
    assert statements == []  # no database read while the index is fresh

    cli.add(xml=sp_metadata(acs="https://portal.example.be/acs2"), source=None, policy=POLICY, replace=True)
    assert server.get(SP).metadata.default_acs().location == "https://portal.example.be/acs"  # not yet
    now[0] += server.refresh_seconds
    assert server.get(SP).metadata.default_acs().location == "https://portal.example.be/acs2"
    assert len(statements) == 2  # the check, then the changed row parsed again

    cli.remove("urn:be:other")
    now[0] += server.refresh_seconds
    assert server.get("urn:be:other") is None


def test_a_write_stamps_the_row_later_than_every_row(db_url, clock, sp_metadata):
    """So that max(updated_at) moves at every write, whatever the writer's clock says."""
    registry = new_registry(db_url, clock)
    first = registry.add(xml=sp_metadata(), source=None, policy=POLICY)
    with session_factory(db_url)() as s:  # another row stamped in the future (a node whose clock is ahead)
        s.execute(Portal.__table__.update().where(Portal.entity_id == SP).values(
            updated_at=first.updated_at + dt.timedelta(hours=1)))
        s.commit()
    second = registry.add(xml=sp_metadata("urn:be:other"), source=None, policy=POLICY)
    assert second.updated_at > first.updated_at + dt.timedelta(hours=1)


def test_metadata_expiring_after_registration_becomes_unknown(registry, clock, sp_metadata, caplog):
    registry.add(xml=sp_metadata(valid_for_hours=1), source=None, policy=POLICY)
    assert registry.get(SP) is not None
    clock.advance(2 * 3600)
    with caplog.at_level(logging.WARNING, logger="sesame.metadata"):
        assert registry.get(SP) is None
    assert any("metadata expired on" in r.getMessage() and SP in r.getMessage() for r in caplog.records)
    assert [p.entity_id for p in registry.list()] == [SP]  # the operator still sees it
    clock.advance(-2 * 3600)
    assert registry.get(SP) is not None


def test_stored_policy_no_longer_valid_makes_portal_unknown(db_url, clock, sp_metadata, caplog):
    new_registry(db_url, clock).add(xml=sp_metadata(), source=None, policy=PortalPolicy(accepted_keys=("itsme",)))
    without_itsme = new_registry(db_url, clock, known_keys=("eid", "password"))
    with caplog.at_level(logging.WARNING, logger="sesame.metadata"):
        assert without_itsme.get(SP) is None
    assert any("itsme" in r.getMessage() for r in caplog.records)


def test_list_is_sorted_and_complete(registry, sp_metadata):
    for entity in ("urn:be:b", "https://a.example.be/sp", "urn:be:a"):
        registry.add(xml=sp_metadata(entity), source=None, policy=POLICY)
    assert [p.entity_id for p in registry.list()] == ["https://a.example.be/sp", "urn:be:a", "urn:be:b"]


def test_non_utf8_metadata_refused(registry, sp_metadata, db_url):
    xml = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + sp_metadata()
    xml = xml.replace(b"portal.example.be/acs", "portal.example.be/acs\xe9".encode("latin-1"))
    with pytest.raises(MetadataError) as info:
        registry.add(xml=xml, source=None, policy=POLICY)
    assert "UTF-8" in info.value.detail
    assert rows(db_url) == []


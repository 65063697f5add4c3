"""Rollover of Sésame's own keys: the steps, their refusals, two nodes, and two pysaml2
portals (plus python3-saml) that keep logging in through a whole HSM key rollover."""
from __future__ import annotations

import base64
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from idp import create_app
from idp.app.cli import main as sesame
from idp.app.demo import create_citizens
from idp.app.rollover import decryption_keys, keys_generate
from idp.app.services import Services
from idp.clock import Clock
from keys.keyring import RolloverError
from keys.xmldsig import verify_xml
from tests.conftest import idp_settings, write_node
from tests.hsm_fixtures import softhsm_token  # noqa: F401  (session fixture)
from tests.saml_sp import FSE, MON_ESPACE, TestPortal, audit_events, autopost_fields, follow, login_with_password, send

MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def published(services) -> dict[str, list[str]]:
    """The certificates of our served metadata, by use (checked to be signed by the signing key)."""
    xml = services.sso.metadata()
    root = etree.fromstring(xml)
    out: dict[str, list[str]] = {}
    for kd in root.iter(MD + "KeyDescriptor"):
        out.setdefault(kd.get("use"), []).append(kd.find(f".//{DS}X509Certificate").text)
    return out


def b64(pem: bytes) -> str:
    return base64.b64encode(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)).decode()


ROLLOVER = {"min_published_seconds": 3600, "grace_seconds": 7200, "refresh_seconds": 0.0}


def test_steps_in_order_each_refusal_keeps_the_key_in_use(tmp_path, clock):
    services = Services.build(idp_settings(tmp_path, rollover=ROLLOVER), clock=clock)
    first = services.signer.certificate_b64()
    ring = services.keyring
    record = keys_generate(services, use="signing", backend="sealed", label="next-1", key_size=2048)
    assert [(r.label, r.state) for r in ring.records()] == [("configured-signing", "current"), ("next-1", "new")]
    assert published(services)["signing"] == [first]  # new: not shown yet
    with pytest.raises(RolloverError, match="publish it first") as raised:
        ring.activate("next-1")
    assert raised.value.code == "out_of_order"
    ring.publish("next-1")
    assert published(services)["signing"] == [first, b64(record.certificate_pem)]
    clock.advance(3000)
    with pytest.raises(RolloverError, match="after 3600 s") as raised:
        ring.activate("next-1")
    assert raised.value.code == "not_published_long_enough"
    assert services.signer.certificate_b64() == first  # still signing with the key it had
    clock.advance(601)
    ring.activate("next-1")
    assert services.signer.certificate_b64() == b64(record.certificate_pem)
    assert published(services)["signing"] == [b64(record.certificate_pem), first]
    with pytest.raises(RolloverError, match="activate another key first"):
        ring.retire("next-1")
    with pytest.raises(RolloverError) as raised:
        ring.retire("configured-signing")
    assert raised.value.code == "grace_period"
    clock.advance(7200)
    ring.retire("configured-signing")
    assert published(services)["signing"] == [b64(record.certificate_pem)]
    # The sealed private key is in the database, unreadable without the seal key.
    assert "PRIVATE KEY" not in (ring.find("next-1").sealed_key or "")


def test_encryption_keyring_gives_the_keys_to_try_in_order(tmp_path, clock):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    services = Services.build(idp_settings(tmp_path, rollover={**ROLLOVER, "min_published_seconds": 0}), clock=clock)
    assert decryption_keys(services) == []  # none through the keyring: the caller uses its own
    ring = services.keyring
    a = keys_generate(services, use="encryption", backend="sealed", label="enc-a", key_size=2048)
    ring.publish("enc-a")
    ring.activate("enc-a")
    b = keys_generate(services, use="encryption", backend="sealed", label="enc-b", key_size=2048)
    ring.publish("enc-b")
    assert published(services)["encryption"] == [b64(a.certificate_pem), b64(b.certificate_pem)]
    ring.activate("enc-b")
    keys = decryption_keys(services)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    to_a = x509.load_pem_x509_certificate(a.certificate_pem).public_key().encrypt(b"s" * 16, oaep)
    # current (b) first, then previous (a): a message encrypted to the old key still opens
    assert [k.public_key().public_numbers() for k in keys] == [
        x509.load_pem_x509_certificate(c).public_key().public_numbers() for c in (b.certificate_pem, a.certificate_pem)]
    assert keys[1].decrypt(to_a, oaep) == b"s" * 16
    # As the eIDAS key would: an assertion encrypted to the previous key opens with the keys in turn.
    from keys.xmldec import DecryptionError, decrypt_element
    from keys.xmlenc import encrypt_element

    doc = encrypt_element(document=b'<r xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion ID="_s">'
                                   b'secret</saml:Assertion></r>', element_id="_s", certificate_pem=a.certificate_pem)
    wrapper = etree.fromstring(doc)[0]
    opened = []
    for key in services.ports["decryption_keys"]():
        try:
            opened.append(decrypt_element(wrapper, key))
        except DecryptionError:
            opened.append(None)
    assert opened[0] is None and b"secret" in opened[1]
    # the signing side is untouched
    assert published(services)["signing"] == [services.signer.certificate_b64()]


def test_two_nodes_activating_at_once_one_wins(tmp_path, clock, db_url):
    """On SQLite and PostgreSQL (``db_url``: a fresh database each)."""
    url = db_url
    nodes = [Services.build(idp_settings(tmp_path, database=url, rollover={**ROLLOVER, "min_published_seconds": 0}),
                            clock=clock) for _ in range(2)]
    keys_generate(nodes[0], use="signing", backend="sealed", label="k2", key_size=2048)
    nodes[0].keyring.publish("k2")
    outcomes: list = []
    barrier = threading.Barrier(2)

    def activate(node):
        barrier.wait()
        try:
            outcomes.append(node.keyring.activate("k2").state)
        except RolloverError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=activate, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["concurrent_change", "current"] or sorted(outcomes) == ["current", "out_of_order"]
    states = [(r.label, r.state) for r in nodes[1].keyring.records()]
    assert states == [("configured-signing", "previous"), ("k2", "current")]
    # both nodes sign with k2 (no restart, no per-request read: refresh_seconds is 0 here)
    assert nodes[0].signer.certificate_b64() == nodes[1].signer.certificate_b64() == b64(
        nodes[1].keyring.find("k2").certificate_pem)


def test_a_node_that_cannot_load_the_new_key_keeps_signing_with_its_own(tmp_path, clock):
    """Node B has another seal key (a configuration mistake): it cannot open the key node A
    activates, says so (audit, `keys list`), and goes on signing with the key it had."""
    rollover = {**ROLLOVER, "min_published_seconds": 0}
    a = Services.build(idp_settings(tmp_path, rollover=rollover), clock=clock)
    b = Services.build(idp_settings(tmp_path, rollover=rollover, server={"seal_key": "not-the-same-seal-key"}),
                       clock=clock)
    before = b.signer.certificate_b64()
    keys_generate(a, use="signing", backend="sealed", label="sealed-next", key_size=2048)
    a.keyring.publish("sealed-next")
    a.keyring.activate("sealed-next")
    assert a.signer.certificate_b64() != before
    assert b.signer.certificate_b64() == before  # still signing, with the key it had
    assert "cannot be used here" in b.keyring.view().problems[0]
    (event,) = audit_events(b, "keys.load_failed")
    assert event.result == "key_unusable" and event.detail["label"] == "sealed-next"
    b.signer.sign_xml(b'<r ID="_x"/>', reference_id="_x")  # signs


def test_no_database_read_per_signature(tmp_path, clock):
    """With the default refresh (1 s), signing 50 times reads the key table at most once."""
    from sqlalchemy import event

    services = Services.build(idp_settings(tmp_path), clock=clock)
    services.signer.certificate_b64()
    reads: list[str] = []
    listener = lambda *args: reads.append(args[2]) if "own_key" in args[2] else None  # noqa: E731
    event.listen(services.database.engine, "before_cursor_execute", listener)
    try:
        for i in range(50):
            services.signer.sign_xml(f'<r ID="_{i}"/>'.encode(), reference_id=f"_{i}")
    finally:
        event.remove(services.database.engine, "before_cursor_execute", listener)
    assert len(reads) <= 1


def test_cli_steps_are_audited_and_out_of_order_is_refused(tmp_path, capsys):
    config = write_node(tmp_path / "node", demo=True,
                        extra="[rollover]\nmin_published_seconds = 3600\ngrace_seconds = 0\n")
    assert sesame(["--config", str(config), "keys", "generate", "--label", "k-cli", "--key-size", "2048"]) == 0
    assert sesame(["--config", str(config), "keys", "activate", "k-cli"]) == 1
    assert "publish it first" in capsys.readouterr().err
    assert sesame(["--config", str(config), "keys", "publish", "k-cli"]) == 0
    assert sesame(["--config", str(config), "keys", "activate", "k-cli"]) == 1
    err = capsys.readouterr().err
    assert "published 0 s ago" in err and "Traceback" not in err
    assert sesame(["--config", str(config), "keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "k-cli\tsigning\tsealed\tpublished" in out and "configured-signing\tsigning\tconfigured\tcurrent" in out
    assert sesame(["--config", str(config), "keys", "import", "bad", "--cert", str(config), "--key", str(config)]) == 1
    assert "not a PEM certificate" in capsys.readouterr().err
    from idp.app.config import load_settings

    services = Services.build(load_settings(str(config), environ={}), clock=Clock())
    assert [e.result for e in audit_events(services, "keys.refused")] == [
        "out_of_order", "not_published_long_enough", "bad_certificate"]
    assert [e.detail["label"] for e in audit_events(services, "keys.generated")] == ["k-cli"]
    assert len(audit_events(services, "keys.published")) == 1


def _login(app, portal) -> None:
    """One full login through ``app``; the portal must accept the response (pysaml2's checks)."""
    browser = app.test_client()
    sent = portal.request()
    page = follow(browser, send(browser, sent))
    assert page.status_code == 200
    _, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    response = portal.parse(fields["SAMLResponse"])
    assert response.get_identity()["surname"] == ["Dupont"]


def test_hsm_rollover_while_two_portals_keep_logging_in(tmp_path, softhsm_token, sp_keys):
    """Done when: responses signed in SoftHSM2, the key rolled over to a new one on the token
    while Mon Espace and FSE (pysaml2) log in through two nodes at every step; each portal
    refreshes its copy of our metadata when it changes, as a fetching SP does."""
    import time

    rollover = {"min_published_seconds": 1, "grace_seconds": 1, "refresh_seconds": 0.0}
    nodes = []
    for _ in range(2):
        # [limits] raised: this test logs the same citizen in 30 times from one address.
        limits = {"per_username_attempts": 1000, "per_address_attempts": 1000}
        services = Services.build(idp_settings(tmp_path, rollover=rollover, limits=limits, **softhsm_token.settings()),
                                  clock=Clock())
        nodes.append((create_app(services=services), services))
    create_citizens(nodes[0][1])
    a = nodes[0][1]
    portals = {spec.slug: TestPortal(a, spec, tmp_path / "sp") for spec in (MON_ESPACE, FSE)}
    seen_metadata = {slug: a.sso.metadata() for slug in portals}
    old_cert = a.signer.certificate_b64()

    def everyone_logs_in():
        for slug, portal in list(portals.items()):
            now = a.sso.metadata()
            if now != seen_metadata[slug]:  # the SP's next metadata fetch
                portals[slug] = portal = TestPortal(a, portal.spec, tmp_path / "sp")
                seen_metadata[slug] = now
            for app, _ in nodes:
                _login(app, portal)

    everyone_logs_in()
    record = keys_generate(a, use="signing", backend="hsm", label="hsm-next", key_size=2048)
    new_cert = b64(record.certificate_pem)
    everyone_logs_in()
    a.keyring.publish("hsm-next")
    at_publish = a.sso.metadata().decode()  # what python3-saml will hold: both certificates
    everyone_logs_in()
    for _, node in nodes:
        assert published(node)["signing"] == [old_cert, new_cert]
    with pytest.raises(RolloverError):  # too early: refused, nothing changes
        nodes[1][1].keyring.activate("hsm-next")
    everyone_logs_in()
    time.sleep(1.05)
    nodes[1][1].keyring.activate("hsm-next")  # on the other node
    for _, node in nodes:
        assert node.signer.certificate_b64() == new_cert  # both switched, no restart
    everyone_logs_in()
    python3_saml_logs_in(tmp_path, nodes[0][0], a, at_publish, softhsm_token, sp_keys)
    time.sleep(1.05)
    a.keyring.retire("configured-signing")
    everyone_logs_in()
    assert published(a)["signing"] == [new_cert]
    verify_xml(a.sso.metadata(), certificates=[record.certificate_pem])
    assert not audit_events(a, "saml.rejected")


def python3_saml_logs_in(tmp_path, app, services, idp_metadata: str, softhsm_token, sp_keys) -> None:
    """python3-saml (strict), holding our metadata of the publish step (old and new
    certificates), accepts a response signed by the new key."""
    from tests.test_interop_python3_saml import World, assert_accepted, login

    config = tmp_path / "sesame.toml"
    config.write_text(f'[server]\nbase_url = "http://idp.test"\ndata_dir = "{tmp_path / "idp"}"\ndemo = true\n'
                      f'[log]\nformat = "text"\nlevel = "WARNING"\n' + softhsm_token.toml(), encoding="utf-8")
    world = World(app, services, config, "http://idp.test", idp_metadata, sp_keys, tmp_path)
    settings = world.settings()
    assert len(settings["idp"]["x509certMulti"]["signing"]) == 2
    world.register(settings)
    auth, _ = login(world, app.test_client(), settings)
    assert_accepted(auth)


@pytest.fixture(scope="module")
def sp_keys():
    from keys.generate import generate_key_pair

    key_pem, cert_pem = generate_key_pair(common_name="python3-saml rollover SP", key_size=2048)
    return key_pem.decode(), cert_pem.decode()

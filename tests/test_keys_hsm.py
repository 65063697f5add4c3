"""Sésame's signing key in a PKCS#11 token (SoftHSM2): the same SAML round trips as
with the file key (pysaml2 and python3-saml), and clear refusals at start."""
from __future__ import annotations

import base64
import subprocess
import sys
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from idp import create_app
from idp.app.demo import create_citizens
from idp.app.services import Services
from idp.clock import Clock
from idp.errors import ConfigError
from keys.hsm import HsmDecryptionKey, HsmError, HsmSigner, HsmToken, read_pin
from keys.xmldsig import verify_xml
from tests.conftest import idp_settings, write_node
from tests.hsm_fixtures import softhsm_token  # noqa: F401  (session fixture)
from tests.saml_sp import FSE, MON_ESPACE, TestPortal, audit_events, autopost_fields, follow, login_with_password, send


@pytest.fixture(scope="module")
def token(softhsm_token):
    return HsmToken(module=softhsm_token.module, token_label=softhsm_token.token_label, pin=softhsm_token.pin,
                    pool_size=4)


@pytest.fixture(scope="module")
def hsm_signer(token, softhsm_token):
    return HsmSigner(token, softhsm_token.signing_label, softhsm_token.signing_cert_file.read_bytes())


def _login(app, portal):
    browser = app.test_client()
    sent = portal.request()
    page = follow(browser, send(browser, sent))
    _, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    return portal.parse(fields["SAMLResponse"]), fields["SAMLResponse"]


def test_every_response_is_signed_on_the_token_and_pysaml2_accepts_it(tmp_path, clock, softhsm_token):
    settings = idp_settings(tmp_path, **softhsm_token.settings())
    services = Services.build(settings, clock=clock)
    create_citizens(services)
    app = create_app(services=services)
    certificate_pem = softhsm_token.signing_cert_file.read_bytes()
    assert services.signer.current().__class__ is HsmSigner
    metadata = app.test_client().get("/saml/metadata").get_data()
    assert services.signer.certificate_b64().encode() in metadata
    verify_xml(metadata, certificates=[certificate_pem])  # the metadata too is signed by the token
    for spec in (MON_ESPACE, FSE):
        portal = TestPortal(services, spec, tmp_path / "sp")
        response, raw = _login(app, portal)
        assert response.get_identity()["surname"] == ["Dupont"]
        # pysaml2 verified it against our metadata, which holds the token's certificate only;
        # every signature of the response names that certificate.
        xml = etree.fromstring(base64.b64decode(raw))
        names = xml.findall(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate")
        assert names and {n.text for n in names} == {services.signer.certificate_b64()}
    assert audit_events(services, "saml.response")


def test_hsm_xml_and_redirect_signatures_verify_with_the_certificate(hsm_signer):
    doc = etree.fromstring(b'<r xmlns="urn:x" ID="_a"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
                           b'i</saml:Issuer><v>1</v></r>')
    signed = hsm_signer.sign_xml(doc, reference_id="_a")
    verify_xml(signed, certificates=[hsm_signer.certificate_pem])
    data = b"SigAlg=...&SAMLRequest=..."
    x509.load_pem_x509_certificate(hsm_signer.certificate_pem).public_key().verify(
        hsm_signer.sign_bytes(data), data, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(ValueError):
        hsm_signer.sign_bytes(data, algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256")


def test_the_private_key_never_leaves_the_token(token, softhsm_token):
    from pkcs11 import Attribute, ObjectClass

    with token.session() as (session, _):
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=softhsm_token.signing_label)
        assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False


def test_threads_sign_in_parallel_through_the_pool(hsm_signer):
    public = x509.load_pem_x509_certificate(hsm_signer.certificate_pem).public_key()
    errors: list = []

    def work(n):
        try:
            for i in range(40):
                data = f"{n}-{i}".encode()
                public.verify(hsm_signer.sign_bytes(data), data, padding.PKCS1v15(), hashes.SHA256())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_decryption_key_on_the_token_opens_rsa_oaep(token, softhsm_token):
    key = HsmDecryptionKey(token, softhsm_token.signing_label)
    public = token.public_key(softhsm_token.signing_label)
    # rsa-oaep-mgf1p (SHA-1), what most SAML senders use; SoftHSM2 2.6 implements no other OAEP digest.
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    assert key.decrypt(public.encrypt(b"k" * 32, oaep), oaep) == b"k" * 32
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    with pytest.raises(ValueError):
        key.decrypt(b"\x00" * 256, oaep)
    with pytest.raises(ValueError):
        key.decrypt(public.encrypt(b"k", padding.PKCS1v15()), padding.PKCS1v15())


@pytest.mark.parametrize("label,code,words", [
    ("absent", "hsm_key", "no private key labelled 'absent'"),
    ("small-rsa", "hsm_key_unfit", "1024 bits"),
    ("ec-key", "hsm_key_unfit", "is EC, not RSA"),
])
def test_missing_or_unfit_key_is_refused_at_start(token, softhsm_token, label, code, words):
    with pytest.raises(HsmError) as raised:
        HsmSigner(token, label, softhsm_token.signing_cert_file.read_bytes())
    assert raised.value.code == code and words in str(raised.value)


def test_certificate_of_another_key_is_refused(token, softhsm_token, tmp_path):
    from keys.generate import generate_key_pair

    _, other_cert = generate_key_pair(common_name="x", key_size=2048)
    with pytest.raises(HsmError, match="does not match"):
        HsmSigner(token, softhsm_token.signing_label, other_cert)


def test_pin_sources(tmp_path):
    assert read_pin(pin_env="SESAME_TEST_PIN", environ={"SESAME_TEST_PIN": "1234"}) == "1234"
    with pytest.raises(HsmError, match="SESAME_TEST_PIN is not set"):
        read_pin(pin_env="SESAME_TEST_PIN", environ={})
    with pytest.raises(HsmError, match="never written in the configuration"):
        read_pin()
    with pytest.raises(HsmError, match="cannot read a PIN"):
        read_pin(pin_file=str(tmp_path / "none"))


def test_missing_token_is_a_clear_configuration_error_and_audited(tmp_path, clock, softhsm_token):
    conf = softhsm_token.settings()
    conf["hsm"]["token_label"] = "no-such-token"
    settings = idp_settings(tmp_path, **conf)
    with pytest.raises(ConfigError) as raised:
        Services.build(settings, clock=clock)
    assert "no token labelled 'no-such-token'" in raised.value.detail
    services = Services.build(idp_settings(tmp_path), clock=clock)  # same database, file key
    (event,) = audit_events(services, "keys.hsm_refused")
    assert event.result == "hsm_token"


def test_wrong_pin_stops_the_command_with_a_clear_message_and_an_audit_event(tmp_path, softhsm_token):
    """In a process of its own: this one is logged in to the token already."""
    bad_pin = tmp_path / "bad-pin"
    bad_pin.write_text("0000\n")
    config = write_node(tmp_path / "node", demo=True,
                        extra=softhsm_token.toml().replace(str(softhsm_token.pin_file), str(bad_pin)))
    done = subprocess.run([sys.executable, "-m", "idp.app.cli", "--config", str(config), "keys", "list"],
                          env=softhsm_token.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "the PIN of token 'sesame-test' is wrong" in done.stderr
    assert "Traceback" not in done.stderr and "0000" not in done.stderr
    from idp.app.config import load_settings

    services = Services.build(load_settings(str(config), environ={}, overrides={"signing": {"backend": "file", "cert_file": ""}}),
                              clock=Clock())
    (event,) = audit_events(services, "keys.hsm_refused")
    assert event.result == "hsm_pin" and "0000" not in str(event.detail)


def test_python3_saml_accepts_responses_signed_on_the_token(tmp_path, softhsm_token, sp_keys):
    from tests.test_interop_python3_saml import World, assert_accepted, login

    base_url = "http://idp-hsm.test"
    config = tmp_path / "sesame.toml"
    config.write_text(f'[server]\nbase_url = "{base_url}"\ndata_dir = "{tmp_path / "idp"}"\ndemo = true\n'
                      f'[log]\nformat = "text"\nlevel = "WARNING"\n' + softhsm_token.toml(), encoding="utf-8")
    settings = idp_settings(tmp_path, base_url=base_url, **softhsm_token.settings())
    services = Services.build(settings, clock=Clock())
    create_citizens(services)
    app = create_app(services=services)
    metadata = app.test_client().get("/saml/metadata").get_data(as_text=True)
    world = World(app, services, config, base_url, metadata, sp_keys, tmp_path)
    sp = world.settings()
    world.register(sp)
    auth, _ = login(world, app.test_client(), sp)
    assert_accepted(auth)


@pytest.fixture(scope="module")
def sp_keys():
    from keys.generate import generate_key_pair

    key_pem, cert_pem = generate_key_pair(common_name="python3-saml HSM SP", key_size=2048)
    return key_pem.decode(), cert_pem.decode()


def test_encryption_key_on_the_token_decrypts_an_assertion(tmp_path, clock, softhsm_token):
    """The eIDAS key's path: an assertion encrypted to our HSM encryption key opens through
    the ``decryption_keys`` port, the private key staying on the token."""
    from idp.app.rollover import keys_generate
    from keys.xmldec import decrypt_element
    from keys.xmlenc import encrypt_element

    services = Services.build(idp_settings(tmp_path, rollover={"min_published_seconds": 0, "refresh_seconds": 0.0},
                                           **softhsm_token.settings()), clock=clock)
    record = keys_generate(services, use="encryption", backend="hsm", label="hsm-encryption", key_size=2048)
    services.keyring.publish("hsm-encryption")
    services.keyring.activate("hsm-encryption")
    (key,) = services.ports["decryption_keys"]()
    assert isinstance(key, HsmDecryptionKey)
    doc = encrypt_element(document=b'<r xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion ID="_e">'
                                   b'for Sesame</saml:Assertion></r>', element_id="_e",
                          certificate_pem=record.certificate_pem)
    assert b"for Sesame" in decrypt_element(etree.fromstring(doc)[0], key)
    assert services.signer.current().__class__ is HsmSigner  # the signing side untouched

"""keys.xmlenc: EncryptedAssertion by XML Encryption (SAML core §2.3.4, §6).

Real keys, real crypto.  Decrypted both in-process with python-xmlsec and with
the xmlsec1 program (what pysaml2 SPs run; subprocess in the tests only), and
the assertion's signature checked again after decryption.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import saml, samlp

from keys import (
    AES128_CBC,
    AES128_GCM,
    AES256_CBC,
    AES256_GCM,
    RSA_OAEP_MGF1P,
    EncryptionError,
    FileSigner,
    check_recipient,
    encrypt_element,
    ensure_key_pair,
    generate_key_pair,
    verify_xml,
)

SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"
XENC = "{http://www.w3.org/2001/04/xmlenc#}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
NS = {"xenc": XENC[1:-1], "saml": SAML[1:-1], "ds": DS[1:-1]}
ELEMENT_TYPE = "http://www.w3.org/2001/04/xmlenc#Element"
ASSERTION_NODE = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
SP = "https://sp.example.test/metadata"
XMLSEC1 = shutil.which("xmlsec1")
needs_xmlsec1 = pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 program not installed")


def saml_response(*, response_id: str = "_r1", assertion_id: str = "_a1") -> bytes:
    """A pysaml2-built Response whose assertion carries personal data."""
    issuer = saml.Issuer(text="https://idp.example.test", format=saml.NAMEID_FORMAT_ENTITY)
    assertion = saml.Assertion(
        id=assertion_id, version="2.0", issue_instant="2024-05-01T10:00:00Z", issuer=issuer,
        subject=saml.Subject(name_id=saml.NameID(text="pairwise-abc")),
        attribute_statement=saml.AttributeStatement(attribute=[
            saml.Attribute(name="surname", attribute_value=[saml.AttributeValue(text="Dupont")]),
            saml.Attribute(name="egovNRN", attribute_value=[saml.AttributeValue(text="85031412302")]),
        ]),
    )
    response = samlp.Response(
        id=response_id, version="2.0", issue_instant="2024-05-01T10:00:00Z",
        destination="https://sp.example.test/acs", issuer=saml.Issuer(text="https://idp.example.test"),
        status=samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_SUCCESS)), assertion=assertion,
    )
    return response.to_string()


@pytest.fixture(scope="module")
def signer(tmp_path_factory) -> FileSigner:
    key, cert = ensure_key_pair(directory=tmp_path_factory.mktemp("idp"), common_name="idp.example.test")
    return FileSigner(key, cert)


def _pair(directory: Path, name: str) -> tuple[Path, Path]:
    key_pem, cert_pem = generate_key_pair(common_name=name, key_size=2048)
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    key.write_bytes(key_pem)
    cert.write_bytes(cert_pem)
    return key, cert


@pytest.fixture(scope="module")
def sp_keys(tmp_path_factory) -> tuple[Path, Path]:
    return _pair(tmp_path_factory.mktemp("sp"), "sp")


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory) -> tuple[Path, Path]:
    return _pair(tmp_path_factory.mktemp("other"), "other")


@pytest.fixture(scope="module")
def signed(signer) -> bytes:
    return signer.sign_xml(saml_response(), reference_id="_a1")


def encrypt(signed: bytes, sp_keys, **options) -> bytes:
    return encrypt_element(document=signed, element_id="_a1", certificate_pem=sp_keys[1].read_bytes(),
                           recipient=SP, **options)


def decrypt_in_process(document: bytes, key_file: Path) -> etree._Element:
    """python-xmlsec, the private key in a KeysManager; returns the document's root."""
    root = etree.fromstring(document)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(str(key_file), xmlsec.KeyFormat.PEM, None))
    ctx = xmlsec.EncryptionContext(manager)
    ctx.decrypt(root.find(".//xenc:EncryptedData", NS))
    return root


def xmlsec1(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([XMLSEC1, *args], check=False, capture_output=True, timeout=30)


def verified_assertion(assertion: etree._Element, signer: FileSigner) -> etree._Element:
    """Our strict verifier, on the decrypted assertion as its own document."""
    return verify_xml(etree.tostring(assertion), certificates=[signer.certificate_pem])


@pytest.mark.parametrize("algorithm", [AES256_GCM, AES128_GCM, AES256_CBC, AES128_CBC])
def test_round_trip_in_process_and_signature_still_verifies(signed, sp_keys, signer, algorithm):
    encrypted = encrypt(signed, sp_keys, data_algorithm=algorithm)
    root = etree.fromstring(encrypted)
    assert [child.tag for child in root] == [SAML + "Issuer", SAMLP + "Status", SAML + "EncryptedAssertion"]
    assert root.find(".//saml:Assertion", NS) is None
    assert b"Dupont" not in encrypted and b"85031412302" not in encrypted and b"pairwise-abc" not in encrypted
    wrapper = root.find(SAML + "EncryptedAssertion")
    [data] = list(wrapper)
    assert data.tag == XENC + "EncryptedData" and data.get("Type") == ELEMENT_TYPE
    assert data.find("xenc:EncryptionMethod", NS).get("Algorithm") == algorithm
    encrypted_key = data.find("ds:KeyInfo/xenc:EncryptedKey", NS)
    assert encrypted_key.get("Recipient") == SP
    assert encrypted_key.find("xenc:EncryptionMethod", NS).get("Algorithm") == RSA_OAEP_MGF1P
    assert algorithm.encode() in encrypted and RSA_OAEP_MGF1P.encode() in encrypted

    decrypted = decrypt_in_process(encrypted, sp_keys[0])
    assertion = decrypted.find("saml:EncryptedAssertion/saml:Assertion", NS)
    assert assertion.get("ID") == "_a1"
    assert verified_assertion(assertion, signer).get("ID") == "_a1"
    assert assertion.findtext(".//saml:AttributeValue", namespaces=NS) == "Dupont"


def test_default_algorithms_are_aes256_gcm_and_rsa_oaep_mgf1p(signed, sp_keys):
    data = etree.fromstring(encrypt(signed, sp_keys)).find(".//xenc:EncryptedData", NS)
    assert data.find("xenc:EncryptionMethod", NS).get("Algorithm") == AES256_GCM
    assert data.find(".//xenc:EncryptedKey/xenc:EncryptionMethod", NS).get("Algorithm") == RSA_OAEP_MGF1P


@needs_xmlsec1
def test_round_trip_with_the_xmlsec1_program(tmp_path, signed, sp_keys, signer):
    (tmp_path / "enc.xml").write_bytes(encrypt(signed, sp_keys))
    result = xmlsec1("--decrypt", "--privkey-pem", str(sp_keys[0]), "--output", str(tmp_path / "dec.xml"),
                     str(tmp_path / "enc.xml"))
    assert result.returncode == 0, result.stderr
    decrypted = (tmp_path / "dec.xml").read_bytes()
    assert b"Dupont" in decrypted
    idp_cert = tmp_path / "idp.crt"
    idp_cert.write_bytes(signer.certificate_pem)
    verify = xmlsec1("--verify", "--enabled-key-data", "raw-x509-cert", "--pubkey-cert-pem", str(idp_cert),
                     "--id-attr:ID", ASSERTION_NODE, str(tmp_path / "dec.xml"))
    assert verify.returncode == 0, verify.stderr
    assertion = etree.fromstring(decrypted).find("saml:EncryptedAssertion/saml:Assertion", NS)
    assert verified_assertion(assertion, signer).get("ID") == "_a1"


@needs_xmlsec1
def test_encrypted_data_decrypts_outside_its_document(tmp_path, signed, sp_keys, signer):
    """The plaintext carries its namespace declarations: a recipient may decrypt the
    EncryptedData alone (OpenSAML) or in a re-serialized response (pysaml2)."""
    data = etree.fromstring(encrypt(signed, sp_keys)).find(".//xenc:EncryptedData", NS)
    (tmp_path / "alone.xml").write_bytes(etree.tostring(data))
    result = xmlsec1("--decrypt", "--privkey-pem", str(sp_keys[0]), str(tmp_path / "alone.xml"))
    assert result.returncode == 0 and b"namespace error" not in result.stderr, result.stderr
    assertion = etree.fromstring(result.stdout)
    assert assertion.tag == SAML + "Assertion"
    assert verified_assertion(assertion, signer).get("ID") == "_a1"


@needs_xmlsec1
def test_wrong_key_does_not_decrypt(tmp_path, signed, sp_keys, other_keys):
    encrypted = encrypt(signed, sp_keys)
    with pytest.raises(xmlsec.Error):
        decrypt_in_process(encrypted, other_keys[0])
    (tmp_path / "enc.xml").write_bytes(encrypted)
    result = xmlsec1("--decrypt", "--privkey-pem", str(other_keys[0]), str(tmp_path / "enc.xml"))
    assert result.returncode != 0 and b"Dupont" not in result.stdout


def test_tampered_ciphertext_is_refused_by_gcm(signed, sp_keys):
    root = etree.fromstring(encrypt(signed, sp_keys))
    value = root.find(".//xenc:EncryptedData/xenc:CipherData/xenc:CipherValue", NS)
    text = value.text.strip()
    value.text = text[:40] + ("A" if text[40] != "A" else "B") + text[41:]
    with pytest.raises(xmlsec.Error):
        decrypt_in_process(etree.tostring(root), sp_keys[0])


def test_fresh_session_key_each_time(signed, sp_keys):
    values = set()
    for _ in range(2):
        root = etree.fromstring(encrypt(signed, sp_keys))
        values.update(v.text for v in root.iterfind(".//xenc:CipherValue", NS))
    assert len(values) == 4


def test_response_signature_over_the_encrypted_assertion(signed, sp_keys, signer):
    """SAML core §6.1 order: assertion signed, then encrypted, then the response signed."""
    final = signer.sign_xml(encrypt(signed, sp_keys), reference_id="_r1")
    root = verify_xml(final, certificates=[signer.certificate_pem])
    assert root.find(SAML + "EncryptedAssertion") is not None and b"Dupont" not in final


def _rsa_1024_certificate() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("options, fragment", [
    ({"data_algorithm": "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"}, "not offered"),
    ({"key_transport": "http://www.w3.org/2001/04/xmlenc#rsa-1_5"}, "not offered"),
    ({"element_id": "_nope"}, "found 0"),
    ({"element_id": "_r1"}, "root element"),
    ({"certificate_pem": b"not a certificate"}, "does not parse"),
    ({"certificate_pem": "ec"}, "RSA key"),
    ({"certificate_pem": "rsa1024"}, "shorter than 2048"),
    ({"document": b"<unclosed"}, "does not parse"),
])
def test_refusals_raise_encryption_error(signed, sp_keys, options, fragment):
    arguments = {"document": signed, "element_id": "_a1", "certificate_pem": sp_keys[1].read_bytes(), **options}
    if arguments["certificate_pem"] == "ec":
        arguments["certificate_pem"] = generate_key_pair(common_name="ec", key_type="ec")[1]
    elif arguments["certificate_pem"] == "rsa1024":
        arguments["certificate_pem"] = _rsa_1024_certificate()
    with pytest.raises(EncryptionError) as raised:
        encrypt_element(**arguments)
    assert raised.value.code == "encryption_error" and fragment in raised.value.reason
    if options.get("certificate_pem") is not None:
        with pytest.raises(EncryptionError):
            check_recipient(arguments["certificate_pem"])


def test_duplicate_id_refused(sp_keys):
    twice = saml_response(response_id="_same", assertion_id="_same")
    with pytest.raises(EncryptionError):
        encrypt_element(document=twice, element_id="_same", certificate_pem=sp_keys[1].read_bytes())


def test_check_recipient_accepts_an_rsa_2048_certificate(sp_keys):
    check_recipient(sp_keys[1].read_bytes())


def test_threads_share_the_cached_recipient(signed, sp_keys, signer):
    """The per-certificate keys manager is shared; encryption releases the GIL."""
    results: list[bytes] = []
    errors: list[Exception] = []

    def work() -> None:
        try:
            for _ in range(25):
                results.append(encrypt(signed, sp_keys))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 200
    for encrypted in results[::10]:
        assertion = decrypt_in_process(encrypted, sp_keys[0]).find(".//saml:Assertion", NS)
        assert verified_assertion(assertion, signer).get("ID") == "_a1"

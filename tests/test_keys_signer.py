"""keys.generate and keys.signer: key pair creation and in-process XML signing.

Real keys (generated at run time), real crypto, and the xmlsec1 program as an
independent verifier (subprocess in the tests only).
"""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree
from saml2 import saml, samlp
from saml2.sigver import CryptoBackendXmlSec1

from keys import (
    ECDSA_SHA256,
    RSA_SHA256,
    RSA_SHA384,
    FileSigner,
    Signer,
    ensure_key_pair,
    generate_key_pair,
    verify_xml,
)

DS = "{http://www.w3.org/2000/09/xmldsig#}"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"
RESPONSE_NODE = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
ASSERTION_NODE = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
XMLSEC1 = shutil.which("xmlsec1")
needs_xmlsec1 = pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 program not installed")


def _issuer() -> saml.Issuer:
    return saml.Issuer(text="https://idp.example.test", format=saml.NAMEID_FORMAT_ENTITY)


def saml_response(*, response_id: str = "_r1", assertion_id: str = "_a1", name_id: str = "alice") -> bytes:
    """A real samlp:Response with a saml:Assertion, built by pysaml2."""
    assertion = saml.Assertion(
        id=assertion_id,
        version="2.0",
        issue_instant="2024-05-01T10:00:00Z",
        issuer=_issuer(),
        subject=saml.Subject(name_id=saml.NameID(text=name_id)),
    )
    response = samlp.Response(
        id=response_id,
        version="2.0",
        issue_instant="2024-05-01T10:00:00Z",
        destination="https://sp.example.test/acs",
        issuer=_issuer(),
        status=samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_SUCCESS)),
        assertion=assertion,
    )
    return response.to_string()


def _signer_in(directory: Path, **options) -> FileSigner:
    key_path, cert_path = ensure_key_pair(directory=directory, common_name="idp.example.test", **options)
    return FileSigner(key_path, cert_path)


@pytest.fixture(scope="module")
def signer(tmp_path_factory) -> FileSigner:
    return _signer_in(tmp_path_factory.mktemp("idp-keys"))


@pytest.fixture(scope="module")
def other_signer(tmp_path_factory) -> FileSigner:
    return _signer_in(tmp_path_factory.mktemp("attacker-keys"), key_size=2048)


@pytest.fixture(scope="module")
def ec_signer(tmp_path_factory) -> FileSigner:
    return _signer_in(tmp_path_factory.mktemp("ec-keys"), key_type="ec")


def _xmlsec1_verify(tmp_path: Path, signed: bytes, signer: Signer, *, node: str, node_id: str) -> bool:
    """Verify with the xmlsec1 program, the way pysaml2 SPs do."""
    cert_file = tmp_path / f"verify-{node_id}.crt"
    cert_file.write_bytes(signer.certificate_pem)
    backend = CryptoBackendXmlSec1(XMLSEC1)
    try:
        return backend.validate_signature(signed, str(cert_file), "pem", node, node_id)
    except Exception:  # pysaml2 raises its SignatureError on failure
        return False


# -- keys.generate -----------------------------------------------------------


def test_generate_key_pair_gives_pkcs8_key_and_matching_self_signed_certificate():
    key_pem, cert_pem = generate_key_pair(common_name="idp.example.test", days=30)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    key = serialization.load_pem_private_key(key_pem, password=None)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    assert certificate.subject == certificate.issuer
    assert certificate.subject.rfc4514_string() == "CN=idp.example.test"
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 30 <= lifetime.days <= 31
    # Self-signed: the certificate's own key verifies its signature.
    certificate.public_key().verify(
        certificate.signature,
        certificate.tbs_certificate_bytes,
        padding.PKCS1v15(),
        certificate.signature_hash_algorithm,
    )


def test_generate_key_pair_refuses_short_rsa_keys():
    with pytest.raises(ValueError):
        generate_key_pair(common_name="x", key_size=1024)


def test_ensure_key_pair_creates_private_key_file_once(tmp_path):
    key_path, cert_path = ensure_key_pair(directory=tmp_path / "keys", common_name="idp")
    assert (key_path.name, cert_path.name) == ("signing.key", "signing.crt")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    first = key_path.read_bytes(), cert_path.read_bytes()
    again = ensure_key_pair(directory=tmp_path / "keys", common_name="idp")
    assert again == (key_path, cert_path)
    assert (key_path.read_bytes(), cert_path.read_bytes()) == first  # never regenerated
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["signing.crt", "signing.key"]


def test_ensure_key_pair_refuses_a_lone_key(tmp_path):
    (tmp_path / "signing.key").write_bytes(b"whatever")
    with pytest.raises(FileExistsError):
        ensure_key_pair(directory=tmp_path, common_name="idp")


def test_file_signer_refuses_a_certificate_of_another_key(tmp_path, signer, other_signer):
    key_path, _ = ensure_key_pair(directory=tmp_path, common_name="idp", key_size=2048)
    foreign_cert = tmp_path / "foreign.crt"
    foreign_cert.write_bytes(other_signer.certificate_pem)
    with pytest.raises(ValueError):
        FileSigner(key_path, foreign_cert)


def test_certificate_b64_is_the_der_certificate(signer):
    der = x509.load_pem_x509_certificate(signer.certificate_pem).public_bytes(serialization.Encoding.DER)
    assert base64.b64decode(signer.certificate_b64(), validate=True) == der
    assert "-" not in signer.certificate_b64() and "\n" not in signer.certificate_b64()


# -- sign_bytes ----------------------------------------------------------------


def test_sign_bytes_is_rsa_pkcs1v15(signer):
    public_key = x509.load_pem_x509_certificate(signer.certificate_pem).public_key()
    signature = signer.sign_bytes(b"payload")
    public_key.verify(signature, b"payload", padding.PKCS1v15(), hashes.SHA256())
    signature = signer.sign_bytes(b"payload", algorithm=RSA_SHA384)
    public_key.verify(signature, b"payload", padding.PKCS1v15(), hashes.SHA384())
    with pytest.raises(Exception):
        public_key.verify(signature, b"payload!", padding.PKCS1v15(), hashes.SHA384())


def test_sign_bytes_refuses_sha1_and_mismatched_algorithms(signer):
    with pytest.raises(ValueError):
        signer.sign_bytes(b"x", algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    with pytest.raises(ValueError):
        signer.sign_bytes(b"x", algorithm=ECDSA_SHA256)


def test_ec_sign_bytes_is_raw_r_s(ec_signer):
    signature = ec_signer.sign_bytes(b"payload", algorithm=ECDSA_SHA256)
    assert len(signature) == 64  # P-256: 32-byte r || 32-byte s (RFC 4051)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key = x509.load_pem_x509_certificate(ec_signer.certificate_pem).public_key()
    public_key.verify(der, b"payload", ec.ECDSA(hashes.SHA256()))


# -- sign_xml ------------------------------------------------------------------


def test_signed_response_has_the_saml_shape_and_verifies(signer):
    signed = signer.sign_xml(saml_response(), reference_id="_r1")
    root = etree.fromstring(signed)
    children = list(root)
    assert [c.tag for c in children[:2]] == [SAML + "Issuer", DS + "Signature"]
    signature = children[1]
    assert signature.find(f"{DS}SignedInfo/{DS}CanonicalizationMethod").get("Algorithm") == (
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    )
    assert signature.find(f"{DS}SignedInfo/{DS}SignatureMethod").get("Algorithm") == RSA_SHA256
    reference = signature.find(f"{DS}SignedInfo/{DS}Reference")
    assert reference.get("URI") == "#_r1"
    assert [t.get("Algorithm") for t in reference.iterfind(f"{DS}Transforms/{DS}Transform")] == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]
    assert reference.find(f"{DS}DigestMethod").get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"
    certificates = signature.findall(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    assert len(certificates) == 1
    assert "".join(certificates[0].text.split()) == signer.certificate_b64()
    assert verify_xml(signed, certificates=[signer.certificate_pem]).get("ID") == "_r1"


def test_assertion_then_response_signatures_verify_with_the_xmlsec1_program(tmp_path, signer):
    once = signer.sign_xml(saml_response(), reference_id="_a1")
    twice = signer.sign_xml(once, reference_id="_r1")
    root = etree.fromstring(twice)
    assertion = root.find(SAML + "Assertion")
    assert [c.tag for c in assertion[:2]] == [SAML + "Issuer", DS + "Signature"]
    assert [c.tag for c in root[:2]] == [SAML + "Issuer", DS + "Signature"]
    assert assertion[1].find(f".//{DS}Reference").get("URI") == "#_a1"
    if XMLSEC1 is None:
        pytest.skip("xmlsec1 program not installed")
    assert _xmlsec1_verify(tmp_path, twice, signer, node=ASSERTION_NODE, node_id="_a1")
    assert _xmlsec1_verify(tmp_path, twice, signer, node=RESPONSE_NODE, node_id="_r1")
    tampered = twice.replace(b">alice<", b">mallory<")
    assert not _xmlsec1_verify(tmp_path, tampered, signer, node=ASSERTION_NODE, node_id="_a1")
    assert not _xmlsec1_verify(tmp_path, tampered, signer, node=RESPONSE_NODE, node_id="_r1")


@needs_xmlsec1
def test_signed_output_verifies_with_xmlsec1_verify_and_only_with_our_certificate(tmp_path, signer, other_signer):
    document = tmp_path / "signed.xml"
    document.write_bytes(signer.sign_xml(saml_response(), reference_id="_r1"))

    def xmlsec1_verify(certificate_pem: bytes) -> subprocess.CompletedProcess:
        cert_file = tmp_path / "cert.pem"
        cert_file.write_bytes(certificate_pem)
        return subprocess.run(
            [XMLSEC1, "--verify", "--enabled-key-data", "raw-x509-cert", "--pubkey-cert-pem", str(cert_file),
             "--id-attr:ID", RESPONSE_NODE, str(document)],
            capture_output=True, timeout=30,
        )

    assert xmlsec1_verify(signer.certificate_pem).returncode == 0
    assert xmlsec1_verify(other_signer.certificate_pem).returncode != 0


@needs_xmlsec1
def test_ec_signed_response_verifies_in_process_and_with_xmlsec1(tmp_path, ec_signer):
    signed = ec_signer.sign_xml(saml_response(), reference_id="_r1")
    method = etree.fromstring(signed).find(f".//{DS}SignatureMethod").get("Algorithm")
    assert method == ECDSA_SHA256
    assert verify_xml(signed, certificates=[ec_signer.certificate_pem]) is not None
    assert _xmlsec1_verify(tmp_path, signed, ec_signer, node=RESPONSE_NODE, node_id="_r1")


def test_sign_xml_accepts_an_element_and_leaves_it_untouched(signer):
    element = etree.fromstring(saml_response())
    before = etree.tostring(element)
    signed = signer.sign_xml(element, reference_id="_a1")
    assert etree.tostring(element) == before
    assert etree.fromstring(signed).find(f"{SAML}Assertion/{DS}Signature") is not None


def test_sign_xml_puts_the_signature_first_without_issuer(signer):
    logout = samlp.LogoutResponse(
        id="_lo1", version="2.0", issue_instant="2024-05-01T10:00:00Z",
        status=samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_SUCCESS)),
    ).to_string()
    signed = signer.sign_xml(logout, reference_id="_lo1")
    root = etree.fromstring(signed)
    assert [c.tag for c in root] == [DS + "Signature", SAMLP + "Status"]
    assert verify_xml(signed, certificates=[signer.certificate_pem]) is not None


def test_sign_xml_requires_exactly_one_element_with_the_id(signer):
    with pytest.raises(ValueError):
        signer.sign_xml(saml_response(), reference_id="_missing")
    with pytest.raises(ValueError):
        signer.sign_xml(saml_response(response_id="_same", assertion_id="_same"), reference_id="_same")


def test_signing_and_verifying_are_thread_safe(signer):
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(15):
                rid = f"_r{worker}_{n}"
                signed = signer.sign_xml(
                    saml_response(response_id=rid, name_id=f"user{worker}-{n}"), reference_id=rid
                )
                # Verification runs concurrently too (shared cached xmlsec.Key).
                assert verify_xml(signed, certificates=[signer.certificate_pem]).get("ID") == rid
                results[rid] = signed
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 90
    for rid, signed in results.items():
        assert verify_xml(signed, certificates=[signer.certificate_pem]).get("ID") == rid


# -- sign_element (in place, on the caller's tree) -------------------------------------


def _signature_values(xml: bytes, element_id: str) -> tuple[str, str, str]:
    root = etree.fromstring(xml)
    target = root if root.get("ID") == element_id else root.find(f".//*[@ID='{element_id}']")
    signature = target.find(DS + "Signature")
    signed_info = etree.tostring(signature.find(DS + "SignedInfo"), method="c14n", exclusive=True).decode()
    return (signature.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue").text,
            "".join(signed_info.split()),  # xmlsec's template puts line breaks between the elements
            "".join(signature.find(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate").text.split()))


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_sign_element_makes_the_signatures_sign_xml_makes(request, which, tmp_path):
    """Same digests, same SignedInfo (but for white space), same certificate as
    xmlsec's, assertion then response, and they verify (verify_xml, xmlsec1)."""
    chosen = request.getfixturevalue("signer" if which == "rsa" else "ec_signer")
    by_xmlsec = chosen.sign_xml(chosen.sign_xml(saml_response(), reference_id="_a1"), reference_id="_r1")
    alone = etree.fromstring(saml_response())
    chosen.sign_element(alone)
    assert verify_xml(etree.tostring(alone), certificates=[chosen.certificate_pem]).get("ID") == "_r1"
    root = etree.fromstring(saml_response())
    chosen.sign_element(root.find(SAML + "Assertion"))
    chosen.sign_element(root)
    in_place = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    assertion = etree.tostring(etree.fromstring(in_place).find(SAML + "Assertion"))
    assert verify_xml(assertion, certificates=[chosen.certificate_pem]).get("ID") == "_a1"
    assert _signature_values(in_place, "_a1") == _signature_values(by_xmlsec, "_a1")
    # the response's digest covers the assertion's signature, whose white space differs
    assert _signature_values(in_place, "_r1")[2] == _signature_values(by_xmlsec, "_r1")[2]
    if XMLSEC1 is not None:
        assert _xmlsec1_verify(tmp_path, in_place, chosen, node=ASSERTION_NODE, node_id="_a1")
        assert _xmlsec1_verify(tmp_path, in_place, chosen, node=RESPONSE_NODE, node_id="_r1")


def test_sign_element_of_the_base_class_goes_through_sign_xml(signer):
    class Wrapped(Signer):
        certificate_pem = signer.certificate_pem
        default_algorithm = signer.default_algorithm
        sign_bytes = signer.sign_bytes
        sign_xml = signer.sign_xml

    root = etree.fromstring(saml_response())
    Wrapped().sign_element(root.find(SAML + "Assertion"))
    xml = etree.tostring(root)
    assert _signature_values(xml, "_a1") == _signature_values(
        signer.sign_xml(saml_response(), reference_id="_a1"), "_a1")

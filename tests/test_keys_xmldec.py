"""keys.xmldec: decryption of an EncryptedAssertion addressed to us (the other
half of keys.xmlenc).  Real keys, real crypto: what keys.xmlenc (libxmlsec)
encrypts, keys.xmldec opens; what a node could send that we refuse (RSA v1.5,
AES-CBC, a tampered ciphertext, another recipient) is refused with one error."""
from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from keys import (AES128_CBC, AES128_GCM, AES256_GCM, DecryptionError, FileSigner, decrypt_element,
                  encrypt_element, generate_key_pair, load_decryption_key, verify_xml)
from keys.xmldec import RSA_OAEP, XENC11_NS

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
XENC = "http://www.w3.org/2001/04/xmlenc#"
DS = "http://www.w3.org/2000/09/xmldsig#"


@pytest.fixture(scope="module")
def recipient():
    key_pem, cert_pem = generate_key_pair(common_name="sesame-eidas", key_size=2048)
    return load_decryption_key(key_pem), cert_pem


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> tuple[bytes, bytes]:
    """A response whose assertion is signed (EC key, as the eIDAS crypto requirements want), and the
    signer's certificate."""
    folder = tmp_path_factory.mktemp("node")
    key_pem, cert_pem = generate_key_pair(common_name="node", key_type="ec")
    (folder / "n.key").write_bytes(key_pem)
    (folder / "n.crt").write_bytes(cert_pem)
    signer = FileSigner(folder / "n.key", folder / "n.crt")
    root = etree.fromstring(
        f'<p:Response xmlns:p="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:s="{SAML}" ID="_r">'
        f'<s:Issuer>node</s:Issuer><s:Assertion ID="_a" Version="2.0"><s:Issuer>node</s:Issuer>'
        f'<s:Subject><s:NameID>DE/BE/123</s:NameID></s:Subject></s:Assertion></p:Response>'.encode())
    signer.sign_element(root.find(f"{{{SAML}}}Assertion"))
    return etree.tostring(root), cert_pem


@pytest.fixture
def signed(node) -> bytes:
    return node[0]


def wrapper(document: bytes) -> etree._Element:
    return etree.fromstring(document).find(f"{{{SAML}}}EncryptedAssertion")


@pytest.mark.parametrize("algorithm", [AES256_GCM, AES128_GCM])
def test_what_xmlenc_encrypts_opens_and_its_signature_still_verifies(recipient, node, algorithm):
    signed, node_certificate = node
    key, cert = recipient
    document = encrypt_element(document=signed, element_id="_a", certificate_pem=cert, data_algorithm=algorithm)
    plaintext = decrypt_element(wrapper(document), key)
    assertion = verify_xml(plaintext, certificates=[node_certificate])  # standalone: namespaces carried along
    assert assertion.findtext(f"{{{SAML}}}Subject/{{{SAML}}}NameID") == "DE/BE/123"


def test_another_recipients_key_does_not_open_it(recipient, signed):
    _, cert = recipient
    other = load_decryption_key(generate_key_pair(common_name="other", key_size=2048)[0])
    document = encrypt_element(document=signed, element_id="_a", certificate_pem=cert)
    with pytest.raises(DecryptionError, match="no EncryptedKey opens"):
        decrypt_element(wrapper(document), other)


def test_a_tampered_ciphertext_does_not_authenticate(recipient, signed):
    key, cert = recipient
    element = wrapper(encrypt_element(document=signed, element_id="_a", certificate_pem=cert))
    value = element.find(f"{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[20] ^= 1  # one bit of the ciphertext
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(DecryptionError, match="does not authenticate"):
        decrypt_element(element, key)


def test_aes_cbc_is_refused(recipient, signed):
    key, cert = recipient
    document = encrypt_element(document=signed, element_id="_a", certificate_pem=cert, data_algorithm=AES128_CBC)
    with pytest.raises(DecryptionError, match="AES-GCM only"):
        decrypt_element(wrapper(document), key)


def _handmade(cert_key: rsa.RSAPublicKey, plaintext: bytes, *, transport: str, oaep: padding.OAEP,
              extra: str = "") -> etree._Element:
    """An EncryptedAssertion made with ``cryptography`` alone: XML Encryption 1.1 rsa-oaep."""
    session = AESGCM.generate_key(bit_length=256)
    iv = os.urandom(12)
    data = base64.b64encode(iv + AESGCM(session).encrypt(iv, plaintext, None)).decode()
    wrapped = base64.b64encode(cert_key.encrypt(session, oaep)).decode()
    return etree.fromstring(f"""
<s:EncryptedAssertion xmlns:s="{SAML}" xmlns:xenc="{XENC}" xmlns:ds="{DS}" xmlns:xenc11="{XENC11_NS}">
 <xenc:EncryptedData Type="{XENC}Element">
  <xenc:EncryptionMethod Algorithm="{AES256_GCM}"/>
  <ds:KeyInfo><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="{transport}">{extra}</xenc:EncryptionMethod>
   <xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>
  <xenc:CipherData><xenc:CipherValue>{data}</xenc:CipherValue></xenc:CipherData>
 </xenc:EncryptedData>
</s:EncryptedAssertion>""".encode())


def test_rsa_oaep_with_sha256_opens(recipient):
    key, _ = recipient
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    extra = (f'<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
             f'<xenc11:MGF Algorithm="{XENC11_NS}mgf1sha256"/>')
    element = _handmade(key.public_key(), b"<a>secret</a>", transport=RSA_OAEP, oaep=oaep, extra=extra)
    assert decrypt_element(element, key) == b"<a>secret</a>"
    # The same, declaring SHA-1 while SHA-256 was used: does not open.
    element = _handmade(key.public_key(), b"<a>secret</a>", transport=RSA_OAEP, oaep=oaep)
    with pytest.raises(DecryptionError):
        decrypt_element(element, key)


def test_rsa_pkcs1_v15_key_transport_is_refused(recipient):
    key, _ = recipient
    element = _handmade(key.public_key(), b"<a/>", transport=XENC + "rsa-1_5", oaep=padding.OAEP(
        mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    with pytest.raises(DecryptionError, match="no EncryptedKey opens"):
        decrypt_element(element, key)


def test_short_or_non_rsa_keys_are_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="shorter"):
        load_decryption_key(small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    with pytest.raises(ValueError, match="RSA"):
        load_decryption_key(generate_key_pair(common_name="ec", key_type="ec")[0])

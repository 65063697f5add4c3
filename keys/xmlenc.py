"""XML Encryption of one element of Sésame's own documents, for one recipient.

SAML core §2.3.4 (``saml:EncryptedAssertion``) and §6 (use of XML
Encryption), W3C XML Encryption Syntax and Processing 1.1 (§3 syntax, §5
algorithms).  In-process with python-xmlsec: no process is forked per message.

The element carrying the given ``ID`` (a signed ``saml:Assertion``) is
replaced, where it stood, by ``<wrapper><xenc:EncryptedData/></wrapper>``::

    <saml:EncryptedAssertion>
      <xenc:EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element">
        <xenc:EncryptionMethod Algorithm="…xmlenc11#aes256-gcm"/>
        <ds:KeyInfo>
          <xenc:EncryptedKey Recipient="…">
            <xenc:EncryptionMethod Algorithm="…xmlenc#rsa-oaep-mgf1p"/>
            <xenc:CipherData><xenc:CipherValue>…</xenc:CipherValue></xenc:CipherData>
          </xenc:EncryptedKey>
        </ds:KeyInfo>
        <xenc:CipherData><xenc:CipherValue>…</xenc:CipherValue></xenc:CipherData>
      </xenc:EncryptedData>
    </saml:EncryptedAssertion>

A fresh AES session key encrypts the element (XML Encryption §5.2); the
recipient's RSA key, from its certificate, encrypts the session key
(§5.5.2, RSA-OAEP with MGF1 and SHA-1: rsa-oaep-mgf1p, the key transport
SAML service providers commonly implement).  SAML core §6.1: sign first, then encrypt, so a signature inside
the element survives decryption unchanged.

The plaintext is the element serialized *with* every namespace declaration in
scope (lxml), not libxmlsec's bare node dump: a recipient that decrypts the
``EncryptedData`` outside this document (python3-saml copies it into a new
one, pysaml2 re-serializes the response with its own prefixes) must still be
able to parse it.
"""

from __future__ import annotations

import functools
from typing import Final

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from keys.algorithms import SAML_NS
from keys.errors import EncryptionError

XENC_NS: Final = "http://www.w3.org/2001/04/xmlenc#"
ENCRYPTED_ASSERTION: Final = "{%s}EncryptedAssertion" % SAML_NS

# Block encryption (XML Encryption 1.1 §5.2).  GCM is the default: CBC is
# malleable and open to padding-oracle attacks on the recipient (Jager &
# Somorovsky, "How to break XML Encryption", 2011); it is offered only for
# service providers that cannot decrypt GCM.
AES128_GCM: Final = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
AES256_GCM: Final = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
AES128_CBC: Final = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
AES256_CBC: Final = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
# Key transport (XML Encryption 1.1 §5.5.2).  RSA v1.5 is deliberately absent.
RSA_OAEP_MGF1P: Final = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"

_DATA_ALGORITHMS: Final = {
    AES128_GCM: (xmlsec.Transform.AES128_GCM, 128),
    AES256_GCM: (xmlsec.Transform.AES256_GCM, 256),
    AES128_CBC: (xmlsec.Transform.AES128, 128),
    AES256_CBC: (xmlsec.Transform.AES256, 256),
}
_KEY_TRANSPORTS: Final = {RSA_OAEP_MGF1P: xmlsec.Transform.RSA_OAEP}
DATA_ALGORITHMS: Final = frozenset(_DATA_ALGORITHMS)
KEY_TRANSPORTS: Final = frozenset(_KEY_TRANSPORTS)
MIN_RSA_BITS: Final = 2048

# Our own documents (produced by Sésame): no DTD, no entities, no network.
_OWN_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False)




def check_recipient(certificate_pem: bytes) -> None:
    """Raise ``EncryptionError`` unless the PEM certificate holds an RSA key
    of at least ``MIN_RSA_BITS`` that xmlsec can load.

    Validity dates are not evaluated (metadata trust model, SAML V2.0
    Metadata Interoperability Profile §2.4.1).
    """
    _recipient(bytes(certificate_pem))


def encrypt_element(
    *,
    document: bytes,
    element_id: str,
    certificate_pem: bytes,
    wrapper_tag: str = ENCRYPTED_ASSERTION,
    data_algorithm: str = AES256_GCM,
    key_transport: str = RSA_OAEP_MGF1P,
    recipient: str | None = None,
) -> bytes:
    """Encrypt the element whose ``ID`` is ``element_id``; return the document.

    The element is replaced in place by ``wrapper_tag`` holding one
    ``xenc:EncryptedData`` (``Type`` Element), whose ``ds:KeyInfo`` carries
    the ``xenc:EncryptedKey`` for ``certificate_pem`` (PEM, RSA).
    ``recipient``, when given, is written as the ``EncryptedKey``'s
    ``Recipient`` attribute (SAML core §6.2: the SP's entity ID).  Returns
    UTF-8 bytes with an XML declaration; ``document`` itself is not modified.

    Raises ``EncryptionError``: algorithm not offered, certificate unusable,
    no element (or more than one) with that ``ID``, the root element, or a
    failure inside xmlsec.
    """
    method, bits = _choice(_DATA_ALGORITHMS, data_algorithm, what="data encryption algorithm")
    transport = _choice(_KEY_TRANSPORTS, key_transport, what="key transport algorithm")
    manager = _recipient(bytes(certificate_pem))
    root = _own_document(document)
    target = _element_with_id(root, element_id)
    plaintext = etree.tostring(target, encoding="UTF-8", xml_declaration=False)
    template = _template(root, method=method, transport=transport, recipient=recipient)
    try:
        ctx = xmlsec.EncryptionContext(manager)
        ctx.key = xmlsec.Key.generate(xmlsec.KeyData.AES, bits, xmlsec.KeyDataType.SESSION)
        encrypted = ctx.encrypt_binary(template, plaintext)
    except xmlsec.Error as exc:
        raise EncryptionError(f"xmlsec could not encrypt: {exc}") from None
    wrapper = target.getparent().makeelement(wrapper_tag)
    wrapper.append(encrypted)
    wrapper.tail = target.tail
    target.getparent().replace(target, wrapper)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _choice(table: dict, uri: str, *, what: str):
    try:
        return table[uri]
    except KeyError:
        raise EncryptionError(f"{what} {uri!r} not offered; offered: {', '.join(sorted(table))}") from None


@functools.lru_cache(maxsize=64)
def _recipient(certificate_pem: bytes) -> xmlsec.KeysManager:
    """A keys manager holding only the recipient's public key, checked once.

    Cached per certificate: a portal's certificate repeats on every response,
    and creating an ``xmlsec.KeysManager`` costs milliseconds (libxmlsec loads
    OpenSSL's default trust store into it), an encryption a fraction of that.
    Shared between threads: encryption only reads the manager (the simple
    keys store is searched and the matching key duplicated into the context).
    """
    try:
        public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    except ValueError:
        raise EncryptionError("recipient certificate does not parse") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise EncryptionError("recipient certificate does not hold an RSA key (RSA-OAEP key transport)")
    if public_key.key_size < MIN_RSA_BITS:
        raise EncryptionError(f"recipient RSA key shorter than {MIN_RSA_BITS} bits")
    try:
        manager = xmlsec.KeysManager()
        manager.add_key(xmlsec.Key.from_memory(certificate_pem, xmlsec.KeyFormat.CERT_PEM, None))
    except xmlsec.Error:
        raise EncryptionError("xmlsec cannot load the recipient certificate") from None
    return manager


def _own_document(document: bytes) -> etree._Element:
    """A private parse of a document Sésame produced."""
    try:
        return etree.fromstring(bytes(document), parser=etree.XMLParser(**_OWN_PARSER_OPTIONS))
    except (etree.XMLSyntaxError, TypeError, ValueError) as exc:
        raise EncryptionError(f"document does not parse: {exc}") from None


def _element_with_id(root: etree._Element, element_id: str) -> etree._Element:
    matches = root.xpath("//*[@ID=$value]", value=element_id)
    if len(matches) != 1:
        raise EncryptionError(f"expected exactly one element with ID {element_id!r}, found {len(matches)}")
    if matches[0] is root:
        raise EncryptionError("the root element cannot be replaced by its encryption")
    return matches[0]


def _template(
    root: etree._Element, *, method: xmlsec.Transform, transport: xmlsec.Transform, recipient: str | None
) -> etree._Element:
    """``xenc:EncryptedData`` skeleton with the ``EncryptedKey`` in its ``KeyInfo``."""
    data = xmlsec.template.encrypted_data_create(
        root, method, type=xmlsec.EncryptionType.ELEMENT, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(data, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, transport, recipient=recipient)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    return data

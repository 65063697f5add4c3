"""The identity provider's signing keys (XML-DSig core, SAML core §5).

``Signer`` is the narrow interface the rest of Sésame signs through, so that
an HSM backend (PKCS#11) can replace ``FileSigner`` later.  Signatures made
by ``sign_xml`` follow SAML core §5.4: enveloped signature over the element
carrying the ``ID``, exclusive c14n, RSA-SHA256 (or ECDSA-SHA256 for an EC
key), SHA-256 digest, ``ds:Signature`` right after the element's own
``saml:Issuer`` (schema order), ``KeyInfo`` with the certificate.
"""

from __future__ import annotations

import abc
import base64
import copy
import hashlib
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from keys.algorithms import (
    ECDSA_SHA256,
    ECDSA_SHA384,
    ECDSA_SHA512,
    ECDSA_SIGNATURES,
    RSA_SHA256,
    RSA_SHA384,
    RSA_SHA512,
    RSA_SIGNATURES,
    SAML_ISSUER,
    DSIG_NS,
    ENVELOPED,
    EXC_C14N,
    SHA256,
    hash_for,
)

_XMLSEC_METHODS = {
    RSA_SHA256: xmlsec.Transform.RSA_SHA256,
    RSA_SHA384: xmlsec.Transform.RSA_SHA384,
    RSA_SHA512: xmlsec.Transform.RSA_SHA512,
    ECDSA_SHA256: xmlsec.Transform.ECDSA_SHA256,
    ECDSA_SHA384: xmlsec.Transform.ECDSA_SHA384,
    ECDSA_SHA512: xmlsec.Transform.ECDSA_SHA512,
}

_DS = "{%s}" % DSIG_NS

# Parser for our own documents (already trusted, produced by Sésame): no size
# limit, but still no DTD, no entities, no network.
_OWN_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False)


class Signer(abc.ABC):
    """A private key and its certificate, able to sign bytes and XML.

    Implementations must be safe to share between threads.
    """

    @property
    @abc.abstractmethod
    def certificate_pem(self) -> bytes:
        """The X.509 certificate, PEM."""

    @property
    @abc.abstractmethod
    def default_algorithm(self) -> str:
        """Signature method URI used when the caller does not choose one."""

    def certificate_b64(self) -> str:
        """Base64 DER certificate without PEM armour (metadata ``ds:X509Certificate``)."""
        der = x509.load_pem_x509_certificate(self.certificate_pem).public_bytes(
            serialization.Encoding.DER
        )
        return base64.b64encode(der).decode("ascii")

    @abc.abstractmethod
    def sign_bytes(self, data: bytes, *, algorithm: str | None = None) -> bytes:
        """Raw signature of ``data`` (``algorithm`` defaults to ``default_algorithm``).

        RSA: PKCS#1 v1.5.  ECDSA: ``r || s`` as XML-DSig requires (RFC 4051
        §3.4.1), each half padded to the curve size.  ``ValueError`` if the
        algorithm is not accepted or does not fit the key.
        """

    @abc.abstractmethod
    def sign_xml(
        self,
        xml: bytes | etree._Element,
        *,
        reference_id: str,
        insert_after_tag: str | None = SAML_ISSUER,
        algorithm: str | None = None,
    ) -> bytes:
        """Sign the element whose ``ID`` is ``reference_id``; return the document.

        The element may be the root or nested (an assertion inside a
        response); call twice to sign the assertion, then the response.  An
        lxml element is treated as a document root and is not modified.
        ``ds:Signature`` goes right after the element's direct child
        ``insert_after_tag`` or, when absent (or ``None``), first.  Returns
        UTF-8 bytes with an XML declaration.  ``ValueError`` if no element, or
        more than one, has that ``ID``.
        """

    def sign_element(
        self,
        target: etree._Element,
        *,
        insert_after_tag: str | None = SAML_ISSUER,
        algorithm: str | None = None,
    ) -> None:
        """Sign ``target`` (an element with an ``ID``, root or nested) **in place**.

        The same signature as ``sign_xml`` makes, on a tree the caller built
        and will serialise once (no copy, no parse, no serialisation here).
        The caller vouches that no other element of the document carries the
        same ``ID`` (its own document, its own random IDs).  This default goes
        through ``sign_xml``; ``FileSigner`` signs the tree directly.
        """
        reference_id = target.get("ID")
        root = target.getroottree().getroot()
        signed = etree.fromstring(
            self.sign_xml(root, reference_id=reference_id, insert_after_tag=insert_after_tag,
                          algorithm=algorithm),
            parser=etree.XMLParser(**_OWN_PARSER_OPTIONS))
        signed_target = _element_with_id(signed, reference_id)
        signature = next(child for child in signed_target if child.tag == "{%s}Signature" % DSIG_NS)
        _insert_signature(target, signature, insert_after_tag=insert_after_tag)


class FileSigner(Signer):
    """A ``Signer`` over a PEM private key file and a PEM certificate file.

    The key is loaded once.  Thread-safe: every call builds its own
    ``xmlsec.SignatureContext`` (which duplicates the shared ``xmlsec.Key``)
    and ``cryptography`` key objects are immutable.
    """

    def __init__(self, key_path: Path | str, cert_path: Path | str) -> None:
        key_pem = Path(key_path).read_bytes()
        cert_pem = Path(cert_path).read_bytes()
        self._certificate = x509.load_pem_x509_certificate(cert_pem)
        private_key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ValueError("only RSA and EC private keys are supported")
        if _spki(private_key.public_key()) != _spki(self._certificate.public_key()):
            raise ValueError("the certificate does not match the private key")
        self._private_key = private_key
        self._certificate_pem = self._certificate.public_bytes(serialization.Encoding.PEM)
        self._xmlsec_key = xmlsec.Key.from_memory(key_pem, xmlsec.KeyFormat.PEM, None)
        self._xmlsec_key.load_cert_from_memory(self._certificate_pem, xmlsec.KeyFormat.CERT_PEM)
        self._is_rsa = isinstance(private_key, rsa.RSAPrivateKey)
        self._certificate_b64 = self.certificate_b64()

    @property
    def certificate_pem(self) -> bytes:
        return self._certificate_pem

    @property
    def default_algorithm(self) -> str:
        return RSA_SHA256 if self._is_rsa else ECDSA_SHA256

    def _check_algorithm(self, algorithm: str) -> None:
        allowed = RSA_SIGNATURES if self._is_rsa else ECDSA_SIGNATURES
        if algorithm not in allowed:
            raise ValueError(f"algorithm {algorithm!r} does not fit this key")

    def sign_bytes(self, data: bytes, *, algorithm: str | None = None) -> bytes:
        algorithm = algorithm or self.default_algorithm
        self._check_algorithm(algorithm)
        digest = hash_for(algorithm)
        if isinstance(self._private_key, rsa.RSAPrivateKey):
            return self._private_key.sign(data, padding.PKCS1v15(), digest)
        der = self._private_key.sign(data, ec.ECDSA(digest))
        r, s = decode_dss_signature(der)
        size = (self._private_key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    def sign_xml(
        self,
        xml: bytes | etree._Element,
        *,
        reference_id: str,
        insert_after_tag: str | None = SAML_ISSUER,
        algorithm: str | None = None,
    ) -> bytes:
        algorithm = algorithm or self.default_algorithm
        self._check_algorithm(algorithm)
        root = _own_document(xml)
        target = _element_with_id(root, reference_id)
        signature = _signature_template(
            target, reference_id=reference_id, method=_XMLSEC_METHODS[algorithm]
        )
        _insert_signature(target, signature, insert_after_tag=insert_after_tag)
        ctx = xmlsec.SignatureContext()
        ctx.key = self._xmlsec_key
        ctx.register_id(target, "ID")
        ctx.sign(signature)
        return etree.tostring(root, encoding="UTF-8", xml_declaration=True)

    def sign_element(
        self,
        target: etree._Element,
        *,
        insert_after_tag: str | None = SAML_ISSUER,
        algorithm: str | None = None,
    ) -> None:
        """The signature ``sign_xml`` makes (same template, same bytes signed:
        ``tests/test_keys_signer.py`` compares them), computed here without
        xmlsec: the reference's digest over the exclusive c14n of ``target``
        (taken before the signature goes in, which is what the enveloped
        transform undoes), then ``SignedInfo``'s exclusive c14n signed with the
        ``cryptography`` key, whose precomputed RSA values are reused: xmlsec
        duplicates the key (and its certificate) for every signature and costs
        about 0.5 ms more than the RSA operation itself (bench/cpu)."""
        algorithm = algorithm or self.default_algorithm
        self._check_algorithm(algorithm)
        reference_id = target.get("ID")
        if not reference_id:
            raise ValueError("the element to sign has no ID")
        digest = hashlib.sha256(etree.tostring(target, method="c14n", exclusive=True, with_comments=False))
        signature = etree.Element(_DS + "Signature", nsmap={"ds": DSIG_NS})
        signed_info = etree.SubElement(signature, _DS + "SignedInfo")
        etree.SubElement(signed_info, _DS + "CanonicalizationMethod", Algorithm=EXC_C14N)
        etree.SubElement(signed_info, _DS + "SignatureMethod", Algorithm=algorithm)
        reference = etree.SubElement(signed_info, _DS + "Reference", URI="#" + reference_id)
        transforms = etree.SubElement(reference, _DS + "Transforms")
        etree.SubElement(transforms, _DS + "Transform", Algorithm=ENVELOPED)
        etree.SubElement(transforms, _DS + "Transform", Algorithm=EXC_C14N)
        etree.SubElement(reference, _DS + "DigestMethod", Algorithm=SHA256)
        etree.SubElement(reference, _DS + "DigestValue").text = base64.b64encode(digest.digest()).decode("ascii")
        value = self.sign_bytes(etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False),
                                algorithm=algorithm)
        etree.SubElement(signature, _DS + "SignatureValue").text = base64.b64encode(value).decode("ascii")
        x509_data = etree.SubElement(etree.SubElement(signature, _DS + "KeyInfo"), _DS + "X509Data")
        etree.SubElement(x509_data, _DS + "X509Certificate").text = self._certificate_b64
        _insert_signature(target, signature, insert_after_tag=insert_after_tag)


def _spki(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _own_document(xml: bytes | etree._Element) -> etree._Element:
    """A private copy of the document to sign (the caller's is untouched)."""
    if isinstance(xml, etree._Element):
        return copy.deepcopy(xml)
    return etree.fromstring(xml, parser=etree.XMLParser(**_OWN_PARSER_OPTIONS))


def _element_with_id(root: etree._Element, reference_id: str) -> etree._Element:
    matches = root.xpath("//*[@ID=$value]", value=reference_id)
    if len(matches) != 1:
        raise ValueError(f"expected exactly one element with ID {reference_id!r}, found {len(matches)}")
    return matches[0]


def _signature_template(
    target: etree._Element, *, reference_id: str, method: xmlsec.Transform
) -> etree._Element:
    """``ds:Signature`` skeleton: exc-c14n, enveloped, SHA-256, X509Data."""
    signature = xmlsec.template.create(target, xmlsec.Transform.EXCL_C14N, method, ns="ds")
    reference = xmlsec.template.add_reference(
        signature, xmlsec.Transform.SHA256, uri="#" + reference_id
    )
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    x509_data = xmlsec.template.add_x509_data(key_info)
    xmlsec.template.x509_data_add_certificate(x509_data)
    return signature


def _insert_signature(
    target: etree._Element, signature: etree._Element, *, insert_after_tag: str | None
) -> None:
    """Place the signature where the SAML schemas expect it."""
    anchor = None
    if insert_after_tag is not None:
        anchor = next((child for child in target if child.tag == insert_after_tag), None)
    if anchor is not None:
        anchor.addnext(signature)
    else:
        target.insert(0, signature)

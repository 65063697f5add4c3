"""Sésame's service-provider metadata for the eIDAS node, apart from the
identity provider's metadata (another role, other keys, another audience).

SAML metadata §2.4.4 (``SPSSODescriptor``) with what the eIDAS Message Format
asks of a connector-side SP (§2): ``eidas:SPType`` in the entity's
``Extensions``, requests signed, assertions wanted signed, our encryption
certificate with the algorithms we decrypt (AES-GCM, RSA-OAEP), the
HTTP-POST assertion consumer service, and a ``validUntil``.  Signed with
Sésame's signing key (``keys.Signer``), enveloped, first child of the root.
"""
from __future__ import annotations

import base64
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from adapters.eidas.profile import EIDAS_NS, MD_NS, POST_BINDING, SAMLP_NS, UNSPECIFIED, saml_instant
from keys.algorithms import DSIG_NS
from keys.xmldec import RSA_OAEP
from keys.xmlenc import AES128_GCM, AES256_GCM, RSA_OAEP_MGF1P

_M, _DS = "{%s}" % MD_NS, "{%s}" % DSIG_NS
VALIDITY_SECONDS = 7 * 24 * 3600   # a node refreshes well before; an old copy stops being trusted


def sp_metadata(*, adapter, signer, return_url: str, now: float) -> bytes:
    """The signed metadata document (UTF-8 bytes) of the key ``adapter``."""
    root = etree.Element(_M + "EntityDescriptor", nsmap={"md": MD_NS, "ds": DSIG_NS, "eidas": EIDAS_NS})
    root.set("ID", "_" + secrets.token_hex(16))
    root.set("entityID", adapter.sp_entity_id(return_url))
    root.set("validUntil", saml_instant(now + VALIDITY_SECONDS))
    extensions = etree.SubElement(root, _M + "Extensions")
    etree.SubElement(extensions, "{%s}SPType" % EIDAS_NS).text = adapter.settings.sp_type
    sp = etree.SubElement(root, _M + "SPSSODescriptor", protocolSupportEnumeration=SAMLP_NS,
                          AuthnRequestsSigned="true", WantAssertionsSigned="true")
    for use, pem in (("signing", signer.certificate_pem), ("encryption", adapter.encryption_certificate)):
        descriptor = etree.SubElement(sp, _M + "KeyDescriptor", use=use)
        data = etree.SubElement(etree.SubElement(descriptor, _DS + "KeyInfo"), _DS + "X509Data")
        etree.SubElement(data, _DS + "X509Certificate").text = _b64_der(pem)
        if use == "encryption":
            for algorithm in (AES256_GCM, AES128_GCM, RSA_OAEP, RSA_OAEP_MGF1P):
                etree.SubElement(descriptor, _M + "EncryptionMethod", Algorithm=algorithm)
    etree.SubElement(sp, _M + "NameIDFormat").text = UNSPECIFIED
    etree.SubElement(sp, _M + "AssertionConsumerService", Binding=POST_BINDING, Location=return_url,
                     index="0", isDefault="true")
    signer.sign_element(root, insert_after_tag=None)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _b64_der(pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode("ascii")

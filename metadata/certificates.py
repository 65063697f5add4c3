"""Certificates published in a role descriptor's ``KeyDescriptor`` elements.

SAML metadata 2.0 §2.4.1.1: a ``KeyDescriptor`` with ``use="signing"`` or
``use="encryption"`` holds a key for that use only; without ``use`` the key
serves both.  Sésame reads ``ds:KeyInfo/ds:X509Data/ds:X509Certificate`` and
refuses, with the KeyDescriptor's 1-based position in the detail:
certificates that are not X.509, that have expired, RSA keys under 2048 bits,
elliptic-curve keys under 256 bits, and DSA keys.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from lxml import etree

from metadata.errors import MetadataError

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_X509_PATH = f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


@dataclass(frozen=True)
class DescriptorKeys:
    """The certificates of one role descriptor, as PEM, in document order, without duplicates."""

    signing: tuple[bytes, ...]
    encryption: tuple[bytes, ...]
    earliest_not_after: float | None  # seconds since the epoch; None: no certificate


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_certificate(b64: str, *, label: str, now: float | None) -> x509.Certificate:
    """Decode one ``X509Certificate`` element's base64 content and check it.

    ``label`` names the certificate in error details ("certificate in
    KeyDescriptor #2").  ``now`` None skips the expiry check (metadata already
    accepted at registration; see ``PortalMetadata.time_problem``).
    """
    try:
        der = base64.b64decode("".join(b64.split()), validate=True)
        cert = x509.load_der_x509_certificate(der)
        cert.public_key()  # parses the key: an unsupported algorithm fails here
    except (binascii.Error, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise MetadataError(f"{label} is not valid X.509: {exc or type(exc).__name__}") from None
    _check_key(cert, label=label)
    if now is not None and cert.not_valid_after_utc.timestamp() <= now:
        raise MetadataError(
            f"{label} ({cert.subject.rfc4514_string()}) expired on {_iso(cert.not_valid_after_utc)}"
        )
    return cert


def _check_key(cert: x509.Certificate, *, label: str) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise MetadataError(
            f"{label} has a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
        )
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        raise MetadataError(
            f"{label} has a {key.curve.key_size}-bit elliptic-curve key; at least {MIN_EC_BITS} bits are required"
        )
    if isinstance(key, dsa.DSAPublicKey):
        raise MetadataError(f"{label} has a DSA key, which is not accepted")


def read_key_descriptors(descriptor: etree._Element, *, now: float | None) -> DescriptorKeys:
    """Collect and check the certificates of ``descriptor``'s ``md:KeyDescriptor`` children."""
    signing: list[bytes] = []
    encryption: list[bytes] = []
    not_after: list[float] = []
    for number, kd in enumerate(descriptor.findall(f"{{{MD_NS}}}KeyDescriptor"), start=1):
        use = (kd.get("use") or "").strip()
        for position, el in enumerate(kd.iterfind(_X509_PATH)):
            label = f"certificate in KeyDescriptor #{number}"
            if position:
                label += f" (X509Certificate #{position + 1})"
            cert = load_certificate(el.text or "", label=label, now=now)
            pem = cert.public_bytes(serialization.Encoding.PEM)
            not_after.append(cert.not_valid_after_utc.timestamp())
            if use in ("", "signing") and pem not in signing:
                signing.append(pem)
            if use in ("", "encryption") and pem not in encryption:
                encryption.append(pem)
    return DescriptorKeys(tuple(signing), tuple(encryption), min(not_after) if not_after else None)

"""The citizen's authentication certificate: chain, dates, key usage, identity.

Pure functions over ``cryptography`` objects (no I/O but reading the trust
anchor files at start).  The chain is built by hand rather than with
``cryptography.x509.verification``: that verifier is made for TLS (it wants a
subject alternative name and the TLS extended key usages), and a Belgian
authentication certificate has neither.  The path here is short and fixed
(citizen → *Citizen CA* → *Belgium Root CA*), so each link is checked
explicitly: issuer name, signature (``verify_directly_issued_by``), CA basic
constraints and ``keyCertSign``, validity of every certificate, and an anchor
that is one of the configured roots, byte for byte.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from adapters.oidc.nrn import check_nrn, normalize_nrn

_DER = Encoding.DER
MAX_DEPTH = 4  # citizen, Citizen CA, (a cross-signed root), Belgium Root CA


class CertificateRefused(Exception):
    """The certificate cannot be used; ``code`` says why (an error code of the key)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail or code


@dataclass(frozen=True)
class Holder:
    """Who a Belgian authentication certificate names."""

    nrn: str
    surname: str
    given_name: str
    common_name: str


def load_certificates(paths: tuple[str, ...] | list[str]) -> list[x509.Certificate]:
    """Every certificate of the PEM (one or more) or DER files ``paths``."""
    found: list[x509.Certificate] = []
    for name in paths:
        raw = Path(name).expanduser().read_bytes()
        if b"-----BEGIN" in raw:
            found.extend(x509.load_pem_x509_certificates(raw))
        else:
            found.append(x509.load_der_x509_certificate(raw))
    return found


def _valid_now(cert: x509.Certificate, now: dt.datetime, skew: dt.timedelta, *, leaf: bool) -> None:
    if now + skew < cert.not_valid_before_utc:
        raise CertificateRefused("eid_cert_not_yet_valid" if leaf else "eid_cert_untrusted",
                                 f"{cert.subject.rfc4514_string()[:120]} not valid before {cert.not_valid_before_utc}")
    if now - skew > cert.not_valid_after_utc:
        raise CertificateRefused("eid_cert_expired" if leaf else "eid_cert_untrusted",
                                 f"{cert.subject.rfc4514_string()[:120]} expired {cert.not_valid_after_utc}")


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    usage = _extension(cert, x509.KeyUsage)
    return bool(constraints and constraints.ca and (usage is None or usage.key_cert_sign))


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:  # InvalidSignature, or a key type that cannot have signed it: not this issuer
        return False


def check_leaf(cert: x509.Certificate) -> None:
    """An authentication certificate: digitalSignature allowed, not a CA."""
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise CertificateRefused("eid_cert_untrusted", "key usage does not allow digitalSignature")
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise CertificateRefused("eid_cert_untrusted", "a CA certificate is not a citizen's")


def build_chain(cert: x509.Certificate, *, intermediates: list[x509.Certificate], roots: list[x509.Certificate],
                now: dt.datetime, skew: dt.timedelta = dt.timedelta(seconds=60)) -> list[x509.Certificate]:
    """``[cert, issuer, ..., root]`` up to a configured root, every link checked;
    else ``CertificateRefused`` (``eid_cert_expired``, ``eid_cert_not_yet_valid``
    for the citizen's own dates, ``eid_cert_untrusted`` for the rest)."""
    check_leaf(cert)
    _valid_now(cert, now, skew, leaf=True)
    anchors = {r.public_bytes(_DER) for r in roots}
    chain = [cert]
    while len(chain) <= MAX_DEPTH:
        current = chain[-1]
        if current.public_bytes(_DER) in anchors:
            if len(chain) == 1:  # a citizen's certificate configured as a root is no chain
                raise CertificateRefused("eid_cert_untrusted", "the certificate is itself a trust anchor")
            return chain
        issuer = next((c for c in (*intermediates, *roots) if c not in chain and _is_ca(c)
                       and _issued_by(current, c)), None)
        if issuer is None:
            raise CertificateRefused("eid_cert_untrusted",
                                     f"no configured issuer for {current.issuer.rfc4514_string()[:120]}")
        _valid_now(issuer, now, skew, leaf=False)
        chain.append(issuer)
    raise CertificateRefused("eid_cert_untrusted", "chain too long")


def _attribute(name: x509.Name, oid) -> str:
    values = [a.value for a in name.get_attributes_for_oid(oid)]
    return str(values[0]).strip() if values else ""


def holder_of(cert: x509.Certificate) -> Holder:
    """The national register number (subject ``serialNumber``), surname (``SN``)
    and given names (``GN``) of a Belgian authentication certificate."""
    subject = cert.subject
    nrn = normalize_nrn(_attribute(subject, NameOID.SERIAL_NUMBER))
    if not check_nrn(nrn):
        raise CertificateRefused("eid_no_identity", "subject serialNumber is not a national register number")
    return Holder(nrn=nrn, surname=_attribute(subject, NameOID.SURNAME),
                  given_name=_attribute(subject, NameOID.GIVEN_NAME),
                  common_name=_attribute(subject, NameOID.COMMON_NAME))


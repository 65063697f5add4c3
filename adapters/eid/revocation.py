"""Is the citizen's certificate revoked?  OCSP (RFC 6960), CRL (RFC 5280) as fallback.

The only network this key uses goes through ``Fetcher`` (a narrow port: one
POST of bytes, one GET of bytes, each with a timeout and a size cap), so the
key imports nothing of the application and tests can point it anywhere.

OCSP: a request for the certificate (CertID with SHA-1, which every responder
answers, and a random nonce), sent to the responder of the certificate's
Authority Information Access unless one is configured.  The answer counts only
when its signature checks, by the issuing CA itself or by a responder
certificate the CA issued for ``OCSPSigning``; when it is about this very
certificate; when it is fresh (``thisUpdate`` within ``max_age``, ``nextUpdate``
not past); and when it echoes our nonce if it carries one (Belgium's
responders, like most large ones, answer from pre-signed responses without
nonce, so an absent nonce is accepted and freshness does the work).
"""
from __future__ import annotations

import datetime as dt
import os
import urllib.error
import urllib.request
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

MAX_BODY = 10_000_000  # bytes: an OCSP answer is a few kB; a country's CRL a few MB

GOOD, REVOKED, UNKNOWN = "good", "revoked", "unknown"


class RevocationUnavailable(Exception):
    """No usable answer: responder down, slow, or answering something unusable."""


class Fetcher(Protocol):
    def post(self, url: str, body: bytes, content_type: str) -> bytes: ...
    def get(self, url: str) -> bytes: ...


class UrllibFetcher:
    """HTTP through the standard library, ``timeout`` seconds per call, no other scheme."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def post(self, url, body, content_type):
        return self._send(urllib.request.Request(url, data=body, method="POST",
                                                 headers={"Content-Type": content_type}))

    def get(self, url):
        return self._send(urllib.request.Request(url, method="GET"))

    def _send(self, request) -> bytes:
        if not request.full_url.startswith(("http://", "https://")):
            raise RevocationUnavailable(f"not an HTTP URL: {request.full_url[:80]}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (scheme checked)
                body = answer.read(MAX_BODY + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RevocationUnavailable(f"{request.full_url[:80]}: {exc}") from None
        if len(body) > MAX_BODY:
            raise RevocationUnavailable(f"{request.full_url[:80]}: answer too large")
        return body


def _extension(cert, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    aia = _extension(cert, x509.AuthorityInformationAccess) or []
    return [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def crl_urls(cert: x509.Certificate) -> list[str]:
    points = _extension(cert, x509.CRLDistributionPoints) or []
    return [name.value for point in points for name in (point.full_name or ())
            if isinstance(name, x509.UniformResourceIdentifier)]


def _verify(public_key, signature: bytes, data: bytes, algorithm) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
        return True
    except Exception:  # InvalidSignature, or an algorithm the key cannot use
        return False


def _authorised_signer(response, issuer: x509.Certificate, now: dt.datetime) -> bool:
    """The issuing CA signed, or a responder certificate it issued for OCSPSigning (RFC 6960 §4.2.2.2)."""
    algorithm = response.signature_hash_algorithm
    if _verify(issuer.public_key(), response.signature, response.tbs_response_bytes, algorithm):
        return True
    for delegate in response.certificates:
        usage = _extension(delegate, x509.ExtendedKeyUsage)
        if usage is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            continue
        if not delegate.not_valid_before_utc <= now <= delegate.not_valid_after_utc:
            continue
        try:
            delegate.verify_directly_issued_by(issuer)
        except Exception:  # not issued by this CA
            continue
        if _verify(delegate.public_key(), response.signature, response.tbs_response_bytes, algorithm):
            return True
    return False


def ocsp_status(cert: x509.Certificate, issuer: x509.Certificate, url: str, fetcher: Fetcher, *,
                now: dt.datetime, max_age: dt.timedelta, skew: dt.timedelta) -> str:
    """``good``, ``revoked`` or ``unknown`` from the responder at ``url``;
    ``RevocationUnavailable`` when there is no answer we can trust."""
    nonce = os.urandom(16)
    request = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
               .add_extension(x509.OCSPNonce(nonce), critical=False).build())
    body = fetcher.post(url, request.public_bytes(serialization.Encoding.DER), "application/ocsp-request")
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError:
        raise RevocationUnavailable("the OCSP answer is not DER") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationUnavailable(f"OCSP responder said {response.response_status.name}")
    if not _authorised_signer(response, issuer, now):
        raise RevocationUnavailable("OCSP answer not signed by the CA or its responder")
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed is not None and echoed != nonce:
        raise RevocationUnavailable("OCSP answer to another request (nonce)")
    ours = request.serial_number, request.issuer_key_hash, request.issuer_name_hash
    for single in response.responses:
        if (single.serial_number, single.issuer_key_hash, single.issuer_name_hash) != ours:
            continue
        if single.this_update_utc > now + skew or single.this_update_utc < now - max_age:
            raise RevocationUnavailable(f"OCSP answer not fresh (thisUpdate {single.this_update_utc})")
        if single.next_update_utc is not None and single.next_update_utc < now - skew:
            raise RevocationUnavailable(f"OCSP answer outdated (nextUpdate {single.next_update_utc})")
        return {ocsp.OCSPCertStatus.GOOD: GOOD, ocsp.OCSPCertStatus.REVOKED: REVOKED}.get(
            single.certificate_status, UNKNOWN)
    raise RevocationUnavailable("OCSP answer about another certificate")


def crl_status(cert: x509.Certificate, issuer: x509.Certificate, url: str, fetcher: Fetcher, *,
               now: dt.datetime, skew: dt.timedelta) -> str:
    """``good`` or ``revoked`` from the CRL at ``url`` (signature, issuer and nextUpdate checked)."""
    body = fetcher.get(url)
    try:
        crl = x509.load_pem_x509_crl(body) if b"-----BEGIN" in body else x509.load_der_x509_crl(body)
    except ValueError:
        raise RevocationUnavailable("the CRL is unreadable") from None
    if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):
        raise RevocationUnavailable("CRL not signed by the certificate's issuer")
    if crl.next_update_utc is not None and crl.next_update_utc < now - skew:
        raise RevocationUnavailable(f"CRL outdated (nextUpdate {crl.next_update_utc})")
    return REVOKED if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None else GOOD

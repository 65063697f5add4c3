"""A Belgian eID test PKI, made at run time (never committed): a root that looks
like *Belgium Root CA*, a *Citizen CA*, a delegated OCSP responder certificate,
and citizens' authentication certificates with realistic subjects (C=BE,
CN "Given Surname (Authentication)", SN, GN, serialNumber = national register
number), one expired, one not yet valid, one revoked, one the responder does
not know, one from a look-alike CA nobody trusts.

``OcspResponder`` is a real HTTP OCSP responder (``cryptography``'s OCSP
builder) that also serves the CRL; ``sandbox.eid.cards`` puts keys and
certificates on SoftHSM2 tokens as on an eID card.  For tests and the demo
only: nothing here is reachable from a production configuration.
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

PIN = "1234"
SO_PIN = "12345678"


def make_nrn(birth: dt.date, serial: int) -> str:
    """A national register number with correct check digits (the sandbox imports nothing of idp)."""
    body = f"{birth:%y%m%d}{serial:03d}"
    base = int(body) + (2_000_000_000 if birth.year >= 2000 else 0)
    return f"{body}{97 - base % 97:02d}"


@dataclass(frozen=True)
class Person:
    slug: str
    given: str
    surname: str
    nrn: str
    kind: str = "good"       # good, revoked, expired, not_yet_valid, unknown_status, unknown_ca
    on_card: bool = False    # a SoftHSM2 token holds its key (else a software key, for tests)
    rsa: bool = False        # an older card's RSA 2048 key (else EC P-384, as cards since 2020)


# Marie and Jan are demo citizens (idp.app.demo): same names and register numbers.
PEOPLE = (
    Person("marie", "Marie", "Dupont", make_nrn(dt.date(1985, 3, 14), 123), on_card=True),
    Person("jan", "Jan", "Peeters", make_nrn(dt.date(1990, 7, 2), 45), on_card=True, rsa=True),
    Person("luc", "Luc", "Janssens", make_nrn(dt.date(1978, 5, 21), 77), kind="revoked", on_card=True),
    Person("nora", "Nora", "Lambert", make_nrn(dt.date(2003, 2, 11), 164)),
    Person("anne", "Anne", "Claes", make_nrn(dt.date(1962, 9, 9), 12), kind="expired"),
    Person("tom", "Tom", "Maes", make_nrn(dt.date(1999, 1, 15), 33), kind="not_yet_valid"),
    Person("sara", "Sara", "Wouters", make_nrn(dt.date(1995, 12, 1), 88), kind="unknown_status"),
    Person("eva", "Eva", "Jacobs", make_nrn(dt.date(1988, 4, 4), 54), kind="unknown_ca"),
)


@dataclass
class Issued:
    person: Person
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None   # None when the key lives on a card


def _name(*parts) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _ca(subject: x509.Name, key, issuer_name: x509.Name, issuer_key, now: dt.datetime, years: int,
        path_length: int | None) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=365 * 3)).not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA384()))


@dataclass
class Pki:
    """The test PKI.  ``base_url`` is where ``OcspResponder`` answers (it goes into every
    certificate's AIA and CRL distribution point, so it is fixed before issuing)."""

    base_url: str
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    def __post_init__(self) -> None:
        now = self.now
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root_name = _name((NameOID.COUNTRY_NAME, "BE"), (NameOID.COMMON_NAME, "Belgium Root CA4 (sandbox)"))
        self.root = _ca(self.root_name, self.root_key, self.root_name, self.root_key, now, 20, None)
        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        self.ca_name = _name((NameOID.COUNTRY_NAME, "BE"), (NameOID.COMMON_NAME, "Citizen CA"),
                             (NameOID.SERIAL_NUMBER, "202601"))
        self.ca = _ca(self.ca_name, self.ca_key, self.root_name, self.root_key, now, 10, 0)
        # A look-alike nobody configured: same names, other keys.
        self.rogue_root_key = ec.generate_private_key(ec.SECP384R1())
        self.rogue_root = _ca(self.root_name, self.rogue_root_key, self.root_name, self.rogue_root_key, now, 20, None)
        self.rogue_ca_key = ec.generate_private_key(ec.SECP384R1())
        self.rogue_ca = _ca(self.ca_name, self.rogue_ca_key, self.root_name, self.rogue_root_key, now, 10, 0)
        # The responder signs with a certificate of its own (delegated, RFC 6960 §4.2.2.2), as Belgium's does.
        self.ocsp_key = ec.generate_private_key(ec.SECP384R1())
        self.ocsp_cert = (
            x509.CertificateBuilder().subject_name(_name((NameOID.COUNTRY_NAME, "BE"),
                                                         (NameOID.COMMON_NAME, "Citizen CA OCSP (sandbox)")))
            .issuer_name(self.ca_name).public_key(self.ocsp_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=True)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(self.ca_key, hashes.SHA384()))
        # ...and one the look-alike CA issued: what a forged answer is signed with.
        self.rogue_ocsp_key = ec.generate_private_key(ec.SECP384R1())
        self.rogue_ocsp_cert = (
            x509.CertificateBuilder().subject_name(self.ocsp_cert.subject).issuer_name(self.ca_name)
            .public_key(self.rogue_ocsp_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=True)
            .sign(self.rogue_ca_key, hashes.SHA384()))
        self.status: dict[int, tuple[str, dt.datetime | None]] = {}   # serial -> (good|revoked, when)
        self.issued: dict[str, Issued] = {}

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/ocsp"

    @property
    def crl_url(self) -> str:
        return f"{self.base_url}/crl/citizen.crl"

    def issue(self, person: Person, public_key, private_key=None) -> Issued:
        """The authentication certificate of ``person`` for ``public_key``, per ``person.kind``."""
        now = self.now
        start, end = now - dt.timedelta(days=400), now + dt.timedelta(days=365 * 9)
        if person.kind == "expired":
            start, end = now - dt.timedelta(days=365 * 10), now - dt.timedelta(days=30)
        elif person.kind == "not_yet_valid":
            start, end = now + dt.timedelta(days=2), now + dt.timedelta(days=365 * 10)
        issuer_name, issuer_key, issuer = self.ca_name, self.ca_key, self.ca
        if person.kind == "unknown_ca":
            issuer_key, issuer = self.rogue_ca_key, self.rogue_ca
        subject = _name((NameOID.COUNTRY_NAME, "BE"),
                        (NameOID.COMMON_NAME, f"{person.given} {person.surname} (Authentication)"),
                        (NameOID.SURNAME, person.surname), (NameOID.GIVEN_NAME, person.given),
                        (NameOID.SERIAL_NUMBER, person.nrn))
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False)
                .add_extension(x509.AuthorityInformationAccess([
                    x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                           x509.UniformResourceIdentifier(self.ocsp_url)),
                    x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                           x509.UniformResourceIdentifier(f"{self.base_url}/certs/citizen-ca.crt"))]),
                    critical=False)
                .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                    [x509.UniformResourceIdentifier(self.crl_url)], None, None, None)]), critical=False)
                .sign(issuer_key, hashes.SHA256()))
        if person.kind == "revoked":
            self.status[cert.serial_number] = ("revoked", now - dt.timedelta(days=3))
        elif person.kind != "unknown_status":
            self.status[cert.serial_number] = ("good", None)
        issued = Issued(person, cert, private_key)
        self.issued[person.slug] = issued
        return issued

    def issue_software(self, person: Person) -> Issued:
        key = ec.generate_private_key(ec.SECP384R1())
        return self.issue(person, key.public_key(), key)

    def write(self, directory: Path) -> tuple[Path, Path]:
        """The trust anchor files a configuration names: (root, intermediates)."""
        directory.mkdir(parents=True, exist_ok=True)
        root, ca = directory / "belgium-root-ca.pem", directory / "citizen-ca.pem"
        root.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))
        ca.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))
        return root, ca

    # --- the responder's answers --------------------------------------------------------------
    def crl(self, now: dt.datetime | None = None) -> bytes:
        now = now or dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.ca_name)
                   .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=1)))
        for serial, (state, when) in self.status.items():
            if state == "revoked":
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
        return builder.sign(self.ca_key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)

    def ocsp_answer(self, body: bytes, *, now: dt.datetime | None = None, age: dt.timedelta = dt.timedelta(0),
                    signer=None) -> bytes:
        now = (now or dt.datetime.now(dt.timezone.utc)) - age
        try:
            request = ocsp.load_der_ocsp_request(body)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(serialization.Encoding.DER)
        ours = request.issuer_key_hash == _issuer_key_hash(self, request.hash_algorithm)
        state, when = self.status.get(request.serial_number, ("unknown", None)) if ours else ("unknown", None)
        status = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED}.get(
            state, ocsp.OCSPCertStatus.UNKNOWN)
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number, algorithm=request.hash_algorithm, cert_status=status,
            this_update=now - dt.timedelta(minutes=1), next_update=now + dt.timedelta(hours=1),
            revocation_time=when, revocation_reason=x509.ReasonFlags.key_compromise if when else None)
        cert, key = signer or (self.ocsp_cert, self.ocsp_key)
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, cert).certificates([cert])
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
            builder = builder.add_extension(nonce, critical=False)
        except x509.ExtensionNotFound:
            pass
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _issuer_key_hash(pki: "Pki", algorithm) -> bytes:
    """The CertID's issuerKeyHash of the Citizen CA, as cryptography computes it for any certificate it issued."""
    return ocsp.OCSPRequestBuilder().add_certificate(pki.ocsp_cert, pki.ca, algorithm).build().issuer_key_hash


class OcspResponder:
    """The PKI's OCSP responder and CRL, over real HTTP in a thread.

    ``mode``: ``"normal"``; ``"down"`` (OCSP answers HTTP 503, the CRL still
    served: the responder is down, the CRL site is not); ``"stale"`` (answers
    produced two days ago); ``"forged"`` (signed by a key the CA never certified).
    """

    def __init__(self, pki: Pki, host: str, port: int) -> None:
        self.pki, self.mode = pki, "normal"
        self.requests = 0
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                if self.path != "/ocsp":
                    return self._send(404, b"", "text/plain")
                responder.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if responder.mode == "down":
                    return self._send(503, b"down", "text/plain")
                kwargs = {}
                if responder.mode == "stale":
                    kwargs["age"] = dt.timedelta(days=2)
                if responder.mode == "forged":
                    kwargs["signer"] = (responder.pki.rogue_ocsp_cert, responder.pki.rogue_ocsp_key)
                self._send(200, responder.pki.ocsp_answer(body, **kwargs), "application/ocsp-response")

            def do_GET(self):  # noqa: N802
                if self.path == "/crl/citizen.crl":
                    return self._send(200, responder.pki.crl(), "application/pkix-crl")
                if self.path == "/certs/citizen-ca.crt":
                    return self._send(200, responder.pki.ca.public_bytes(serialization.Encoding.DER),
                                      "application/pkix-cert")
                self._send(404, b"", "text/plain")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "OcspResponder":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

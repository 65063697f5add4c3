"""The eID key (level 500): the Belgian identity card and its PIN, over PKCS#11.

The card and the PIN stay on the citizen's computer.  The server proves that
the citizen holds the card's *Authentication* key with a signed challenge, the
model of Web eID's authentication token (``adapters.eid.webeid``):

1. ``begin`` (and the JSON step ``challenge``) issues a nonce of 256 bits,
   kept in the state store for ``nonce_seconds`` and in the key's namespace of
   the journey; a new one replaces the last.
2. The page's script hands it to the ``sesame eid`` helper on 127.0.0.1
   (``adapters.eid.helper``), which has the card sign ``hash(origin) ||
   hash(nonce)`` after the PIN; or the citizen pastes the helper's code; or
   the Web eID application's token is posted in the same form.
3. ``token``: the nonce is taken with the store's atomic ``pop`` *before*
   anything else is looked at (of parallel posts of one token exactly one goes
   on; a token is never checked twice), then the algorithm, the signature over
   our origin and that nonce, the chain to the configured roots, the dates and
   key usage (``adapters.eid.certificates``), and revocation
   (``adapters.eid.revocation``: OCSP, CRL as configured).
4. Identity: national register number from the subject ``serialNumber``,
   ``SN`` and ``GN``; a person is created at the first login.

``proxy_header`` mode: a TLS-terminating proxy that asked for the client
certificate passes it in a header; taken only from ``trusted_proxies``
(the TCP peer, not a forwarded address), then the same checks.
"""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from flask_babel import lazy_gettext as _l
from cryptography import x509

from adapters.base import (Adapter, AuthResult, Challenge, Group, Json, Outcome, Subject, SubjectKind,
                           Success)
from adapters.eid import certificates, revocation, webeid
from adapters.eid.certificates import CertificateRefused
from adapters.eid.revocation import Fetcher, RevocationUnavailable, UrllibFetcher
from adapters.settings import KeySettings, SettingsError

NONCE_PREFIX = "eid:nonce:"
MAX_REPORTS = 20  # helper errors the page may report per journey (wrong PINs, no card...)
# What the helper and the page may report (adapters.eid.card's codes, and no helper at all).
HELPER_ERRORS = ("no_helper", "no_reader", "no_card", "card_removed", "pin_incorrect", "pin_locked", "cancelled",
                 "card_error")
REVOCATION_MODES = ("ocsp", "ocsp_or_crl", "crl")
ALGORITHMS = ("ES256", "ES384", "RS256", "RS384")   # RSA PKCS#1 v1.5 and ECDSA, SHA-256/384

TOKEN_INVALID, SIGNATURE_INVALID, CHALLENGE_EXPIRED = (
    "eid_token_invalid", "eid_signature_invalid", "eid_challenge_expired")
EXPIRED, NOT_YET_VALID, UNTRUSTED, REVOKED = ("eid_cert_expired", "eid_cert_not_yet_valid", "eid_cert_untrusted",
                                              "eid_cert_revoked")
STATUS_UNKNOWN, REVOCATION_DOWN, NO_IDENTITY, PROXY_REFUSED = (
    "eid_cert_status_unknown", "eid_revocation_unavailable", "eid_no_identity", "eid_proxy_refused")


@dataclass(frozen=True)
class EidSettings(KeySettings):
    root_files: tuple[str, ...] = ()          # Belgium Root CA certificates (PEM/DER), the trust anchors
    intermediate_files: tuple[str, ...] = ()  # Citizen CA certificates
    origin: str = ""                          # "" = the origin of [server] base_url
    algorithms: tuple[str, ...] = ALGORITHMS
    nonce_seconds: int = 300
    helper_port: int = 24727                  # where the page's script finds `sesame eid`
    revocation: str = "ocsp"                  # "ocsp" (refuse when down), "ocsp_or_crl", "crl"
    ocsp_url: str = ""                        # "" = the certificate's Authority Information Access
    crl_urls: tuple[str, ...] = ()            # () = the certificate's CRL distribution points
    ocsp_max_age_seconds: int = 86400         # an OCSP answer produced longer ago is stale
    timeout_seconds: float = 5.0              # every OCSP / CRL call
    clock_skew_seconds: int = 60
    proxy_header: str = ""                    # e.g. "X-SSL-Client-Cert"; "" = no proxy-header mode
    trusted_proxies: tuple[str, ...] = ()     # addresses / networks that may send it


class EidAdapter(Adapter):
    id = "eid"
    group = Group.EID
    level = 500
    levels = (500, 500)
    Settings = EidSettings
    ports = frozenset({"store", "clock", "audit", "client_certificate"})
    provisions_people = True  # the national register vouches for a person we may not know yet
    template_folder = Path(__file__).with_name("templates")
    static_folder = Path(__file__).with_name("static")
    messages = {
        TOKEN_INVALID: _l("La réponse du lecteur de cartes eID n'a pas pu être lue. Recommencez, ou choisissez "
                          "une autre clé numérique."),
        SIGNATURE_INVALID: _l("La signature de votre carte eID ne correspond pas à cette demande de connexion. "
                              "Recommencez."),
        CHALLENGE_EXPIRED: _l("Cette demande de connexion a expiré ou a déjà été utilisée. Recommencez avec votre "
                              "carte eID."),
        EXPIRED: _l("Le certificat de votre carte eID a expiré. Adressez-vous à votre commune, ou choisissez une "
                    "autre clé numérique."),
        NOT_YET_VALID: _l("Le certificat de votre carte eID n'est pas encore valable. Réessayez plus tard, ou "
                          "choisissez une autre clé numérique."),
        UNTRUSTED: _l("Le certificat présenté n'est pas celui d'une carte d'identité belge reconnue. La connexion "
                      "est refusée."),
        REVOKED: _l("Le certificat de votre carte eID a été révoqué. Adressez-vous à votre commune, ou choisissez "
                    "une autre clé numérique."),
        STATUS_UNKNOWN: _l("La validité du certificat de votre carte eID n'a pas pu être confirmée. La connexion est "
                           "refusée."),
        REVOCATION_DOWN: _l("La validité de votre carte eID ne peut pas être vérifiée pour le moment. Réessayez dans "
                            "quelques minutes, ou choisissez une autre clé numérique."),
        NO_IDENTITY: _l("Le certificat de votre carte eID ne contient pas de numéro de registre national valable."),
        PROXY_REFUSED: _l("Aucun certificat de carte eID valable n'a été reçu. Recommencez avec le lecteur de "
                          "cartes, ou choisissez une autre clé numérique."),
    }

    def __init__(self, settings: Mapping[str, Any] | None = None, *, fetcher: Fetcher | None = None) -> None:
        super().__init__(settings)
        s, where = self.settings, f"[keys.{self.id}]"
        if not s.root_files:
            raise SettingsError(f"{where} root_files: the Belgium Root CA certificate file(s) are required")
        try:
            self.roots = certificates.load_certificates(s.root_files)
            self.intermediates = certificates.load_certificates(s.intermediate_files)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{where} root_files / intermediate_files: {exc}") from None
        if s.revocation not in REVOCATION_MODES:
            raise SettingsError(f"{where} revocation {s.revocation!r}: one of {', '.join(REVOCATION_MODES)}")
        unknown = [a for a in s.algorithms if a not in webeid.HASHES]
        if unknown or not s.algorithms:
            raise SettingsError(f"{where} algorithms: unknown {unknown}; known: {', '.join(webeid.HASHES)}")
        if s.origin and urlsplit(s.origin).path not in ("", "/"):
            raise SettingsError(f"{where} origin: scheme://host[:port], no path")
        try:
            self.proxies = [ipaddress.ip_network(p, strict=False) for p in s.trusted_proxies]
        except ValueError as exc:
            raise SettingsError(f"{where} trusted_proxies: {exc}") from None
        if s.proxy_header and not self.proxies:
            raise SettingsError(f"{where} proxy_header needs trusted_proxies (the proxy's addresses)")
        if not 0 < s.helper_port < 65536:
            raise SettingsError(f"{where} helper_port: a TCP port")
        self.fetcher = fetcher or UrllibFetcher(s.timeout_seconds)

    # --- the page ------------------------------------------------------------------------
    def page_policy(self):
        # The page's script calls the helper on the loopback address: this page only.
        return {"connect-src": (f"http://127.0.0.1:{self.settings.helper_port}",)}

    def origin(self, ctx) -> str:
        if self.settings.origin:
            return self.settings.origin.rstrip("/")
        parts = urlsplit(ctx.return_url())
        return f"{parts.scheme}://{parts.netloc}"

    def _new_nonce(self, ctx) -> str:
        store = ctx.ports.store
        old = ctx.state.get("nonce")
        if old:
            store.delete(NONCE_PREFIX + old)  # one live challenge per journey
        # 256 bits in standard base64 (44 characters): the Web eID extension wants
        # at least that; the helper takes any string.
        nonce = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        store.put(NONCE_PREFIX + nonce, ctx.journey_id, ttl=self.settings.nonce_seconds)
        ctx.state["nonce"] = nonce
        return nonce

    def _page(self, ctx, error: str | None = None, status: int = 200, *, fresh: bool = True) -> Challenge:
        """The eID page; with a new challenge unless ``fresh`` is False (then the
        journey's state is left exactly as read: see ``_token``)."""
        return Challenge("eid/login.html", {
            "nonce": self._new_nonce(ctx) if fresh else None, "origin": self.origin(ctx),
            "helper_port": self.settings.helper_port, "proxy_mode": bool(self.settings.proxy_header)},
            error=error, status=status)

    def begin(self, ctx) -> Outcome:
        return self._page(ctx)

    def action(self, ctx, step: str) -> Outcome:
        if step == "challenge" and ctx.method == "POST":
            return Json({"nonce": self._new_nonce(ctx), "origin": self.origin(ctx)})
        if step == "token" and ctx.method == "POST":
            return self._token(ctx)
        if step == "report" and ctx.method == "POST":
            return self._report(ctx)
        if step == "certificate" and ctx.method == "POST" and self.settings.proxy_header:
            return self._from_proxy(ctx)
        return self._page(ctx)

    # --- the signed challenge -------------------------------------------------------------
    def _token(self, ctx) -> Outcome:
        nonce = ctx.state.get("nonce")
        # Taken before anything else: of parallel posts one gets it, and a token is checked once.
        owner = ctx.ports.store.pop(NONCE_PREFIX + nonce) if nonce else None
        if owner != ctx.journey_id:
            # The losers of a race leave the journey's state as they read it: their write is then
            # the same value, and the winner's claim of the journey (compare-and-set) still holds.
            return self._refuse(ctx, CHALLENGE_EXPIRED, "no live challenge for this journey (expired or used)",
                                fresh=False)
        try:
            token = webeid.parse(ctx.form.get("token"))
            webeid.verify(token, origin=self.origin(ctx), nonce=nonce, allowed=self.settings.algorithms)
        except webeid.TokenRefused as exc:
            return self._refuse(ctx, exc.code, exc.detail)
        return self._certificate(ctx, token.certificate)

    def _report(self, ctx) -> Outcome:
        """What went wrong on the citizen's computer (wrong PIN, no card...), told by the
        page's script: the server never sees it otherwise, and the audit should."""
        body = ctx.json or {}
        code, tries = body.get("error"), body.get("tries")
        if code not in HELPER_ERRORS or tries not in (None, "count_low", "final_try", "locked"):
            return Json({"error": "bad_request"}, 400)
        if not ctx.attempts("report").reserve(MAX_REPORTS):  # a script cannot flood the audit log
            return Json({"error": "too_many"}, 429)
        ctx.ports.audit.record("login.failure", result=f"eid_{code}", key=self.id, remote_addr=ctx.remote_addr,
                               portal=ctx.portal, request_id=ctx.request_id, reason="reported by the eID page",
                               **({"pin_tries": tries} if tries else {}))
        return Json({"recorded": True})

    # --- the certificate from a TLS-terminating proxy --------------------------------------
    def _from_proxy(self, ctx) -> Outcome:
        peer, value = ctx.ports.client_certificate.read(self.settings.proxy_header)
        try:
            trusted = any(ipaddress.ip_address(peer) in net for net in self.proxies)
        except ValueError:
            trusted = False
        if not trusted:
            return self._refuse(ctx, PROXY_REFUSED, f"certificate header from untrusted peer {peer[:60]}",
                                result="untrusted_proxy")
        cert = _header_certificate(value)
        if cert is None:
            return self._refuse(ctx, PROXY_REFUSED, "no readable certificate in the header", result="no_certificate")
        return self._certificate(ctx, cert)

    # --- the checks both modes share --------------------------------------------------------
    def _certificate(self, ctx, cert: x509.Certificate) -> Outcome:
        s = self.settings
        now = dt.datetime.fromtimestamp(ctx.ports.clock.now(), dt.timezone.utc)
        skew = dt.timedelta(seconds=s.clock_skew_seconds)
        try:
            chain = certificates.build_chain(cert, intermediates=self.intermediates, roots=self.roots, now=now,
                                             skew=skew)
            holder = certificates.holder_of(cert)
        except CertificateRefused as exc:
            return self._refuse(ctx, exc.code, exc.detail, serial=_serial(cert))
        status, detail = self._revocation(cert, chain[1], now, skew)
        if status != revocation.GOOD:
            code = {revocation.REVOKED: REVOKED, revocation.UNKNOWN: STATUS_UNKNOWN}.get(status, REVOCATION_DOWN)
            return self._refuse(ctx, code, detail, serial=_serial(cert))
        attributes = {"nrn": holder.nrn}
        if holder.surname:
            attributes["surname"] = holder.surname
        if holder.given_name:
            attributes["given_name"] = holder.given_name
        ctx.state.clear()
        return Success(AuthResult(subject=Subject(SubjectKind.NRN, holder.nrn, issuer=self.id), key=self.id,
                                  level=self.level, authn_instant=ctx.ports.clock.now(), attributes=attributes))

    def _revocation(self, cert, issuer, now, skew) -> tuple[str, str]:
        """``(status, detail)``: OCSP first unless ``crl``; the CRL when OCSP gave no answer and
        ``ocsp_or_crl``.  Status ``unavailable`` when nothing usable answered."""
        s, problems = self.settings, []
        if s.revocation in ("ocsp", "ocsp_or_crl"):
            urls = [s.ocsp_url] if s.ocsp_url else revocation.ocsp_urls(cert)
            for url in urls[:2]:
                try:
                    return revocation.ocsp_status(cert, issuer, url, self.fetcher, now=now, skew=skew,
                                                  max_age=dt.timedelta(seconds=s.ocsp_max_age_seconds)), f"OCSP {url}"
                except RevocationUnavailable as exc:
                    problems.append(f"OCSP: {exc}")
            if not urls:
                problems.append("OCSP: no responder")
        if s.revocation in ("crl", "ocsp_or_crl"):
            urls = list(s.crl_urls) or revocation.crl_urls(cert)
            for url in urls[:2]:
                try:
                    return revocation.crl_status(cert, issuer, url, self.fetcher, now=now, skew=skew), f"CRL {url}"
                except RevocationUnavailable as exc:
                    problems.append(f"CRL: {exc}")
            if not urls:
                problems.append("CRL: no distribution point")
        return "unavailable", "; ".join(problems)[:300]

    def _refuse(self, ctx, code: str, detail: str, *, result: str | None = None, serial: str | None = None,
                fresh: bool = True):
        ctx.ports.audit.record("login.failure", result=result or code, key=self.id, remote_addr=ctx.remote_addr,
                               portal=ctx.portal, request_id=ctx.request_id, reason=detail[:200],
                               **({"certificate_serial": serial} if serial else {}))
        return self._page(ctx, error=code, status=400, fresh=fresh)


def _serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def _header_certificate(value: str | None) -> x509.Certificate | None:
    """The client certificate as proxies pass it: PEM, URL-encoded PEM (nginx
    ``$ssl_client_escaped_cert``), PEM with its newlines turned to spaces, or base64 DER."""
    if not value or len(value) > 20_000:
        return None
    text = unquote(value) if "%" in value else value
    try:
        if "-----BEGIN CERTIFICATE-----" in text:
            body = text.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
            text = "".join(body.split())
        return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
    except (ValueError, IndexError):
        return None

"""The European key: Sésame as a SAML service provider to an eIDAS node.

The citizen picks their country (``eidas/country.html``); the key signs an
eIDAS ``AuthnRequest`` (``adapters.eidas.profile``) with Sésame's signing key
(the ``signer`` port: the same ``keys.Signer`` as Sésame's assertions) and
posts it to the node with the country beside it (the form field ``country``,
as eIDAS connector nodes take it).  The node answers at ``/login/eidas/return``
with a signed ``Response`` whose assertion is encrypted to our encryption key;
``RelayState`` is the engine's signed single-use return state.

What is single-use lives in the shared state store (``store`` port), so it
holds across nodes: the request we sent and still wait for
(``eidas:pending:<ID>``, popped by the first answer naming it) and every
assertion ID accepted (``eidas:assertion:<hash>``, added only if absent,
remembered until the assertion's validity ends).

The level the node reached becomes a Sésame level by the configured table
(``level_low``/``level_substantial``/``level_high``); the journey engine
refuses it when it is below what the portal asked.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l
from lxml import etree

from adapters.base import (Adapter, AuthResult, Challenge, Document, Failure, Group, Subject, SubjectKind,
                           Success)
from adapters.eidas import profile
from adapters.eidas.countries import COUNTRIES
from adapters.oidc.nrn import check_nrn
from adapters.settings import KeySettings, SettingsError
from keys.generate import ensure_key_pair
from keys.xmldec import load_decryption_key_file

UNKNOWN_COUNTRY, UNAVAILABLE = "eidas_unknown_country", "eidas_unavailable"
PENDING, SEEN = "eidas:pending:", "eidas:assertion:"
MAX_RESPONSE = 200_000   # bytes of XML: an eIDAS response is a few kilobytes


@dataclass(frozen=True)
class EidasSettings(KeySettings):
    display_name: str = "eIDAS"
    node_sso_url: str = ""             # the node's SingleSignOnService (HTTP-POST)
    node_entity_id: str = ""           # its Issuer (eIDAS: the URL of its metadata)
    node_certificate_file: str = ""    # PEM certificate(s) of its signing key, read at each change of the file
    sp_entity_id: str = ""             # ours; "" = <base_url>/keys/eidas/metadata (eIDAS: our metadata's URL)
    sp_type: str = "public"            # eidas:SPType: Sésame serves public-sector portals
    countries: tuple[str, ...] = tuple(COUNTRIES)
    optional_attributes: tuple[str, ...] = ()   # BirthName, PlaceOfBirth, CurrentAddress, Gender
    level_low: int = 200               # the Sésame level each eIDAS level becomes ([levels] eidas_* ranges)
    level_substantial: int = 400
    level_high: int = 500
    encryption_key_file: str = ""      # our RSA key the node encrypts to (<name>.key, its certificate <name>.crt)
    encryption_cert_file: str = ""
    generate_keys: bool = False        # create the encryption key pair at start when missing (demo)
    provider_name: str = "Sésame"
    request_ttl_seconds: int = 600     # how long a request sent waits for its answer
    clock_skew_seconds: int = 60
    max_assertion_age_seconds: int = 600


class EidasAdapter(Adapter):
    id = "eidas"
    group = Group.EUROPEAN
    level = 400
    levels = (200, 500)
    Settings = EidasSettings
    ports = frozenset({"clock", "audit", "store", "signer"})
    return_state_param = "RelayState"
    provisions_people = True   # a citizen of another country is known by their eIDAS identifier only
    template_folder = Path(__file__).with_name("templates")
    messages = {
        profile.REFUSED: _l("La réponse de votre pays n'a pas pu être vérifiée : pour votre sécurité, la connexion "
                            "est refusée. Réessayez, ou choisissez une autre clé numérique."),
        profile.CANCELLED: _l("Vous avez annulé l'authentification européenne. Vous pouvez réessayer, ou choisir "
                              "une autre clé numérique."),
        profile.FAILED: _l("L'authentification dans votre pays n'a pas abouti. Vous pouvez réessayer, ou choisir "
                           "une autre clé numérique."),
        UNKNOWN_COUNTRY: _l("Choisissez votre pays dans la liste."),
        UNAVAILABLE: _l("L'authentification européenne n'est pas disponible pour le moment. Réessayez dans "
                        "quelques minutes, ou choisissez une autre clé numérique."),
    }

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        s, where = self.settings, f"[keys.{self.id}]"
        for name in ("node_sso_url", "node_entity_id", "node_certificate_file", "encryption_key_file",
                     "encryption_cert_file"):
            if not getattr(s, name):
                raise SettingsError(f"{where} {name} is required")
        if s.sp_type not in ("public", "private"):
            raise SettingsError(f"{where} sp_type: public or private")
        unknown = [c for c in s.countries if c not in COUNTRIES]
        if unknown or not s.countries:
            raise SettingsError(f"{where} countries: unknown {', '.join(unknown) or '(none given)'}")
        bad = [a for a in s.optional_attributes if a not in profile.OPTIONAL]
        if bad:
            raise SettingsError(f"{where} optional_attributes: unknown {', '.join(bad)}")
        self.table = {"low": s.level_low, "substantial": s.level_substantial, "high": s.level_high}
        if not s.level_low < s.level_substantial < s.level_high:
            raise SettingsError(f"{where} level_low < level_substantial < level_high")
        if not all(self.levels[0] <= v <= self.levels[1] for v in self.table.values()):
            raise SettingsError(f"{where} the eIDAS levels must lie within levels {list(self.levels)}")
        self.decryption_key = self._encryption_key()
        self.encryption_certificate = Path(s.encryption_cert_file).read_bytes()
        self._node_certificates: tuple[float, list[bytes]] | None = None

    def _encryption_key(self):
        s = self.settings
        key_path, cert_path = Path(s.encryption_key_file), Path(s.encryption_cert_file)
        if s.generate_keys and not key_path.exists() and not cert_path.exists():
            if (key_path.suffix, cert_path.suffix) != (".key", ".crt") or key_path.with_suffix("") != \
                    cert_path.with_suffix(""):
                raise SettingsError(f"[keys.{self.id}] generate_keys makes <name>.key and <name>.crt side by side")
            ensure_key_pair(directory=key_path.parent, common_name="Sésame eIDAS encryption", name=key_path.stem,
                            key_size=3072)
        try:
            return load_decryption_key_file(key_path)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"[keys.{self.id}] encryption_key_file: {exc} (generate_keys = true creates "
                                f"it)") from None

    def node_certificates(self) -> list[bytes]:
        """The node's signing certificates, read again when the file changes (a rotation needs no restart)."""
        path = Path(self.settings.node_certificate_file)
        stamp = path.stat().st_mtime
        if self._node_certificates is None or self._node_certificates[0] != stamp:
            text = path.read_bytes()
            marker = b"-----END CERTIFICATE-----"
            found = [part.strip() + b"\n" + marker + b"\n" for part in text.split(marker) if b"BEGIN" in part]
            self._node_certificates = (stamp, found)
        return self._node_certificates[1]

    # --- what the engine asks ------------------------------------------------------------------
    def sp_entity_id(self, return_url: str) -> str:
        """Our entity ID: configured, or our metadata's URL (eIDAS names the SP by it)."""
        return self.settings.sp_entity_id or return_url.rsplit("/login/", 1)[0] + f"/keys/{self.id}/metadata"

    def public_endpoints(self):
        """Our SP metadata for the node, signed, at /keys/<id>/metadata (our entity ID
        when none is configured): the node fetches it to trust our requests."""
        from adapters.eidas.metadata import sp_metadata

        return {"metadata": lambda public: Document(
            sp_metadata(adapter=self, signer=public.ports.signer, return_url=public.return_url,
                        now=public.ports.clock.now()), "application/samlmetadata+xml")}

    def page_policy(self):
        # The request is posted to the node: another site, for this key's pages only.
        node = urlsplit(self.settings.node_sso_url)
        return {"form-action": (f"{node.scheme}://{node.netloc}",)}

    def country_choices(self) -> list[tuple[str, str]]:
        """(code, name in the citizen's language), sorted by name."""
        return sorted(((code, str(COUNTRIES[code])) for code in self.settings.countries), key=lambda c: c[1])

    # --- out --------------------------------------------------------------------------------------
    def begin(self, ctx):
        ctx.state.clear()  # a new start forgets a request sent and not answered
        return Challenge("eidas/country.html", {"countries": self.country_choices()})

    def action(self, ctx, step):
        if step != "country" or ctx.method != "POST":
            return Failure("unknown_step")
        country = str(ctx.form.get("country", ""))
        if country not in self.settings.countries:
            return Challenge("eidas/country.html", {"countries": self.country_choices()}, error=UNKNOWN_COUNTRY,
                             status=400)
        s = self.settings
        loa = profile.loa_for(ctx.min_level, self.table)
        request_id = "_" + secrets.token_hex(20)
        return_url = ctx.return_url()
        request = profile.authn_request(
            request_id=request_id, now=ctx.ports.clock.now(), destination=s.node_sso_url,
            issuer=self.sp_entity_id(return_url), acs_url=return_url, loa=loa,
            force_authn=ctx.force_authn, sp_type=s.sp_type, optional=s.optional_attributes,
            provider_name=s.provider_name)
        ctx.ports.signer.sign_element(request)
        message = base64.b64encode(etree.tostring(request, encoding="UTF-8", xml_declaration=True)).decode()
        # The request we wait for, in the shared store: its first answer, on whichever node, pops it.
        ctx.ports.store.put(PENDING + request_id, {"journey": ctx.journey_id, "country": country},
                            ttl=s.request_ttl_seconds)
        ctx.state.update(request_id=request_id, country=country, loa=loa)
        ctx.ports.audit.record("login.eidas_request", key=self.id, portal=ctx.portal, request_id=ctx.request_id,
                               remote_addr=ctx.remote_addr, country=country, loa=loa, upstream_id=request_id)
        return Challenge("eidas/post.html", {"form": {
            "action": s.node_sso_url, "field": "SAMLRequest", "message": message,
            "relay_state": ctx.new_return_state(), "country": country}})

    # --- back ------------------------------------------------------------------------------------
    def callback(self, ctx, params):
        s = self.settings
        request_id = ctx.state.pop("request_id", None)
        if request_id is None:
            return self._fail(ctx, profile.REFUSED, "no_request", "no request of this key in progress")
        # Whatever follows, this request is answered: the first answer (any node) takes it.
        pending = ctx.ports.store.pop(PENDING + request_id)
        try:
            xml = _decode(params.get("SAMLResponse"))
            response, status, second = profile.status_of(xml, certificates=self.node_certificates())
            answered = response.get("InResponseTo")
            if not answered:
                raise profile.Refused(profile.REFUSED, "unsolicited", "a response without InResponseTo")
            if not secrets.compare_digest(answered, request_id):
                raise profile.Refused(profile.REFUSED, "wrong_in_response_to",
                                      "a response to a request this journey did not send")
            if pending is None or pending.get("journey") != ctx.journey_id:
                raise profile.Refused(profile.REFUSED, "request_not_pending", "already answered or expired")
            if status != profile.SUCCESS:
                raise profile.error_for(status, second)
            now = ctx.ports.clock.now()
            return_url = ctx.return_url()
            answer = profile.read_assertion(response, profile.Expected(
                request_id=request_id, node_entity_id=s.node_entity_id, sp_entity_id=self.sp_entity_id(return_url),
                acs_url=return_url, certificates=self.node_certificates(), now=now, skew=s.clock_skew_seconds,
                max_age=s.max_assertion_age_seconds), self.decryption_key)
            if not first_time(ctx.ports.store, answer, now=now, skew=s.clock_skew_seconds):
                raise profile.Refused(profile.REFUSED, "replayed", "assertion ID seen before")
        except profile.Refused as exc:
            return self._fail(ctx, exc.code, exc.result, exc.detail)
        except OSError as exc:  # the node's certificate file is missing: a configuration fault, said plainly
            return self._fail(ctx, UNAVAILABLE, "node_certificate", str(exc))
        return self._success(ctx, answer)

    def _success(self, ctx, answer: profile.NodeAnswer):
        values = answer.attributes
        attributes = {"surname": values[profile.FAMILY_NAME], "given_name": values[profile.GIVEN_NAME],
                      "birth_date": values[profile.DATE_OF_BIRTH], "eidas_identifier": answer.identifier}
        origin, _, local = answer.identifier.split("/", 2)
        if origin == "BE" and check_nrn(local):  # a Belgian register number, only when the node gives one
            attributes["nrn"] = local
        return Success(AuthResult(
            subject=Subject(SubjectKind.UPSTREAM, answer.identifier, issuer=answer.issuer), key=self.id,
            level=self.table[answer.loa], authn_instant=answer.authn_instant, authority=answer.issuer,
            attributes=attributes))

    def _fail(self, ctx, code: str, result: str, detail: str) -> Failure:
        ctx.state.clear()
        ctx.ports.audit.record("login.provider_failed", result=result, key=self.id, remote_addr=ctx.remote_addr,
                               portal=ctx.portal, request_id=ctx.request_id, reason=detail[:200])
        return Failure(code, {"provider": self.settings.display_name})


def first_time(store, answer: profile.NodeAnswer, *, now: float, skew: int) -> bool:
    """True for the first sight of this assertion on any node (atomic ``add``),
    remembered until it could no longer be accepted anyway."""
    name = hashlib.sha256(f"{answer.issuer}\x00{answer.assertion_id}".encode()).hexdigest()
    return store.add(SEEN + name, 1, ttl=max(60, int(answer.not_on_or_after - now) + skew + 1))


def _decode(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise profile.Refused(profile.REFUSED, "no_response", "no SAMLResponse")
    if len(value) > MAX_RESPONSE * 4 // 3 + 4:
        raise profile.Refused(profile.REFUSED, "too_large", f"{len(value)} characters")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise profile.Refused(profile.REFUSED, "malformed", "SAMLResponse is not base64") from None

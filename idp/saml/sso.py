"""The single sign-on service (DESIGN.md §1): from a checked request to a signed
(and, where the portal's policy asks, encrypted) response.  No Flask here;
the journey engine (``idp.journeys.engine``) calls it.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from lxml import etree

from idp import errors
from idp.people.attributes import PROFILE, pairwise_id, person_attributes, release
from idp.saml.authn_request import (NAMEID_EMAIL, NAMEID_FORMATS, NAMEID_PERSISTENT, NAMEID_UNSPECIFIED,
                                    AuthnRequestData, read_authn_request)
from idp.saml.bindings import encode_post
from idp.saml.response import AssertionFacts, build_assertion, new_id, response_tree, serialize
from idp.sessions.sso_session import Login, SsoSession
from keys.xmlenc import EncryptionError, check_recipient, encrypt_element
from metadata.idp_metadata import build_idp_metadata

log = logging.getLogger("sesame.sso")
METADATA_REFRESH_SECONDS = 3600


@dataclass(frozen=True)
class PostForm:
    """What the browser posts to the portal (SAML bindings §3.5)."""

    action: str
    message: str
    relay_state: str | None
    field: str = "SAMLResponse"  # or "SAMLRequest"


@dataclass(frozen=True)
class Decision:
    """What to do with a checked request: answer at once from the session's
    ``login``, or open a journey with the acceptable ``keys``."""

    request: AuthnRequestData
    portal: object
    keys: list[str]
    min_level: int
    login: Login | None


class SsoService:
    def __init__(self, services) -> None:
        self.s = services
        saml = services.settings["saml"]
        self.max_age = int(saml["request_max_age_seconds"])
        self.skew = int(saml["clock_skew_seconds"])
        # the limits every incoming SAML message is read with (requests and logout messages)
        self.limits = dict(max_bytes=int(saml["max_message_bytes"]), max_age=self.max_age, skew=self.skew)
        self.lifetime = int(saml["assertion_lifetime_seconds"])
        self.sso_urls = (f"{services.settings.base_url}/saml/sso",)

    # --- our metadata -----------------------------------------------------------
    def metadata(self) -> bytes:
        """Sésame's metadata, signed with the signing key; rebuilt at most hourly per instance.

        ``validUntil`` only when ``[saml] metadata_valid_days`` is set (0, the
        default: none, so that a portal's static copy does not silently expire);
        ``cacheDuration`` from ``[saml] metadata_cache_seconds`` (0: none).
        """
        now = self.s.clock.now()
        cached = self.s.cache.get("idp_metadata")
        if cached is None or not 0 <= now - cached[0] <= METADATA_REFRESH_SECONDS:
            base = self.s.settings.base_url
            valid_days = int(self.s.settings.saml("metadata_valid_days"))
            cache_seconds = int(self.s.settings.saml("metadata_cache_seconds"))
            xml = build_idp_metadata(
                entity_id=self.s.settings.entity_id, sso_url=f"{base}/saml/sso", slo_url=f"{base}/saml/slo",
                signing_cert_b64=self.s.signer.certificate_b64(),
                valid_for_seconds=valid_days * 86400 if valid_days else None, now=now,
                cache_duration_seconds=cache_seconds or None,
                attribute_names=PROFILE, **metadata_details(self.s.settings))
            root_id = etree.fromstring(xml).get("ID")  # our own document, just built
            cached = self.s.cache["idp_metadata"] = (now, self.s.signer.sign_xml(xml, reference_id=root_id))
        return cached[1]

    # --- requests -------------------------------------------------------------
    def read(self, *, binding: str, message: str, raw_query: str | None) -> tuple[AuthnRequestData, object]:
        """Decode and check; then the replay check, last, so junk burns no ID."""
        now = self.s.clock.now()
        request, portal = read_authn_request(
            binding=binding, message=message, raw_query=raw_query, registry=self.s.registry,
            sso_urls=self.sso_urls, now=now, **self.limits)
        self.remember_request(issuer=request.issuer, request_id=request.request_id)
        return request, portal

    def remember_request(self, *, issuer: str, request_id: str) -> None:
        """A request ID is accepted once, across every process, while its IssueInstant
        could still pass the age check; a second use raises ``ReplayedRequest``."""
        # Hashed: an entity ID (up to 1024 characters) and a request ID (256) would
        # not fit the store's key length, and the key must not depend on their size.
        seen = hashlib.sha256(f"{issuer}\x00{request_id}".encode()).hexdigest()
        if not self.s.store.add(f"seen:{seen}", 1, ttl=self.max_age + 2 * self.skew):
            raise errors.ReplayedRequest(f"request ID {request_id[:80]} seen before")

    def requirement(self, request: AuthnRequestData):
        """The ``LevelRequirement`` of a request; ``NoAuthnContext`` when no class is known."""
        requirement = self.s.levels.requirement(list(request.context_refs), request.comparison)
        if requirement is None:
            raise errors.NoAuthnContext(f"unknown authentication context {request.context_refs}")
        return requirement

    def decide(self, *, request: AuthnRequestData, portal, session: SsoSession | None) -> Decision:
        """Which keys may answer, and whether the SSO session answers at once.

        A key is acceptable when the portal accepts it and its range of levels
        can meet both the portal's minimum and the request.  Raises errors
        answered to the portal with a SAML status (``NoAuthnContext``,
        ``NoPassive``, ``InvalidNameIdPolicy``).
        """
        policy = portal.policy
        nameid_format(requested=request.nameid_format, policy=policy, portal=portal.entity_id)
        requirement = self.requirement(request)
        accepted = policy.accepted_keys or tuple(self.s.adapters)
        keys = [k for k, a in self.s.adapters.items()
                if k in accepted and can_reach(a, policy.min_level, requirement, self.s.levels.scale)]
        if not keys:
            raise errors.NoAuthnContext("no enabled key meets the portal's policy and the request")
        login = None
        if session is not None and not request.force_authn:
            login = session.best_login(keys=keys, min_level=policy.min_level, requirement=requirement)
        if login is None and request.is_passive:
            raise errors.NoPassive("passive request and no session that satisfies it")
        return Decision(request=request, portal=portal, keys=keys, min_level=policy.min_level, login=login)

    # --- responses ------------------------------------------------------------
    def _sign(self, response, *, assertion=None, portal, encrypt_to: bytes | None = None) -> bytes:
        """Sign what the portal's metadata and policy ask for; an error response is signed whole.

        ``response`` is the ``samlp:Response`` tree (``assertion`` inside it,
        or ``None``), signed in place and serialised once.  With ``encrypt_to``
        (a PEM certificate) the assertion, once signed, is encrypted before the
        response is signed (SAML core §6.1: sign, then encrypt).
        """
        signer = self.s.signer
        signing = portal.policy.signing(want_assertions_signed=portal.metadata.want_assertions_signed)
        if assertion is not None and signing.assertion:
            signer.sign_element(assertion)
        if assertion is not None and encrypt_to is not None:
            xml = encrypt_element(document=serialize(response), element_id=assertion.get("ID"),
                                  certificate_pem=encrypt_to, recipient=portal.entity_id)
            if signing.response:
                xml = signer.sign_xml(xml, reference_id=response.get("ID"))
            return xml
        if signing.response or assertion is None:
            signer.sign_element(response)
        return serialize(response)

    @staticmethod
    def _encryption_cert(portal) -> bytes | None:
        """The certificate to encrypt assertions to, ``None`` if the policy does not ask.

        The first usable one of the metadata's encryption keys (``use="encryption"``
        or no ``use``); none usable raises ``EncryptionUnavailable``.
        """
        if not portal.policy.encrypt_assertions:
            return None
        problems = []
        for certificate in portal.metadata.encryption_certs:
            try:
                check_recipient(certificate)
                return certificate
            except EncryptionError as exc:
                problems.append(exc.reason)
        raise errors.EncryptionUnavailable("; ".join(problems) or "no encryption key in the portal's metadata")

    def respond(self, *, request: AuthnRequestData, portal, session: SsoSession, person, login: Login,
                lang: str | None, relay_state: str | None, reused: bool = False) -> PostForm:
        """A signed success response for this portal, with what its policy releases.

        Audited as ``sso.reuse`` when the SSO session answered without a login,
        else ``saml.response``: one row a response.  When the policy demands
        encryption and the portal has no usable encryption key, a signed
        ``Responder`` error instead (fail closed).
        """
        policy = portal.policy
        try:
            encrypt_to = self._encryption_cert(portal)
        except errors.EncryptionUnavailable as exc:
            log.warning("assertion for %s not sent: encryption demanded, %s", portal.entity_id, exc.detail)
            return self.respond_error(request=request, portal=portal, error=exc, relay_state=relay_state)
        now = self.s.clock.now()
        available = person_attributes(person=person, key=login.key, lang=lang, learned=session.attributes)
        subject_format = nameid_format(requested=request.nameid_format, policy=policy, portal=portal.entity_id)
        if subject_format == NAMEID_EMAIL:
            nameid = email_address(available.get("mail"))
            if nameid is None:
                log.info("no e-mail NameID for %s: the person has no e-mail address", portal.entity_id)
                return self.respond_error(request=request, portal=portal, relay_state=relay_state,
                                          error=errors.InvalidNameIdPolicy("the person has no e-mail address"))
        elif subject_format == NAMEID_PERSISTENT:
            nameid = pairwise_id(secret=self.s.pairwise_secret, sp_entity_id=portal.entity_id, fedid=person.fedid)
        else:
            # Transient (SAML core §8.3.8): random, and the same for this portal for the
            # rest of the session, so that a new response leaves the stored session as it is.
            previous = session.subjects.get(portal.entity_id)
            nameid = previous[0] if previous and previous[1] == subject_format else new_id()
        facts = AssertionFacts(
            nameid=nameid, nameid_format=subject_format,
            attributes=release(available=available, allowed=policy.attributes),
            authn_instant=login.authn_instant, session_index=session.index,
            session_not_on_or_after=session.ends(self.s.sessions.lifetime),
            attribute_names=str(policy.attribute_names),
            context_class=self.s.levels.stated_class(level=login.level, key=login.key,
                                                     class_refs=request.context_refs,
                                                     comparison=request.comparison))
        _, response = response_tree(idp_entity_id=self.s.settings.entity_id, acs_url=request.acs_url,
                                    in_response_to=request.request_id, now=now)
        assertion = build_assertion(
            idp_entity_id=self.s.settings.entity_id, sp_entity_id=portal.entity_id, acs_url=request.acs_url,
            in_response_to=request.request_id, facts=facts, now=now, lifetime=self.lifetime, skew=self.skew,
            assertion_id=new_id(), parent=response)
        xml = self._sign(response, assertion=assertion, portal=portal, encrypt_to=encrypt_to)
        self.s.sessions.add_portal(session, portal.entity_id, subject=(nameid, facts.nameid_format),
                                   key=login.key, level=login.level)
        self.s.audit.record("sso.reuse" if reused else "saml.response", portal=portal.entity_id,
                            person_fedid=person.fedid, key=login.key, level=login.level,
                            request_id=request.request_id, signed_request=request.signed,
                            encrypted=encrypt_to is not None)
        return PostForm(request.acs_url, encode_post(xml), relay_state)

    def respond_error(self, *, request: AuthnRequestData, portal, error: errors.SesameError,
                      relay_state: str | None) -> PostForm:
        """A signed error status, only ever to a consumer URL the registry vouches for."""
        _, response = response_tree(
            idp_entity_id=self.s.settings.entity_id, acs_url=request.acs_url,
            in_response_to=request.request_id, now=self.s.clock.now(),
            status=error.saml_top, sub_status=error.saml_status)
        xml = self._sign(response, portal=portal)
        self.s.audit.record("saml.response", result=error.code, portal=portal.entity_id,
                            request_id=request.request_id)
        return PostForm(request.acs_url, encode_post(xml), relay_state)


def metadata_details(settings) -> dict:
    """What our metadata says of us besides keys and endpoints: the organization, the
    contacts (``[saml] contact_*_email``) and the mdui display names, in every language
    the pages speak, with the help and privacy pages (``[operator]``)."""
    conf, operator = settings["saml"], settings["operator"]
    base = settings.base_url
    contacts = [(kind, f"{operator['name']} ({kind})", conf[f"contact_{kind}_email"])
                for kind in ("technical", "support") if conf[f"contact_{kind}_email"]]
    return {"organization": conf["organization"], "contacts": contacts,
            "ui_info": {"display_names": {lang: operator["name"] for lang in settings.languages},
                        "information_url": f"{base}/help",
                        "privacy_url": operator["privacy_url"] or f"{base}/privacy"}}


def nameid_format(*, requested: str | None, policy, portal: str) -> str:
    """The NameID format a portal is answered in (SAML core §3.4.1.1, §8.3).

    No format requested, or ``unspecified``: the policy's.  The policy's own
    format: granted.  ``emailAddress``: granted whatever the policy's format
    when the policy releases ``mail``, since that NameID is the ``mail``
    attribute under another name.  Anything else, and an ``email`` policy that
    does not release ``mail`` (``metadata.policy`` refuses to store one),
    raises ``InvalidNameIdPolicy``.  Whether the person has an address is
    known only after the login (``SsoService.respond``).
    """
    releases_mail = "mail" in policy.attributes
    own = NAMEID_FORMATS[policy.nameid_format]
    chosen = own if requested in (None, NAMEID_UNSPECIFIED) else requested
    if chosen == NAMEID_EMAIL and not releases_mail:
        raise errors.InvalidNameIdPolicy(f"{portal} asks for an e-mail NameID; its policy does not release mail")
    if chosen not in (own, NAMEID_EMAIL):
        raise errors.InvalidNameIdPolicy(f"{str(requested)[:200]} not released to {portal}")
    return chosen


def email_address(value: str | None) -> str | None:
    """An address usable as an ``emailAddress`` NameID (an addr-spec, SAML core §8.3.2), else ``None``."""
    value = (value or "").strip()
    local, at, domain = value.rpartition("@")
    if not (local and at and domain) or any(c.isspace() for c in value):
        return None
    return value


def can_reach(adapter, min_level: int, requirement, scale) -> bool:
    """Whether some level of the scale in the key's range meets the portal's
    minimum and the request (a variable-level key may reach several)."""
    low, high = adapter.levels
    return any(low <= level <= high and level >= min_level and requirement.accepts(level, adapter.id)
               for level in scale)

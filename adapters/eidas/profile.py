"""The eIDAS SAML profile, as Sésame's service provider side speaks it: pure
protocol logic, no Flask, no store, no clock of its own.

References (eIDAS Technical Specifications v1.2): *eIDAS SAML Message Format*
(the ``AuthnRequest`` with its ``eidas:SPType`` and ``eidas:RequestedAttributes``
extensions, ``RequestedAuthnContext`` with comparison ``minimum``, the
``Response`` signed and its assertion encrypted), *eIDAS SAML Attribute
Profile* (the natural-person attributes, URI names) and *eIDAS Cryptographic
Requirements* (see docs/eidas.md for what Sésame's libraries allow).

Messages are built and read with lxml directly rather than pysaml2's classes:
pysaml2 has no schema for the eIDAS extensions and would re-serialize what it
parses; here every signature is made through ``keys.Signer`` and checked
with ``keys.verify_xml``, and data is read only from the tree that
``verify_xml`` returns (the anti-wrapping rule of ``keys.xmldsig``: exactly
one signature, on the root, referencing the root's ``ID``).
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from lxml import etree

from keys import DecryptionError, SignatureError, decrypt_element, parse_safe_xml, verify_xml

SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
EIDAS_NS = "http://eidas.europa.eu/saml-extensions"
NATURAL_NS = "http://eidas.europa.eu/attributes/naturalperson"
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

_S, _P, _E = "{%s}" % SAML_NS, "{%s}" % SAMLP_NS, "{%s}" % EIDAS_NS

# eIDAS levels of assurance (Implementing Regulation 2015/1502), weakest first.
LOA_PREFIX = "http://eidas.europa.eu/LoA/"
LOA_NAMES = ("low", "substantial", "high")
LOA = {name: LOA_PREFIX + name for name in LOA_NAMES}

# The natural-person attributes (Attribute Profile §2.2): the four of the minimum data set are mandatory.
PERSON_IDENTIFIER = NATURAL_NS + "/PersonIdentifier"
FAMILY_NAME = NATURAL_NS + "/CurrentFamilyName"
GIVEN_NAME = NATURAL_NS + "/CurrentGivenName"
DATE_OF_BIRTH = NATURAL_NS + "/DateOfBirth"
MANDATORY = (PERSON_IDENTIFIER, FAMILY_NAME, GIVEN_NAME, DATE_OF_BIRTH)
OPTIONAL = {name: NATURAL_NS + "/" + name for name in ("BirthName", "PlaceOfBirth", "CurrentAddress", "Gender")}
FRIENDLY = {PERSON_IDENTIFIER: "PersonIdentifier", FAMILY_NAME: "FamilyName", GIVEN_NAME: "FirstName",
            DATE_OF_BIRTH: "DateOfBirth", **{uri: name for name, uri in OPTIONAL.items()}}

# Status codes (SAML core §3.2.2.2) the citizen's message depends on.
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"

# "CC/CC/identifier" (Attribute Profile §2.2.3): the citizen's country, then the receiving country.
IDENTIFIER = re.compile(r"^([A-Z]{2})/([A-Z]{2})/([^\s/][^\s]{0,255})$")


class Refused(Exception):
    """The node's answer cannot be accepted.  ``code`` chooses the citizen's
    message (``adapters.eidas.key``), ``result`` names the audit result,
    ``detail`` is for the logs only."""

    def __init__(self, code: str, result: str, detail: str = "") -> None:
        super().__init__(f"{result}: {detail}")
        self.code, self.result, self.detail = code, result, detail[:200]


REFUSED, CANCELLED, FAILED = "eidas_refused", "eidas_cancelled", "eidas_failed"


# --- the request -----------------------------------------------------------------------
def loa_for(min_level: int, table: Mapping[str, int]) -> str:
    """The weakest eIDAS level whose Sésame level meets ``min_level`` (comparison
    ``minimum`` then lets the node do better); ``high`` when none does."""
    for name in LOA_NAMES:
        if table[name] >= min_level:
            return name
    return "high"


def saml_instant(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def authn_request(*, request_id: str, now: float, destination: str, issuer: str, acs_url: str, loa: str,
                  force_authn: bool, sp_type: str, optional: Sequence[str] = (),
                  provider_name: str = "") -> etree._Element:
    """An unsigned eIDAS ``AuthnRequest`` (Message Format §3.1); the caller signs it
    (``Signer.sign_element``: the signature goes right after ``saml:Issuer``)."""
    root = etree.Element(_P + "AuthnRequest", nsmap={"saml2p": SAMLP_NS, "saml2": SAML_NS, "eidas": EIDAS_NS})
    root.set("ID", request_id)
    root.set("Version", "2.0")
    root.set("IssueInstant", saml_instant(now))
    root.set("Destination", destination)
    root.set("AssertionConsumerServiceURL", acs_url)
    root.set("ProtocolBinding", POST_BINDING)
    root.set("ForceAuthn", "true" if force_authn else "false")
    root.set("IsPassive", "false")
    if provider_name:
        root.set("ProviderName", provider_name)
    issuer_element = etree.SubElement(root, _S + "Issuer")
    issuer_element.set("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:entity")
    issuer_element.text = issuer
    extensions = etree.SubElement(root, _P + "Extensions")
    etree.SubElement(extensions, _E + "SPType").text = sp_type
    requested = etree.SubElement(extensions, _E + "RequestedAttributes")
    for uri in (*MANDATORY, *(OPTIONAL[name] for name in optional)):
        etree.SubElement(requested, _E + "RequestedAttribute", Name=uri, NameFormat=URI_FORMAT,
                         FriendlyName=FRIENDLY[uri], isRequired="true" if uri in MANDATORY else "false")
    etree.SubElement(root, _P + "NameIDPolicy", Format=UNSPECIFIED, AllowCreate="true")
    context = etree.SubElement(root, _P + "RequestedAuthnContext", Comparison="minimum")
    etree.SubElement(context, _S + "AuthnContextClassRef").text = LOA[loa]
    return root


# --- the response ------------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    """What the response must match: ours and the request's."""

    request_id: str        # the ID of the request this journey sent
    node_entity_id: str    # the node's Issuer
    sp_entity_id: str      # our entity ID: the assertion's audience
    acs_url: str           # our return endpoint: Destination and Recipient
    certificates: Sequence[bytes]
    now: float
    skew: int = 60
    max_age: int = 600     # an assertion issued (or a login made) longer ago is refused


@dataclass(frozen=True)
class NodeAnswer:
    """A checked, successful answer of the node."""

    assertion_id: str
    not_on_or_after: float         # how long its ID must be remembered (replay)
    issuer: str
    loa: str                       # low, substantial or high
    identifier: str                # PersonIdentifier, "CC/BE/..."
    attributes: Mapping[str, str] = field(default_factory=dict)  # attribute URI -> first value
    authn_instant: float = 0.0


def status_of(xml: bytes, *, certificates: Sequence[bytes]) -> tuple[etree._Element, str, str]:
    """The verified ``Response`` and its top-level and second-level status codes.

    eIDAS nodes sign every ``Response`` (Message Format §4.2), errors included:
    the signature is checked here, on the whole message, before anything in it
    is believed.  Exactly one signature is accepted in the document (``verify_xml``),
    so the assertion's own signature must be inside its encryption.
    """
    # eIDAS assertions are always encrypted (Message Format §4.3); said plainly, before the
    # signature check would refuse the document for its two signatures.
    try:
        unverified = parse_safe_xml(xml)
    except SignatureError as exc:
        raise Refused(REFUSED, exc.code, exc.reason) from None
    if unverified.find(_S + "Assertion") is not None:
        raise Refused(REFUSED, "not_encrypted", "a plain assertion")
    try:
        root = verify_xml(xml, certificates=list(certificates))
    except SignatureError as exc:
        raise Refused(REFUSED, exc.code, exc.reason) from None
    if root.tag != _P + "Response":
        raise Refused(REFUSED, "not_a_response", str(root.tag)[:80])
    top = root.find(f"{_P}Status/{_P}StatusCode")
    if top is None or not top.get("Value"):
        raise Refused(REFUSED, "malformed", "no StatusCode")
    second = top.find(_P + "StatusCode")
    return root, top.get("Value"), second.get("Value", "") if second is not None else ""


def error_for(status: str, second: str) -> Refused:
    """The refusal an error status stands for (the citizen cancelled, or authentication failed)."""
    if second == REQUEST_DENIED:
        return Refused(CANCELLED, "cancelled", f"{status} {second}")
    if second in (AUTHN_FAILED, NO_AUTHN_CONTEXT):
        return Refused(FAILED, "authn_failed", f"{status} {second}")
    return Refused(FAILED, "error_status", f"{status} {second}"[:200])


def read_assertion(response: etree._Element, expected: Expected, decryption_key) -> NodeAnswer:
    """The checked assertion of a verified, successful ``response``.

    The assertion is decrypted, then verified *on its own* (its plaintext as one
    document): the tree read afterwards is the one its signature covers, nothing
    around it.  Then the SAML web-browser SSO profile's checks (profiles §4.1.4.3)
    and eIDAS's: Issuer, Destination, InResponseTo, Recipient, Audience, times,
    the level and the mandatory attributes.
    """
    if response.get("Destination") != expected.acs_url:
        raise Refused(REFUSED, "wrong_destination", str(response.get("Destination"))[:120])
    if _text(response.find(_S + "Issuer")) != expected.node_entity_id:
        raise Refused(REFUSED, "wrong_issuer", _text(response.find(_S + "Issuer"))[:120])
    encrypted = [c for c in response if c.tag == _S + "EncryptedAssertion"]
    if len(encrypted) != 1 or response.find(_S + "Assertion") is not None:
        raise Refused(REFUSED, "malformed", f"{len(encrypted)} encrypted assertions (exactly one, nothing else)")
    try:
        assertion_xml = decrypt_element(encrypted[0], decryption_key)
    except DecryptionError as exc:
        raise Refused(REFUSED, "undecryptable", exc.reason) from None
    try:
        assertion = verify_xml(assertion_xml, certificates=list(expected.certificates))
    except SignatureError as exc:
        raise Refused(REFUSED, f"assertion_{exc.code}", exc.reason) from None
    if assertion.tag != _S + "Assertion":
        raise Refused(REFUSED, "malformed", "the encrypted element is not an assertion")
    return _check_assertion(assertion, expected)


def _check_assertion(assertion: etree._Element, expected: Expected) -> NodeAnswer:
    now, skew = expected.now, expected.skew
    if _text(assertion.find(_S + "Issuer")) != expected.node_entity_id:
        raise Refused(REFUSED, "wrong_issuer", "assertion issuer")
    issued = _instant(assertion.get("IssueInstant"))
    if issued > now + skew or issued < now - expected.max_age - skew:
        raise Refused(REFUSED, "expired", f"IssueInstant {assertion.get('IssueInstant')}")
    # Subject confirmation (profiles §4.1.4.2): bearer, to our endpoint, for our request, in time.
    confirmed = False
    keep_until = now
    for confirmation in assertion.iterfind(f"{_S}Subject/{_S}SubjectConfirmation"):
        data = confirmation.find(_S + "SubjectConfirmationData")
        if confirmation.get("Method") != BEARER or data is None:
            continue
        until = _instant(data.get("NotOnOrAfter"))
        if (data.get("Recipient") == expected.acs_url and data.get("InResponseTo") == expected.request_id
                and now - skew < until and data.get("NotBefore") is None):
            confirmed, keep_until = True, max(keep_until, until)
    if not confirmed:
        raise Refused(REFUSED, "unconfirmed_subject", "no bearer confirmation for our endpoint and request")
    conditions = assertion.find(_S + "Conditions")
    if conditions is None:
        raise Refused(REFUSED, "malformed", "no Conditions")
    not_before, not_after = conditions.get("NotBefore"), conditions.get("NotOnOrAfter")
    if not_before is not None and _instant(not_before) > now + skew:
        raise Refused(REFUSED, "not_yet_valid", f"NotBefore {not_before}")
    if not_after is None or _instant(not_after) <= now - skew:
        raise Refused(REFUSED, "expired", f"NotOnOrAfter {not_after}")
    keep_until = max(keep_until, _instant(not_after))
    restrictions = conditions.findall(_S + "AudienceRestriction")
    if not restrictions or any(expected.sp_entity_id not in [_text(a) for a in r.findall(_S + "Audience")]
                               for r in restrictions):
        raise Refused(REFUSED, "wrong_audience", "we are not in every AudienceRestriction")
    statements = assertion.findall(_S + "AuthnStatement")
    if len(statements) != 1:
        raise Refused(REFUSED, "malformed", f"{len(statements)} AuthnStatements")
    class_ref = _text(statements[0].find(f"{_S}AuthnContext/{_S}AuthnContextClassRef"))
    loa = class_ref[len(LOA_PREFIX):] if class_ref.startswith(LOA_PREFIX) else ""
    if loa not in LOA_NAMES:
        raise Refused(REFUSED, "unknown_loa", class_ref[:120])
    authn_instant = _instant(statements[0].get("AuthnInstant"))
    if authn_instant > now + skew or authn_instant < now - expected.max_age - skew:
        raise Refused(REFUSED, "expired", "AuthnInstant")
    values: dict[str, str] = {}
    for attribute in assertion.iterfind(f"{_S}AttributeStatement/{_S}Attribute"):
        name = attribute.get("Name", "")
        value = attribute.find(_S + "AttributeValue")
        if name in values or value is None:
            continue
        values[name] = (value.text or "").strip()[:300]
    missing = [FRIENDLY[uri] for uri in MANDATORY if not values.get(uri)]
    if missing:
        raise Refused(REFUSED, "missing_attribute", ", ".join(missing))
    identifier = values[PERSON_IDENTIFIER]
    if not IDENTIFIER.match(identifier):
        raise Refused(REFUSED, "bad_identifier", "PersonIdentifier is not CC/CC/identifier")
    try:
        dt.date.fromisoformat(values[DATE_OF_BIRTH])
    except ValueError:
        raise Refused(REFUSED, "bad_attribute", "DateOfBirth is not an ISO date") from None
    if not assertion.get("ID"):
        raise Refused(REFUSED, "malformed", "assertion without ID")
    return NodeAnswer(assertion_id=assertion.get("ID"), not_on_or_after=keep_until,
                      issuer=expected.node_entity_id, loa=loa, identifier=identifier, attributes=values,
                      authn_instant=authn_instant)


def _text(element) -> str:
    return (element.text or "").strip() if element is not None else ""


_INSTANT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z$")


def _instant(value: str | None) -> float:
    """A SAML ``dateTime`` in UTC (SAML core §1.3.3) as epoch seconds; ``Refused`` for anything else."""
    found = _INSTANT.match(value or "")
    if not found:
        raise Refused(REFUSED, "malformed", f"time {str(value)[:40]!r}")
    parts = [int(p) for p in found.groups()[:6]]
    try:
        dt.datetime(*parts)
    except ValueError:
        raise Refused(REFUSED, "malformed", f"time {value[:40]!r}") from None
    return calendar.timegm((*parts, 0, 0, 0)) + float(found[7] or 0)


__all__ = ["Expected", "NodeAnswer", "Refused", "authn_request", "error_for", "loa_for",
           "read_assertion", "status_of"]

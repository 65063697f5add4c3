"""Building ``Response`` messages (SAML core §3.2.2, §2.3-2.7; profiles §4.1.4.2).

The XML is built once as an lxml tree (no pysaml2 element classes, no
serialise/parse cycles): the caller signs on that tree (``keys`` signer,
in-process) and serialises it once.  Pure: every value comes in as a keyword
argument; text and attribute values are escaped by lxml.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Mapping, Sequence

from lxml import etree

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
# Standard URI names of the profile's attributes (X.500/LDAP OIDs as in eduPerson and
# the SAML V2.0 X.500/LDAP attribute profile; the eIDAS natural-person identifier).
# egovNRN, fedid and authenticationMethod have none: they keep their FAS name.
URI_NAMES = {
    "surname": "urn:oid:2.5.4.4",
    "givenName": "urn:oid:2.5.4.42",
    "mail": "urn:oid:0.9.2342.19200300.100.1.3",
    "PrefLanguage": "urn:oid:2.16.840.1.113730.3.1.39",
    "birthDate": "urn:oid:1.3.6.1.5.5.7.9.1",
    "eidasIdentifier": "http://eidas.europa.eu/attributes/naturalperson/PersonIdentifier",
}
NAMEID_ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XS_NS = "http://www.w3.org/2001/XMLSchema"
_A = "{%s}" % SAML_NS
_P = "{%s}" % SAMLP_NS
_XSI_TYPE = "{%s}type" % XSI_NS
# Declared once on the root, as pysaml2 did (xs on each AttributeValue, where its xsi:type names it).
_RESPONSE_NSMAP = {"samlp": SAMLP_NS, "saml": SAML_NS, "xsi": XSI_NS}
_ASSERTION_NSMAP = {"saml": SAML_NS, "xsi": XSI_NS}
_XS_NSMAP = {"xs": XS_NS}
_sub = etree.SubElement


def new_id() -> str:
    """An xs:ID with 160 bits of randomness (SAML core §1.3.4)."""
    return "_" + secrets.token_hex(20)


def instant(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AssertionFacts:
    """Everything an assertion states about one login, for one portal."""

    nameid: str
    nameid_format: str
    attributes: Mapping[str, Sequence[str]]
    authn_instant: float
    session_index: str
    context_class: str
    authenticating_authority: str | None = None
    session_not_on_or_after: float | None = None  # the SSO session's absolute end (SAML core §2.7.2)
    attribute_names: str = "fas"  # "fas", "uri" or "both" (metadata.policy.AttributeNames)


def _issuer(parent, entity_id: str) -> None:
    _sub(parent, _A + "Issuer", Format=NAMEID_ENTITY).text = entity_id


def build_assertion(*, idp_entity_id: str, sp_entity_id: str, acs_url: str, in_response_to: str,
                    facts: AssertionFacts, now: float, lifetime: int, skew: int,
                    assertion_id: str, parent: etree._Element | None = None) -> etree._Element:
    """The ``saml:Assertion`` element, unsigned; appended to ``parent`` when given."""
    not_on_or_after = instant(now + lifetime)
    attrs = {"Version": "2.0", "ID": assertion_id, "IssueInstant": instant(now)}
    if parent is None:
        assertion = etree.Element(_A + "Assertion", attrs, nsmap=_ASSERTION_NSMAP)
    else:
        assertion = _sub(parent, _A + "Assertion", attrs)
    _issuer(assertion, idp_entity_id)
    subject = _sub(assertion, _A + "Subject")
    _sub(subject, _A + "NameID", NameQualifier=idp_entity_id, SPNameQualifier=sp_entity_id,
         Format=facts.nameid_format).text = facts.nameid
    confirmation = _sub(subject, _A + "SubjectConfirmation", Method=BEARER)
    _sub(confirmation, _A + "SubjectConfirmationData", NotOnOrAfter=not_on_or_after, Recipient=acs_url,
         InResponseTo=in_response_to)
    conditions = _sub(assertion, _A + "Conditions", NotBefore=instant(now - skew), NotOnOrAfter=not_on_or_after)
    _sub(_sub(conditions, _A + "AudienceRestriction"), _A + "Audience").text = sp_entity_id
    statement = _sub(assertion, _A + "AuthnStatement", AuthnInstant=instant(facts.authn_instant),
                     SessionIndex=facts.session_index)
    if facts.session_not_on_or_after is not None:
        statement.set("SessionNotOnOrAfter", instant(facts.session_not_on_or_after))
    context = _sub(statement, _A + "AuthnContext")
    _sub(context, _A + "AuthnContextClassRef").text = facts.context_class
    if facts.authenticating_authority:
        _sub(context, _A + "AuthenticatingAuthority").text = facts.authenticating_authority
    if facts.attributes:
        attribute_statement = _sub(assertion, _A + "AttributeStatement")
        for name, values in facts.attributes.items():
            uri = URI_NAMES.get(name) if facts.attribute_names != "fas" else None
            if uri is None or facts.attribute_names == "both":
                attribute = _sub(attribute_statement, _A + "Attribute", Name=name, NameFormat=ATTRNAME_BASIC)
                for value in values:
                    _sub(attribute, _A + "AttributeValue", {_XSI_TYPE: "xs:string"}, nsmap=_XS_NSMAP).text = str(value)
            if uri is not None:
                attribute = _sub(attribute_statement, _A + "Attribute", Name=uri, NameFormat=ATTRNAME_URI,
                                 FriendlyName=name)
                for value in values:
                    _sub(attribute, _A + "AttributeValue", {_XSI_TYPE: "xs:string"},
                         nsmap=_XS_NSMAP).text = _uri_value(name, str(value))
    return assertion


def _uri_value(name: str, value: str) -> str:
    """dateOfBirth is a GeneralizedTime (RFC 3739 §3.2.2): 1985-03-14 is 19850314000000Z."""
    if name == "birthDate" and len(value) == 10:
        return value.replace("-", "") + "000000Z"
    return value


def response_tree(*, idp_entity_id: str, acs_url: str, in_response_to: str, now: float,
                  status: str = STATUS_SUCCESS, sub_status: str | None = None, message: str | None = None,
                  response_id: str | None = None) -> tuple[str, etree._Element]:
    """A ``samlp:Response`` element without assertion; ``build_assertion(parent=...)`` adds one."""
    response_id = response_id or new_id()
    response = etree.Element(_P + "Response", {
        "ID": response_id, "InResponseTo": in_response_to, "Version": "2.0", "IssueInstant": instant(now),
        "Destination": acs_url}, nsmap=_RESPONSE_NSMAP)
    _issuer(response, idp_entity_id)
    status_element = _sub(response, _P + "Status")
    code = _sub(status_element, _P + "StatusCode", Value=status)
    if sub_status:
        _sub(code, _P + "StatusCode", Value=sub_status)
    if message:
        _sub(status_element, _P + "StatusMessage").text = message
    return response_id, response


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def build_response(*, idp_entity_id: str, acs_url: str, in_response_to: str, now: float,
                   assertion: etree._Element | None = None, status: str = STATUS_SUCCESS,
                   sub_status: str | None = None, message: str | None = None,
                   response_id: str | None = None) -> tuple[str, bytes]:
    """A ``Response`` with one assertion, or an error status and none.

    Returns ``(response_id, xml)``; ``xml`` is unsigned.
    """
    response_id, response = response_tree(idp_entity_id=idp_entity_id, acs_url=acs_url,
                                          in_response_to=in_response_to, now=now, status=status,
                                          sub_status=sub_status, message=message, response_id=response_id)
    if assertion is not None:
        response.append(assertion)
    return response_id, serialize(response)

"""Building ``Response`` messages (SAML core §3.2.2, §2.3-2.7; profiles §4.1.4.2).

pysaml2's element classes build the XML; signing is the caller's (``keys``
signer, in-process).  Pure: every value comes in as a keyword argument.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Mapping, Sequence

from saml2 import saml, samlp

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
NAMEID_ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"


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


def _issuer(entity_id: str) -> saml.Issuer:
    return saml.Issuer(text=entity_id, format=NAMEID_ENTITY)


def _attribute_statement(attributes: Mapping[str, Sequence[str]]) -> saml.AttributeStatement | None:
    if not attributes:
        return None
    return saml.AttributeStatement(attribute=[
        saml.Attribute(
            name=name, name_format=ATTRNAME_BASIC,
            attribute_value=[saml.AttributeValue(text=str(v)) for v in values],
        )
        for name, values in attributes.items()
    ])


def build_assertion(*, idp_entity_id: str, sp_entity_id: str, acs_url: str, in_response_to: str,
                    facts: AssertionFacts, now: float, lifetime: int, skew: int,
                    assertion_id: str) -> saml.Assertion:
    not_on_or_after = instant(now + lifetime)
    return saml.Assertion(
        id=assertion_id, version="2.0", issue_instant=instant(now),
        issuer=_issuer(idp_entity_id),
        subject=saml.Subject(
            name_id=saml.NameID(text=facts.nameid, format=facts.nameid_format,
                                sp_name_qualifier=sp_entity_id, name_qualifier=idp_entity_id),
            subject_confirmation=[saml.SubjectConfirmation(
                method=BEARER,
                subject_confirmation_data=saml.SubjectConfirmationData(
                    in_response_to=in_response_to, recipient=acs_url, not_on_or_after=not_on_or_after),
            )],
        ),
        conditions=saml.Conditions(
            not_before=instant(now - skew), not_on_or_after=not_on_or_after,
            audience_restriction=[saml.AudienceRestriction(audience=[saml.Audience(text=sp_entity_id)])],
        ),
        authn_statement=[saml.AuthnStatement(
            authn_instant=instant(facts.authn_instant), session_index=facts.session_index,
            authn_context=saml.AuthnContext(
                authn_context_class_ref=saml.AuthnContextClassRef(text=facts.context_class),
                authenticating_authority=(
                    [saml.AuthenticatingAuthority(text=facts.authenticating_authority)]
                    if facts.authenticating_authority else None),
            ),
        )],
        attribute_statement=_attribute_statement(facts.attributes),
    )


def build_response(*, idp_entity_id: str, acs_url: str, in_response_to: str, now: float,
                   assertion: saml.Assertion | None = None, status: str = STATUS_SUCCESS,
                   sub_status: str | None = None, message: str | None = None,
                   response_id: str | None = None) -> tuple[str, bytes]:
    """A ``Response`` with one assertion, or an error status and none.

    Returns ``(response_id, xml)``; ``xml`` is unsigned.
    """
    response_id = response_id or new_id()
    code = samlp.StatusCode(value=status,
                            status_code=samlp.StatusCode(value=sub_status) if sub_status else None)
    response = samlp.Response(
        id=response_id, version="2.0", issue_instant=instant(now), destination=acs_url,
        in_response_to=in_response_to, issuer=_issuer(idp_entity_id),
        status=samlp.Status(status_code=code,
                            status_message=samlp.StatusMessage(text=message) if message else None),
        assertion=[assertion] if assertion is not None else None,
    )
    return response_id, response.to_string()

"""Single logout, the portal-initiated half (SAML core §3.7, profiles §4.4).

A ``LogoutRequest`` must be signed (profiles §4.4.4.1); Sésame ends the SSO
session and answers a signed ``LogoutResponse`` at the portal's own
``SingleLogoutService``.  Pure logic; the view sends the answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from saml2 import samlp

from idp import errors
from idp.saml.authn_request import NS, check_instant, decode_and_parse, verify_signature
from idp.saml.bindings import BINDING_POST, BINDING_REDIRECT, BINDING_SOAP
from idp.saml.response import NAMEID_ENTITY, STATUS_SUCCESS, instant, new_id

LOGOUT_REQUEST_TAG = f"{{{NS['samlp']}}}LogoutRequest"
LOGOUT_RESPONSE_TAG = f"{{{NS['samlp']}}}LogoutResponse"
STATUS_PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"


@dataclass(frozen=True)
class LogoutRequestData:
    request_id: str
    issuer: str
    nameid: str | None
    session_index: str | None


@dataclass(frozen=True)
class LogoutAnswer:
    """Where and how to send the ``LogoutResponse``."""

    binding: str
    location: str


def _issuer_portal(root, registry):
    issuer_el = root.find("saml:Issuer", NS)
    issuer = (issuer_el.text or "").strip() if issuer_el is not None else ""
    portal = registry.get(issuer) if issuer else None
    if portal is None:
        raise errors.UnknownPortal(f"unknown portal {issuer[:200]!r}")
    return issuer, portal


def read_logout_request(*, binding: str, message: str, raw_query: str | None, registry, slo_urls: tuple[str, ...],
                        now: float, max_bytes: int, max_age: int, skew: int) -> tuple[LogoutRequestData, Any, LogoutAnswer]:
    xml, root = decode_and_parse(binding=binding, message=message, max_bytes=max_bytes)
    if root.tag != LOGOUT_REQUEST_TAG or root.get("Version") != "2.0" or not root.get("ID"):
        raise errors.MalformedRequest("not a SAML 2.0 LogoutRequest")
    issuer, portal = _issuer_portal(root, registry)
    verify_signature(binding=binding, xml=xml, root=root, raw_query=raw_query, portal=portal, required=True)
    destination = root.get("Destination")
    if destination is None or destination not in slo_urls:
        raise errors.WrongDestination(f"Destination {str(destination)[:200]!r} is not this identity provider")
    check_instant(root.get("IssueInstant"), now=now, max_age=max_age, skew=skew)
    answer = logout_endpoint(portal, prefer=binding)
    if answer is None:
        raise errors.UnknownConsumer(f"{portal.entity_id} lists no SingleLogoutService")
    nameid = root.find("saml:NameID", NS)
    index = root.find("samlp:SessionIndex", NS)
    return (LogoutRequestData(request_id=root.get("ID"), issuer=issuer,
                              nameid=nameid.text if nameid is not None else None,
                              session_index=index.text if index is not None else None), portal, answer)


def logout_endpoint(portal, *, prefer: str = BINDING_POST) -> LogoutAnswer | None:
    """The portal's logout endpoint: the request's binding when the portal has it,
    else HTTP-POST, else HTTP-Redirect (metadata §2.2.2: ResponseLocation first)."""
    by_binding = {e.binding: e for e in portal.metadata.slo}
    for binding in (prefer, BINDING_POST, BINDING_REDIRECT):
        endpoint = by_binding.get(binding)
        if endpoint is not None:
            return LogoutAnswer(binding, endpoint.response_location or endpoint.location)
    return None


def build_logout_response(*, idp_entity_id: str, destination: str, in_response_to: str, now: float,
                          status: str = STATUS_SUCCESS, sub_status: str | None = None) -> tuple[str, bytes]:
    """``sub_status`` PartialLogout under Success when a participant was not logged out
    (SAML core §3.2.2.2, §3.7.3.2)."""
    response_id = new_id()
    response = samlp.LogoutResponse(
        id=response_id, version="2.0", issue_instant=instant(now), destination=destination,
        in_response_to=in_response_to,
        issuer=samlp.saml.Issuer(text=idp_entity_id, format=NAMEID_ENTITY),
        status=samlp.Status(status_code=samlp.StatusCode(
            value=status, status_code=samlp.StatusCode(value=sub_status) if sub_status else None)),
    )
    return response_id, response.to_string()


@dataclass(frozen=True)
class LogoutResponseData:
    in_response_to: str
    issuer: str
    success: bool


def read_logout_response(*, binding: str, message: str, raw_query: str | None, registry,
                         slo_urls: tuple[str, ...], now: float, max_bytes: int, max_age: int,
                         skew: int) -> LogoutResponseData:
    """A portal's answer to our ``LogoutRequest``: signed (profiles §4.4.4.2), for us."""
    xml, root = decode_and_parse(binding=binding, message=message, max_bytes=max_bytes)
    if root.tag != LOGOUT_RESPONSE_TAG or root.get("Version") != "2.0" or not root.get("InResponseTo"):
        raise errors.MalformedRequest("not a SAML 2.0 LogoutResponse to a request")
    if len(root.get("InResponseTo")) > 256:  # ours are short; it becomes a store key
        raise errors.MalformedRequest("LogoutResponse InResponseTo too long")
    issuer, portal = _issuer_portal(root, registry)
    verify_signature(binding=binding, xml=xml, root=root, raw_query=raw_query, portal=portal, required=True)
    destination = root.get("Destination")
    # Optional on the back channel, where the answer comes on our own connection (bindings §3.2.3.3);
    # pysaml2 sends it empty there.
    if destination not in slo_urls and not (binding == BINDING_SOAP and not destination):
        raise errors.WrongDestination(f"LogoutResponse Destination {str(destination)[:200]!r} is not this "
                                      "identity provider")
    check_instant(root.get("IssueInstant"), now=now, max_age=max_age, skew=skew)
    code = root.find("samlp:Status/samlp:StatusCode", NS)
    return LogoutResponseData(in_response_to=root.get("InResponseTo"), issuer=issuer,
                              success=code is not None and code.get("Value") == STATUS_SUCCESS)


def build_logout_request(*, idp_entity_id: str, destination: str, sp_entity_id: str, nameid: str,
                         nameid_format: str, session_index: str, now: float, lifetime: int) -> tuple[str, bytes]:
    """Sésame's ``LogoutRequest`` to one portal of the session (SAML core §3.7.1)."""
    request_id = new_id()
    request = samlp.LogoutRequest(
        id=request_id, version="2.0", issue_instant=instant(now), destination=destination,
        not_on_or_after=instant(now + lifetime),
        issuer=samlp.saml.Issuer(text=idp_entity_id, format=NAMEID_ENTITY),
        name_id=samlp.saml.NameID(text=nameid, format=nameid_format, sp_name_qualifier=sp_entity_id,
                                  name_qualifier=idp_entity_id),
        session_index=[samlp.SessionIndex(text=session_index)],
    )
    return request_id, request.to_string()

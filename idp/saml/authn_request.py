"""Reading and checking an ``AuthnRequest`` (DESIGN.md §1 step 2; SAML core §3.4,
bindings §3.4-3.5, profiles §4.1.4.1).

Pure logic over the portal registry: decode, parse without DTDs, verify the
signature with the portal's metadata keys only, resolve the assertion consumer
service from metadata only, check ``Destination`` and ``IssueInstant``.  The
replay check (request ID never seen before) is made by the caller against the
state store, after everything else passed.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from keys import errors as sigerr
from keys.redirect import verify_query
from keys.xmldsig import parse_safe_xml, verify_xml

from idp import errors
from idp.saml.bindings import BINDING_POST, BINDING_REDIRECT, BINDING_SOAP, decode_post, decode_redirect

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
AUTHN_REQUEST_TAG = f"{{{NS['samlp']}}}AuthnRequest"
NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
# A policy's nameid_format (metadata.policy.NameIdFormat) and the URI it stands for.
NAMEID_FORMATS = {"transient": NAMEID_TRANSIENT, "persistent": NAMEID_PERSISTENT, "email": NAMEID_EMAIL}


@dataclass(frozen=True)
class AuthnRequestData:
    """What Sésame keeps of a checked request in the login transaction."""

    request_id: str
    issuer: str
    acs_url: str
    destination: str | None
    issue_instant: float
    force_authn: bool
    is_passive: bool
    nameid_format: str | None
    context_refs: tuple[str, ...]
    comparison: str | None
    signed: bool

    def to_mapping(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "AuthnRequestData":
        return cls(**{**data, "context_refs": tuple(data["context_refs"])})


def parse_instant(value: str | None) -> float:
    if not value:
        raise errors.MalformedRequest("IssueInstant missing")
    try:
        stamp = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise errors.MalformedRequest(f"IssueInstant not a dateTime: {value!r}") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def _bool(value: str | None) -> bool:
    return (value or "").strip() in ("true", "1")


def _issuer_of(root) -> str:
    issuer = root.find("saml:Issuer", NS)
    if issuer is None or not (issuer.text or "").strip():
        raise errors.MalformedRequest("Issuer missing")
    return issuer.text.strip()


def verify_signature(*, binding: str, xml: bytes, root, raw_query: str | None, portal,
                     required: bool) -> bool:
    """Verify the signature when there is one; demand one when ``required``.

    Returns whether the message was signed.  Keys come from metadata only.
    """
    certs = list(portal.metadata.signing_certs)
    has_xml_sig = root.find(".//ds:Signature", NS) is not None
    has_query_sig = binding == BINDING_REDIRECT and raw_query is not None and "Signature=" in raw_query
    if not (has_xml_sig or has_query_sig):
        if required:
            raise errors.SignatureRequired(f"{portal.entity_id} must sign its requests")
        return False
    if not certs:
        raise errors.BadSignature(f"{portal.entity_id} has no signing certificate in its metadata")
    try:
        if has_query_sig:
            verify_query(raw_query=raw_query, certificates=certs)
        if has_xml_sig:
            verify_xml(xml, certificates=certs)
    except sigerr.SignatureError as exc:
        raise errors.BadSignature(getattr(exc, "reason", str(exc))) from exc
    return True


def resolve_acs(*, root, portal) -> str:
    """The consumer URL, taken from the portal's metadata only (profiles §4.1.4.1)."""
    meta = portal.metadata
    index = root.get("AssertionConsumerServiceIndex")
    url = root.get("AssertionConsumerServiceURL")
    binding = root.get("ProtocolBinding")
    if binding and binding != BINDING_POST:
        raise errors.UnknownConsumer(f"ProtocolBinding {binding} not supported; HTTP-POST only")
    if index is not None:
        if url is not None:
            raise errors.MalformedRequest("both AssertionConsumerServiceIndex and URL given")
        try:
            acs = meta.acs_by_index(int(index))
        except ValueError as exc:
            raise errors.MalformedRequest("AssertionConsumerServiceIndex not a number") from exc
    elif url is not None:
        acs = meta.acs_by_url(url)
    else:
        acs = meta.default_acs()
    if acs is None:
        raise errors.UnknownConsumer(f"consumer {url or index!r} not in the metadata of {portal.entity_id}")
    return acs.location


def decode_and_parse(*, binding: str, message: str, max_bytes: int) -> tuple[bytes, Any]:
    """The message's XML and its parsed root; DTDs, entities and oversize refused."""
    if binding == BINDING_REDIRECT:
        xml = decode_redirect(message, max_bytes=max_bytes)
    elif binding == BINDING_POST:
        xml = decode_post(message, max_bytes=max_bytes)
    elif binding == BINDING_SOAP:  # a back-channel answer, already out of its envelope (idp/saml/soap.py)
        xml = message if isinstance(message, bytes) else message.encode("utf-8")
    else:
        raise errors.MalformedRequest(f"unsupported binding {binding}")
    try:
        root = parse_safe_xml(xml, max_bytes=max_bytes)
    except sigerr.UnsafeXml as exc:
        raise errors.MalformedRequest(getattr(exc, "reason", str(exc))) from exc
    return xml, root


def check_instant(value: str | None, *, now: float, max_age: int, skew: int) -> float:
    instant = parse_instant(value)
    if instant > now + skew or instant < now - max_age - skew:
        raise errors.StaleRequest(f"IssueInstant {value} outside the allowed window")
    return instant


def read_authn_request(*, binding: str, message: str, raw_query: str | None, registry,
                       sso_urls: tuple[str, ...], now: float, max_bytes: int,
                       max_age: int, skew: int) -> tuple[AuthnRequestData, Any]:
    """Decode and check a request; returns it with the registered portal.

    Raises ``idp.errors.SamlRequestError`` subclasses for anything that means the
    sender cannot be trusted with an answer.
    """
    xml, root = decode_and_parse(binding=binding, message=message, max_bytes=max_bytes)
    if root.tag != AUTHN_REQUEST_TAG:
        raise errors.MalformedRequest(f"not an AuthnRequest: {root.tag}")
    if root.get("Version") != "2.0":
        raise errors.MalformedRequest("Version must be 2.0")
    request_id = root.get("ID") or ""
    if not request_id or len(request_id) > 256:
        raise errors.MalformedRequest("ID missing or too long")
    issuer = _issuer_of(root)
    portal = registry.get(issuer)
    if portal is None:
        raise errors.UnknownPortal(f"unknown portal {issuer[:200]!r}")
    signed = verify_signature(binding=binding, xml=xml, root=root, raw_query=raw_query, portal=portal,
                              required=bool(portal.metadata.authn_requests_signed
                                            or portal.policy.require_signed_requests))
    acs_url = resolve_acs(root=root, portal=portal)
    destination = root.get("Destination")
    if destination is not None and destination not in sso_urls:
        raise errors.WrongDestination(f"Destination {destination[:200]!r} is not this identity provider")
    if signed and destination is None:
        raise errors.WrongDestination("a signed request must carry Destination (bindings §3.4.5.2)")
    instant = check_instant(root.get("IssueInstant"), now=now, max_age=max_age, skew=skew)
    policy = root.find("samlp:NameIDPolicy", NS)
    requested = root.find("samlp:RequestedAuthnContext", NS)
    refs = tuple((e.text or "").strip() for e in requested.findall("saml:AuthnContextClassRef", NS)) \
        if requested is not None else ()
    data = AuthnRequestData(
        request_id=request_id, issuer=issuer, acs_url=acs_url, destination=destination,
        issue_instant=instant, force_authn=_bool(root.get("ForceAuthn")),
        is_passive=_bool(root.get("IsPassive")),
        nameid_format=policy.get("Format") if policy is not None else None,
        context_refs=refs,
        comparison=requested.get("Comparison") if requested is not None else None,
        signed=signed,
    )
    return data, portal

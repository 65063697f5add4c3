"""The SOAP binding (SAML bindings §3.2), for back-channel single logout.

Sésame calls a portal's ``SingleLogoutService`` with ``Binding=...:SOAP``
itself, server to server, with a short timeout: a portal that is down or hangs
costs that timeout, never the logout of the others.  The transport is a narrow
port (``SoapTransport``) so that tests and operators can see every call; the
default is the standard library's HTTP client (one short POST per portal does
not warrant a connection pool).
"""
from __future__ import annotations

import urllib.error
import urllib.request
from typing import Protocol

from lxml import etree

from idp.saml.bindings import BINDING_SOAP  # noqa: F401 - the binding this module speaks
from keys import UnsafeXml, parse_safe_xml

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_ANSWER_BYTES = 200_000


class SoapFailed(Exception):
    """The portal could not be reached, did not answer in time, or answered no SAML message."""


class SoapTransport(Protocol):
    def post(self, url: str, body: bytes, *, timeout: float) -> bytes: ...


class UrllibTransport:
    """POST over HTTP(S) with the standard library; at most ``MAX_ANSWER_BYTES`` read."""

    def post(self, url: str, body: bytes, *, timeout: float) -> bytes:
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": "http://www.oasis-open.org/committees/security"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - metadata URL, http(s)
                return answer.read(MAX_ANSWER_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, timeout, HTTP error, bad URL
            raise SoapFailed(str(exc)[:200]) from exc


def envelope(message: bytes) -> bytes:
    """A SAML message (serialised, signed) in a SOAP 1.1 envelope."""
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap-env": SOAP_ENV})
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    body.append(etree.fromstring(message))
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def unwrap(answer: bytes) -> bytes:
    """The SAML message in a SOAP answer, serialised alone (its signature covers it
    alone); ``SoapFailed`` for anything else (a fault, HTML, oversize, a DTD)."""
    if len(answer) > MAX_ANSWER_BYTES:
        raise SoapFailed("answer too large")
    try:
        root = parse_safe_xml(answer, max_bytes=MAX_ANSWER_BYTES)
    except UnsafeXml as exc:
        raise SoapFailed(f"answer is not safe XML: {exc}") from exc
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapFailed("answer is not a SOAP envelope")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    children = [child for child in body if isinstance(child.tag, str)] if body is not None else []
    if len(children) != 1 or children[0].tag == f"{{{SOAP_ENV}}}Fault":
        raise SoapFailed("SOAP body holds no single SAML message")
    return etree.tostring(children[0])

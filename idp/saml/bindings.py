"""Decoding and encoding of SAML messages for the HTTP-Redirect and HTTP-POST
bindings (SAML bindings §3.4 and §3.5), with size limits against deflate bombs.
"""
from __future__ import annotations

import base64
import binascii
import html
import zlib

from idp.errors import MalformedRequest

BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"  # back channel: the message itself, unwrapped (idp/saml/soap.py)


def _b64decode(value: str, *, max_bytes: int) -> bytes:
    if len(value) > max_bytes * 4 // 3 + 8:
        raise MalformedRequest("message too large")
    try:
        return base64.b64decode(value.encode("ascii"), validate=False)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedRequest(f"broken base64: {exc}") from exc


def decode_redirect(value: str, *, max_bytes: int) -> bytes:
    """Base64 then raw DEFLATE (RFC 1951), refusing more than ``max_bytes`` inflated."""
    raw = _b64decode(value, max_bytes=max_bytes)
    inflater = zlib.decompressobj(-15)
    try:
        xml = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedRequest(f"broken deflate: {exc}") from exc
    if len(xml) > max_bytes or inflater.unconsumed_tail:
        raise MalformedRequest("inflated message too large")
    if not xml:
        raise MalformedRequest("empty message")
    return xml


def decode_post(value: str, *, max_bytes: int) -> bytes:
    """Base64 of the XML itself (SAML bindings §3.5.4)."""
    xml = _b64decode(value.strip(), max_bytes=max_bytes)
    if len(xml) > max_bytes:
        raise MalformedRequest("message too large")
    if not xml:
        raise MalformedRequest("empty message")
    return xml


def encode_redirect(xml: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode("ascii")


def encode_post(xml: bytes) -> str:
    return base64.b64encode(xml).decode("ascii")


def check_relay_state(relay_state: str | None, *, max_bytes: int) -> str | None:
    """The portal's RelayState, unchanged, or ``None`` when absent or empty.

    Opaque to Sésame: never parsed, decoded or followed, only returned to the
    portal (escaped in the auto-post page, encoded in a redirect URL).  SAML
    bindings §3.4.3 and §3.5.3 say 80 bytes at most, but real service
    providers (python3-saml, SimpleSAMLphp) send their full return URL there,
    so the bound is configuration (``[saml] max_relay_state_bytes``).  Longer
    raises ``MalformedRequest``: the request is refused, never truncated.
    """
    if relay_state is None or relay_state == "":
        return None
    size = len(relay_state.encode("utf-8"))
    if size > max_bytes:
        raise MalformedRequest(f"RelayState of {size} bytes, more than the {max_bytes} allowed")
    return relay_state


def escape(value: str) -> str:
    return html.escape(value, quote=True)

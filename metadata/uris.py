"""Checks on the URIs a portal's metadata declares.

- ``entityID`` (SAML metadata 2.0 §2.3.2, SAML core §8.3.6): an absolute URI
  of at most 1024 characters; Sésame accepts http(s) URLs with a host, and URNs.
- Endpoint locations (SAML metadata 2.0 §2.2.2): Sésame posts assertions to
  them, so they must be absolute ``https`` URLs; plain ``http`` is tolerated
  only for loopback hosts, for the demo and the tests.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from metadata.errors import MetadataError

MAX_ENTITY_ID = 1024
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# RFC 8141: "urn:" NID ":" NSS, NID 2-32 chars of alphanumerics and hyphens.
_URN = re.compile(r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:\S+$", re.IGNORECASE)
_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")


def check_entity_id(entity_id: str | None) -> str:
    """Return ``entity_id`` unchanged, or raise ``MetadataError`` saying what is wrong with it."""
    if entity_id is None or not entity_id.strip():
        raise MetadataError("entityID missing")
    if len(entity_id) > MAX_ENTITY_ID:
        raise MetadataError(f"entityID is {len(entity_id)} characters long; the limit is {MAX_ENTITY_ID}")
    if _FORBIDDEN.search(entity_id):
        raise MetadataError(f"entityID {entity_id!r} contains whitespace or control characters")
    if _URN.match(entity_id):
        return entity_id
    parts = urlsplit(entity_id)
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return entity_id
    raise MetadataError(f"entityID {entity_id!r} is not an absolute URI (an http(s) URL or a URN)")


def check_endpoint_location(location: str | None, *, element: str) -> str:
    """Return ``location`` unchanged if Sésame may send messages to it, else raise ``MetadataError``.

    ``element`` names the endpoint in the detail, e.g. "AssertionConsumerService".
    """
    if location is None or not location.strip():
        raise MetadataError(f"{element} has no Location")
    if _FORBIDDEN.search(location):
        raise MetadataError(f"{element} {location!r} contains whitespace or control characters")
    try:
        parts = urlsplit(location)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise MetadataError(f"{element} {location!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise MetadataError(f"{element} {location!r} must be an absolute https URL")
    if parts.username is not None or parts.password is not None:
        raise MetadataError(f"{element} {location!r} must not contain user information")
    if scheme == "http" and host.lower() not in LOOPBACK_HOSTS:
        raise MetadataError(f"{element} {location!r} must use https")
    return location

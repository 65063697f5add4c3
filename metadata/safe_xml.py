"""Safe parsing of untrusted metadata: ``keys.parse_safe_xml`` (no DTD, no
entities, no network, size-limited) with refusals worded for integrators.

SAML metadata never needs a DOCTYPE (metadata 2.0 §2 is defined by XML Schema
only), so one is refused rather than parsed around.
"""
from __future__ import annotations

from lxml import etree

from metadata.errors import MetadataError
from keys.errors import UnsafeXml
from keys.safexml import parse_safe_xml

MAX_METADATA_BYTES = 1_000_000


def parse_untrusted_xml(data: bytes, *, max_bytes: int = MAX_METADATA_BYTES) -> etree._Element:
    """Parse ``data`` and return its root element, or raise ``MetadataError``."""
    if not isinstance(data, (bytes, bytearray)):
        raise MetadataError(f"metadata must be bytes, not {type(data).__name__}")
    if len(data) > max_bytes:
        raise MetadataError(f"metadata is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data.strip():
        raise MetadataError("metadata is empty")
    try:
        return parse_safe_xml(bytes(data), max_bytes=max_bytes)
    except UnsafeXml as exc:
        reason = exc.reason
        if "declaration" in reason or "entity" in reason:
            raise MetadataError("metadata must not contain a DOCTYPE declaration "
                                "(DTDs and entities are refused)") from None
        raise MetadataError(f"metadata is not well-formed XML: {reason}") from None

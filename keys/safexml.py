"""Hardened parsing of untrusted XML (SAML messages, metadata).

Contract of ``parse_safe_xml``: the input is refused with ``UnsafeXml``
unless it is at most ``max_bytes`` long, well-formed, and free of any
document type declaration (hence of entity declarations: no "billion
laughs", no external entities, no network).  Comments are dropped while
parsing: exclusive canonicalization without comments ignores them anyway
(XML-DSig core §6.5.1, Exc-C14N §3), and keeping them would let
``<NameID>admin@x<!---->.evil</NameID>`` read as ``admin@x`` after a valid
signature check (the 2018 SAML comment-truncation attacks).  Adjacent text
around a dropped comment is merged into one text node.
"""

from __future__ import annotations

import threading

from lxml import etree

from keys.errors import UnsafeXml

DEFAULT_MAX_BYTES = 200_000

# Cheap pre-check before libxml2 sees the bytes.  Not the only defence: an
# UTF-16 document would slip past it, the post-parse docinfo check catches it.
_FORBIDDEN_MARKERS = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")

_local = threading.local()


def _parser() -> etree.XMLParser:
    """One parser per thread: lxml parser objects must not be shared."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,  # keep libxml2's depth and text-size limits
            remove_comments=True,
            collect_ids=False,  # IDs are registered explicitly for xmlsec
            recover=False,
        )
        _local.parser = parser
    return parser


def parse_safe_xml(xml: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted XML bytes and return the root element.

    Raises ``UnsafeXml`` (with a ``reason``) when the document is larger than
    ``max_bytes``, malformed, or carries a DOCTYPE / internal subset / entity
    declaration or reference.  ``TypeError`` for anything but ``bytes``.
    """
    if not isinstance(xml, (bytes, bytearray)):
        raise TypeError("parse_safe_xml expects bytes")
    if len(xml) > max_bytes:
        raise UnsafeXml(f"document larger than {max_bytes} bytes")
    if any(marker in xml for marker in _FORBIDDEN_MARKERS):
        raise UnsafeXml("document type declaration refused")
    try:
        root = etree.fromstring(bytes(xml), parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"malformed XML: {exc.msg}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml("document type declaration refused")
    for _ in root.iter(etree.Entity):
        raise UnsafeXml("entity reference refused")
    return root

"""A portal's SAML 2.0 metadata, parsed and checked (SAML metadata 2.0, OASIS 2005).

``parse_sp_metadata`` is the only way portal metadata enters Sésame.  It
returns a ``PortalMetadata`` (frozen) or raises ``idp.errors.MetadataError``
whose ``detail`` tells the integrator, in English, exactly what is wrong.

Checks, in order: safe parsing (``metadata.safe_xml``), one SP entity
(§2.3.1, §2.3.2), its ``entityID`` (``metadata.uris``), the metadata schema,
``validUntil`` (§2.3.1, §2.3.2: on the entity or any enclosing
``EntitiesDescriptor``), one ``SPSSODescriptor`` supporting SAML 2.0 (§2.4.4),
its assertion consumer services (§2.4.4: at least one HTTP-POST, indexes
unique, https locations), its logout endpoints and its certificates (§2.4.1.1,
``metadata.certificates``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lxml import etree

from metadata.errors import MetadataError
from metadata.certificates import read_key_descriptors
from metadata.safe_xml import MAX_METADATA_BYTES, parse_untrusted_xml
from metadata.schema import validate_metadata_schema
from metadata.uris import check_endpoint_location, check_entity_id

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
MDUI = "urn:oasis:names:tc:SAML:metadata:ui"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
_ENTITY = f"{{{MD}}}EntityDescriptor"
_ENTITIES = f"{{{MD}}}EntitiesDescriptor"
_SPSSO = f"{{{MD}}}SPSSODescriptor"


@dataclass(frozen=True)
class AssertionConsumerService:
    """One ``md:AssertionConsumerService`` (an IndexedEndpointType, §2.2.3).

    ``is_default`` is True when ``isDefault="true"``; ``not_default`` when
    ``isDefault="false"`` (both False: the attribute is absent).  Sésame
    answers with HTTP-POST only: other bindings are kept, with ``usable`` False.
    """

    binding: str
    location: str
    index: int
    is_default: bool
    not_default: bool = False

    @property
    def usable(self) -> bool:
        return self.binding == BINDING_HTTP_POST


@dataclass(frozen=True)
class Endpoint:
    """One ``md:SingleLogoutService`` (an EndpointType, §2.2.2)."""

    binding: str
    location: str
    response_location: str | None = None


@dataclass(frozen=True)
class PortalMetadata:
    """What Sésame needs from a service provider's metadata.

    Times are seconds since the epoch.  ``cert_not_after`` is the earliest
    expiry among the published certificates.  ``display_name`` comes from
    ``md:Organization/md:OrganizationDisplayName``, else ``mdui:DisplayName``
    (the first one in document order), else None.
    """

    entity_id: str
    acs: tuple[AssertionConsumerService, ...]
    slo: tuple[Endpoint, ...] = ()
    signing_certs: tuple[bytes, ...] = ()
    encryption_certs: tuple[bytes, ...] = ()
    authn_requests_signed: bool = False
    want_assertions_signed: bool = False
    nameid_formats: tuple[str, ...] = ()
    valid_until: float | None = None
    display_name: str | None = None
    cert_not_after: float | None = None

    def default_acs(self) -> AssertionConsumerService:
        """The default HTTP-POST consumer, by SAML metadata 2.0 §2.2.3.

        Among HTTP-POST services: the first with ``isDefault="true"``, else the
        first without ``isDefault="false"``, else the first.
        """
        usable = [a for a in self.acs if a.usable]
        if not usable:  # parse_sp_metadata never builds such metadata
            raise MetadataError(f"portal {self.entity_id!r} has no HTTP-POST AssertionConsumerService")
        for candidate in usable:
            if candidate.is_default:
                return candidate
        for candidate in usable:
            if not candidate.not_default:
                return candidate
        return usable[0]

    def acs_by_index(self, index: int) -> AssertionConsumerService | None:
        """The HTTP-POST consumer with this ``index``, or None (also when that index is another binding)."""
        for candidate in self.acs:
            if candidate.index == index and candidate.usable:
                return candidate
        return None

    def acs_by_url(self, url: str) -> AssertionConsumerService | None:
        """The first HTTP-POST consumer whose ``Location`` is exactly ``url`` (no normalisation), or None."""
        for candidate in self.acs:
            if candidate.location == url and candidate.usable:
                return candidate
        return None

    def time_problem(self, now: float) -> str | None:
        """Why this metadata is not valid at ``now`` (``validUntil`` passed), or None."""
        if self.valid_until is not None and self.valid_until <= now:
            return f"metadata expired on {format_instant(self.valid_until)}"
        return None


def format_instant(ts: float) -> str:
    """An instant as SAML writes it (xs:dateTime in UTC, SAML core §1.3.3)."""
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_sp_metadata(xml: bytes, *, now: float, max_bytes: int = MAX_METADATA_BYTES) -> PortalMetadata:
    """Parse and check a service provider's metadata at instant ``now``; raise ``MetadataError`` if refused."""
    metadata = _parse(xml, now=now, max_bytes=max_bytes)
    problem = metadata.time_problem(now)
    if problem:
        raise MetadataError(problem)
    return metadata


def reload_sp_metadata(xml: bytes) -> PortalMetadata:
    """Parse metadata that ``parse_sp_metadata`` accepted earlier, without the time checks.

    For the registry only: it re-checks ``validUntil`` with ``time_problem``
    at every lookup, and keeps a certificate that expired after registration
    (the registry logs it).  Every other check still applies.
    """
    return _parse(xml, now=None, max_bytes=MAX_METADATA_BYTES)


def _parse(xml: bytes, *, now: float | None, max_bytes: int) -> PortalMetadata:
    root = parse_untrusted_xml(xml, max_bytes=max_bytes)
    entity, enclosing = _select_entity(root)
    entity_id = check_entity_id(entity.get("entityID"))
    validate_metadata_schema(root)
    valid_until = _valid_until([entity, *enclosing])
    sp = _select_sp_descriptor(entity)
    acs = _read_acs(sp)
    keys = read_key_descriptors(sp, now=now)
    authn_requests_signed = _boolean(sp.get("AuthnRequestsSigned"))
    if authn_requests_signed and not keys.signing:
        raise MetadataError("AuthnRequestsSigned is true but no signing certificate is published")
    return PortalMetadata(
        entity_id=entity_id,
        acs=acs,
        slo=_read_slo(sp),
        signing_certs=keys.signing,
        encryption_certs=keys.encryption,
        authn_requests_signed=authn_requests_signed,
        want_assertions_signed=_boolean(sp.get("WantAssertionsSigned")),
        nameid_formats=tuple((el.text or "").strip() for el in sp.findall(f"{{{MD}}}NameIDFormat")),
        valid_until=valid_until,
        display_name=_display_name(entity, sp),
        cert_not_after=keys.earliest_not_after,
    )


def _select_entity(root: etree._Element) -> tuple[etree._Element, list[etree._Element]]:
    """The one SP ``EntityDescriptor`` and its enclosing ``EntitiesDescriptor`` elements (§2.3.1)."""
    if root.tag == _ENTITY:
        return root, []
    if root.tag != _ENTITIES:
        raise MetadataError(f"root element must be md:EntityDescriptor or md:EntitiesDescriptor, not {root.tag}")
    candidates = [e for e in root.iter(_ENTITY) if e.find(_SPSSO) is not None]
    if not candidates:
        raise MetadataError("EntitiesDescriptor contains no EntityDescriptor with an SPSSODescriptor")
    if len(candidates) > 1:
        ids = ", ".join(repr(e.get("entityID")) for e in candidates[:5])
        raise MetadataError(
            f"EntitiesDescriptor contains {len(candidates)} service providers ({ids}); register one at a time")
    entity = candidates[0]
    return entity, [a for a in entity.iterancestors() if a.tag == _ENTITIES]


def _select_sp_descriptor(entity: etree._Element) -> etree._Element:
    descriptors = entity.findall(_SPSSO)
    if not descriptors:
        raise MetadataError("EntityDescriptor has no SPSSODescriptor (this is not service provider metadata)")
    saml2 = [d for d in descriptors if SAML2_PROTOCOL in (d.get("protocolSupportEnumeration") or "").split()]
    if not saml2:
        raise MetadataError(f"SPSSODescriptor does not list {SAML2_PROTOCOL} in protocolSupportEnumeration")
    if len(saml2) > 1:
        raise MetadataError("EntityDescriptor has more than one SPSSODescriptor supporting SAML 2.0")
    return saml2[0]


def _read_acs(sp: etree._Element) -> tuple[AssertionConsumerService, ...]:
    services: list[AssertionConsumerService] = []
    seen: set[int] = set()
    for el in sp.findall(f"{{{MD}}}AssertionConsumerService"):
        location = check_endpoint_location(el.get("Location"), element="AssertionConsumerService")
        index = int(el.get("index", ""))  # the schema made it an unsignedShort
        if index in seen:
            raise MetadataError(f"AssertionConsumerService index {index} is used more than once")
        seen.add(index)
        flag = el.get("isDefault")
        services.append(AssertionConsumerService(
            binding=el.get("Binding", ""), location=location, index=index,
            is_default=flag is not None and _boolean(flag),
            not_default=flag is not None and not _boolean(flag),
        ))
    if not any(s.usable for s in services):
        raise MetadataError(
            f"no AssertionConsumerService with binding {BINDING_HTTP_POST} (Sésame answers with HTTP-POST only)")
    return tuple(services)


def _read_slo(sp: etree._Element) -> tuple[Endpoint, ...]:
    endpoints = []
    for el in sp.findall(f"{{{MD}}}SingleLogoutService"):
        location = check_endpoint_location(el.get("Location"), element="SingleLogoutService")
        response = el.get("ResponseLocation")
        if response is not None:
            check_endpoint_location(response, element="SingleLogoutService ResponseLocation")
        endpoints.append(Endpoint(binding=el.get("Binding", ""), location=location, response_location=response))
    return tuple(endpoints)


def _valid_until(elements: list[etree._Element]) -> float | None:
    """The earliest ``validUntil`` among the entity and its enclosing groups (§2.3.1, §2.3.2)."""
    instants = []
    for el in elements:
        raw = el.get("validUntil")
        if raw is not None:
            instants.append(_instant(raw, what="validUntil"))
    return min(instants) if instants else None


def _instant(raw: str, *, what: str) -> float:
    """An xs:dateTime as seconds since the epoch; no time zone means UTC (SAML core §1.3.3)."""
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise MetadataError(f"{what} {raw!r} is not a date-time Sésame can read") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def _boolean(raw: str | None) -> bool:
    """xs:boolean; absent means false (SAML metadata 2.0 §2.4.4)."""
    return (raw or "").strip() in ("true", "1")


def _display_name(entity: etree._Element, sp: etree._Element) -> str | None:
    paths = (
        f"{{{MD}}}Organization/{{{MD}}}OrganizationDisplayName",
        f"{{{MD}}}Extensions/{{{MDUI}}}UIInfo/{{{MDUI}}}DisplayName",
    )
    for parent, path in ((entity, paths[0]), (sp, paths[1])):
        for el in parent.iterfind(path):
            text = " ".join((el.text or "").split())
            if text:
                return text
    return None

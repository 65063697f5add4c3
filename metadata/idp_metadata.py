"""Sésame's own metadata: an ``EntityDescriptor`` with one ``IDPSSODescriptor``.

SAML metadata 2.0 §2.3.2 (EntityDescriptor), §2.4.3 (IDPSSODescriptor),
§2.4.1.1 (KeyDescriptor), §2.3.2.1 (Organization).  Built with pysaml2's
schema classes, so that pysaml2 service providers read it as they read their
own, and checked against the metadata schema before it is returned.

``WantAuthnRequestsSigned`` is "false": Sésame verifies a request signature
when one is present or when the portal's policy demands one, and does not ask
every portal to sign.  The descriptor carries an ``ID`` (derived from the
entity ID and ``now``) so that it can be signed later.

``validUntil`` and ``cacheDuration`` (metadata §2.3.2, §1.2.3) are the
caller's choice; Sésame's default is ``cacheDuration`` alone (docs/portals.md,
"Sésame's metadata"): a static copy keeps working, a fetching SP refreshes.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from urllib.parse import urlsplit

from cryptography import x509
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, element_to_extension_element, md, saml, xmldsig
from saml2.extension import mdui

from metadata.errors import MetadataConfigError, MetadataError
from metadata.portal_metadata import SAML2_PROTOCOL, format_instant
from metadata.schema import validate_metadata_schema

NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
ATTRNAME_FORMAT_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
_PREFIXES = {"md": md.NAMESPACE, "ds": xmldsig.NAMESPACE, "saml": saml.NAMESPACE, "mdui": mdui.NAMESPACE}
CONTACT_TYPES = frozenset({"technical", "support", "administrative", "billing", "other"})


def build_idp_metadata(*, entity_id: str, sso_url: str, slo_url: str, signing_cert_b64: str,
                       valid_for_seconds: int | None, now: float, attribute_names: Iterable[str],
                       organization: str | None = None, cache_duration_seconds: int | None = None,
                       extra_signing_certs_b64: Iterable[str] = (),
                       encryption_certs_b64: Iterable[str] = (),
                       contacts: Iterable[tuple[str, str, str]] = (),
                       ui_info: dict | None = None) -> bytes:
    """Return Sésame's metadata as UTF-8 XML bytes (with an XML declaration).

    ``signing_cert_b64`` is the base64 DER of the signing certificate (PEM is
    accepted too).  ``validUntil`` is ``now + valid_for_seconds`` when given;
    ``cacheDuration`` is ``cache_duration_seconds`` as an ``xs:duration`` when given.
    ``organization`` becomes OrganizationName and OrganizationDisplayName
    (xml:lang "en"), with the origin of ``sso_url`` as OrganizationURL.
    ``contacts`` are ``(type, name, e-mail)`` ContactPersons (metadata §2.3.2.2);
    ``ui_info`` fills ``mdui:UIInfo`` (SAML metadata UI 1.0) in the descriptor's
    Extensions: ``display_names`` ({lang: name}), ``information_url``,
    ``privacy_url``, each given in the languages of ``display_names``.
    Raises ``MetadataConfigError`` when the inputs cannot make valid metadata.
    """
    cert_b64 = _certificate_b64(signing_cert_b64)
    # Key rollover (docs/operations.md): the next and previous signing keys beside the
    # current one, so that a portal trusts a response signed by either; encryption keys.
    extra = [_certificate_b64(c) for c in extra_signing_certs_b64]
    encryption = [_certificate_b64(c) for c in encryption_certs_b64]
    idp = md.IDPSSODescriptor(
        protocol_support_enumeration=SAML2_PROTOCOL,
        want_authn_requests_signed="false",
        key_descriptor=[md.KeyDescriptor(use="signing", key_info=xmldsig.KeyInfo(
            x509_data=[xmldsig.X509Data(x509_certificate=xmldsig.X509Certificate(text=cert_b64))]))]
        + [md.KeyDescriptor(use=use, key_info=xmldsig.KeyInfo(
            x509_data=[xmldsig.X509Data(x509_certificate=xmldsig.X509Certificate(text=c))]))
           for use, certs in (("signing", extra), ("encryption", encryption)) for c in certs],
        single_logout_service=[md.SingleLogoutService(binding=b, location=slo_url)
                               for b in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)],
        name_id_format=[md.NameIDFormat(text=f) for f in (NAMEID_TRANSIENT, NAMEID_PERSISTENT, NAMEID_EMAIL)],
        single_sign_on_service=[md.SingleSignOnService(binding=b, location=sso_url)
                                for b in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)],
        attribute=[saml.Attribute(name=n, name_format=ATTRNAME_FORMAT_BASIC)
                   for n in dict.fromkeys(attribute_names)],
    )
    if ui_info:
        idp.extensions = md.Extensions(extension_elements=[element_to_extension_element(_ui_info(ui_info))])
    entity = md.EntityDescriptor(
        entity_id=entity_id,
        id="_" + hashlib.sha256(f"{entity_id}|{now!r}".encode()).hexdigest()[:40],
        idpsso_descriptor=[idp],
        organization=_organization(organization, sso_url) if organization else None,
        contact_person=[_contact(*c) for c in contacts] or None,
    )
    if valid_for_seconds is not None:
        if valid_for_seconds <= 0:
            raise MetadataConfigError(f"IdP metadata validity must be positive, not {valid_for_seconds}")
        entity.valid_until = format_instant(now + valid_for_seconds)
    if cache_duration_seconds is not None:
        entity.cache_duration = duration(cache_duration_seconds)
    try:
        # Not to_string(nspair=...): pysaml2 would register the prefixes process-wide in ElementTree.
        root = _with_prefixes(etree.fromstring(entity.to_string()), _PREFIXES)
        validate_metadata_schema(root)
    except (etree.XMLSyntaxError, MetadataError) as exc:
        raise MetadataConfigError(f"IdP metadata is not valid: {getattr(exc, 'detail', exc)}") from None
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def duration(seconds: int) -> str:
    """``seconds`` as an ``xs:duration`` of hours, minutes and seconds: 21600 is ``PT6H``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise MetadataConfigError(f"IdP metadata cacheDuration must be a positive number of seconds, not {seconds!r}")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "PT" + "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)


def _with_prefixes(source: etree._Element, nsmap: dict[str, str],
                   parent: etree._Element | None = None) -> etree._Element:
    """A copy of ``source`` whose namespaces are all declared, with ``nsmap``'s prefixes, on the root."""
    if parent is None:
        copy = etree.Element(source.tag, dict(source.attrib), nsmap=nsmap)
    else:
        copy = etree.SubElement(parent, source.tag, dict(source.attrib))
    copy.text, copy.tail = source.text, source.tail
    for child in source:
        _with_prefixes(child, nsmap, copy)
    return copy


def _certificate_b64(value: str) -> str:
    """The base64 DER body of a certificate given as base64 or PEM, checked to be X.509."""
    body = "".join(line for line in value.strip().splitlines() if not line.startswith("-----"))
    body = "".join(body.split())
    try:
        x509.load_der_x509_certificate(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise MetadataConfigError(f"IdP signing certificate is not valid X.509: {exc}") from None
    return body


def _organization(name: str, sso_url: str) -> md.Organization:
    parts = urlsplit(sso_url)
    return md.Organization(
        organization_name=[md.OrganizationName(text=name, lang="en")],
        organization_display_name=[md.OrganizationDisplayName(text=name, lang="en")],
        organization_url=[md.OrganizationURL(text=f"{parts.scheme}://{parts.netloc}/", lang="en")],
    )


def _contact(kind: str, name: str, email: str) -> md.ContactPerson:
    if kind not in CONTACT_TYPES:
        raise MetadataConfigError(f"contact type {kind!r}: one of {', '.join(sorted(CONTACT_TYPES))}")
    return md.ContactPerson(contact_type=kind, given_name=md.GivenName(text=name) if name else None,
                            email_address=[md.EmailAddress(text=email if email.startswith("mailto:")
                                                           else f"mailto:{email}")])


def _ui_info(info: dict) -> mdui.UIInfo:
    """What a portal (or a discovery page) shows of us, in each language we name ourselves in."""
    langs = list(info.get("display_names", {}))
    return mdui.UIInfo(
        display_name=[mdui.DisplayName(text=name, lang=lang) for lang, name in info.get("display_names", {}).items()],
        information_url=[mdui.InformationURL(text=info["information_url"], lang=lang) for lang in langs]
        if info.get("information_url") else [],
        privacy_statement_url=[mdui.PrivacyStatementURL(text=info["privacy_url"], lang=lang) for lang in langs]
        if info.get("privacy_url") else [],
    )

"""metadata.portal_metadata: parsing and checking a portal's SAML metadata.

SP metadata is generated at run time by pysaml2 (``saml2.metadata.entity_descriptor``)
with keys made in tmp_path, then edited by hand for each refusal.
"""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor

from metadata.errors import MetadataError
from metadata.portal_metadata import PortalMetadata, parse_sp_metadata

NOW = time.time()
ENTITY_ID = "https://portal.example.be/sp"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


def make_cert(tmp: Path, name: str, *, bits: int = 2048, days: float = 365) -> tuple[Path, Path]:
    """A self-signed certificate valid from yesterday for ``days`` days (negative: already expired)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=max(1, -days + 1))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    key_path, cert_path = tmp / f"{name}.key", tmp / f"{name}.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def make_sp_metadata(key: Path, cert: Path, *, entity_id: str = ENTITY_ID, acs=None, valid_for_hours=24) -> bytes:
    """SP metadata as pysaml2 writes it: signed requests, one POST and one Redirect consumer."""
    acs = acs or [("https://portal.example.be/acs", BINDING_HTTP_POST),
                  ("https://portal.example.be/acs-redirect", BINDING_HTTP_REDIRECT)]
    conf = {
        "entityid": entity_id,
        "key_file": str(key), "cert_file": str(cert),
        "encryption_keypairs": [{"key_file": str(key), "cert_file": str(cert)}],
        "organization": {"name": "Portal", "display_name": "Mon Portail", "url": "https://portal.example.be"},
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": acs,
                          "single_logout_service": [("https://portal.example.be/slo", BINDING_HTTP_REDIRECT)]},
            "authn_requests_signed": True,
            "want_assertions_signed": True,
            "name_id_format": ["urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"],
        }},
    }
    if valid_for_hours:
        conf["valid_for"] = valid_for_hours
    return with_prefixes(str(entity_descriptor(SPConfig().load(conf))).encode("utf-8"))


def with_prefixes(xml: bytes) -> bytes:
    """pysaml2's output with md: and ds: prefixes, whatever ElementTree's process-wide prefix map holds."""
    def copy(source, parent=None):
        el = (etree.Element(source.tag, dict(source.attrib), nsmap={"md": MD, "ds": DS}) if parent is None
              else etree.SubElement(parent, source.tag, dict(source.attrib)))
        el.text, el.tail = source.text, source.tail
        for child in source:
            copy(child, el)
        return el
    return etree.tostring(copy(etree.fromstring(xml)))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("keys"), "sp")


@pytest.fixture(scope="module")
def sp_xml(keys) -> bytes:
    return make_sp_metadata(*keys)


def refused(xml: bytes, *, now: float = NOW) -> str:
    with pytest.raises(MetadataError) as info:
        parse_sp_metadata(xml, now=now)
    assert info.value.code == "bad_metadata"
    return info.value.detail


def minimal(acs: str, *, entity: str = f'entityID="{ENTITY_ID}"', extra: str = "", sp_extra: str = "") -> bytes:
    """Hand-written SP metadata without certificates."""
    return (f'<md:EntityDescriptor xmlns:md="{MD}" {entity} {extra}>'
            f'<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{sp_extra}'
            f'{acs}</md:SPSSODescriptor></md:EntityDescriptor>').encode()


def post_acs(location: str, index: int, default: str | None = None, binding: str = BINDING_HTTP_POST) -> str:
    flag = f' isDefault="{default}"' if default is not None else ""
    return f'<md:AssertionConsumerService Binding="{binding}" Location="{location}" index="{index}"{flag}/>'


# --- accepted ------------------------------------------------------------------------
def test_pysaml2_sp_metadata_gives_every_field(sp_xml, keys):
    md = parse_sp_metadata(sp_xml, now=NOW)
    assert isinstance(md, PortalMetadata)
    assert md.entity_id == ENTITY_ID
    assert [(a.binding, a.location, a.index, a.usable) for a in md.acs] == [
        (BINDING_HTTP_POST, "https://portal.example.be/acs", 1, True),
        (BINDING_HTTP_REDIRECT, "https://portal.example.be/acs-redirect", 2, False),
    ]
    assert md.slo[0].location == "https://portal.example.be/slo" and md.slo[0].binding == BINDING_HTTP_REDIRECT
    pem = x509.load_pem_x509_certificate(keys[1].read_bytes()).public_bytes(serialization.Encoding.PEM)
    assert md.signing_certs == (pem,) and md.encryption_certs == (pem,)
    assert md.authn_requests_signed is True and md.want_assertions_signed is True
    assert md.nameid_formats == ("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",)
    assert md.valid_until is not None and NOW + 23 * 3600 < md.valid_until < NOW + 25 * 3600
    assert md.display_name == "Mon Portail"
    assert md.cert_not_after is not None and md.cert_not_after > NOW + 300 * 86400


def test_acs_lookups_use_post_binding_and_exact_urls(sp_xml):
    md = parse_sp_metadata(sp_xml, now=NOW)
    assert md.default_acs().location == "https://portal.example.be/acs"
    assert md.acs_by_index(1).location == "https://portal.example.be/acs"
    assert md.acs_by_index(2) is None  # HTTP-Redirect: Sésame cannot answer there
    assert md.acs_by_index(9) is None
    assert md.acs_by_url("https://portal.example.be/acs").index == 1
    assert md.acs_by_url("https://portal.example.be/acs/") is None
    assert md.acs_by_url("HTTPS://portal.example.be/acs") is None
    assert md.acs_by_url("https://portal.example.be/acs-redirect") is None


@pytest.mark.parametrize("flags, expected", [
    ((None, None, None), 0),           # none marked: the first
    ((None, "true", None), 1),         # isDefault="true" wins
    (("false", None, None), 1),        # first without isDefault="false"
    (("false", "false", "0"), 0),      # all false: the first
    (("false", "1", "true"), 1),       # first true, "1" counts as true
])
def test_default_acs_follows_metadata_2_2_3(flags, expected):
    acs = "".join(post_acs(f"https://sp.example.be/acs{i}", i, flag) for i, flag in enumerate(flags))
    md = parse_sp_metadata(minimal(acs), now=NOW)
    assert md.default_acs().index == expected


def test_default_acs_ignores_a_default_with_another_binding():
    acs = post_acs("https://sp.example.be/art", 0, "true", binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact")
    acs += post_acs("https://sp.example.be/post", 1)
    md = parse_sp_metadata(minimal(acs), now=NOW)
    assert md.default_acs().location == "https://sp.example.be/post"


def test_http_acs_allowed_on_loopback_only():
    acs = post_acs("http://localhost:8001/acs", 0) + post_acs("http://127.0.0.1/acs", 1)
    md = parse_sp_metadata(minimal(acs), now=NOW)
    assert [a.location for a in md.acs] == ["http://localhost:8001/acs", "http://127.0.0.1/acs"]
    assert md.signing_certs == () and md.valid_until is None and md.display_name is None


def test_urn_entity_id_and_mdui_display_name():
    ui = ('<md:Extensions><mdui:UIInfo xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui">'
          '<mdui:DisplayName xml:lang="fr">FSE 21-27</mdui:DisplayName></mdui:UIInfo></md:Extensions>')
    md = parse_sp_metadata(minimal(post_acs("https://sp.example.be/acs", 0), entity='entityID="urn:be:fse:portal"',
                                   sp_extra=ui), now=NOW)
    assert md.entity_id == "urn:be:fse:portal"
    assert md.display_name == "FSE 21-27"


def test_entities_descriptor_with_one_sp(sp_xml):
    idp = (f'<md:EntityDescriptor entityID="https://idp.example.be"><md:IDPSSODescriptor '
           f'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:SingleSignOnService '
           f'Binding="{BINDING_HTTP_REDIRECT}" Location="https://idp.example.be/sso"/></md:IDPSSODescriptor>'
           f'</md:EntityDescriptor>')
    sp = sp_xml
    wrapped = (f'<md:EntitiesDescriptor xmlns:md="{MD}" validUntil="2999-01-01T00:00:00Z">{idp}'.encode()
               + sp.replace(f' xmlns:md="{MD}"'.encode(), b"") + b"</md:EntitiesDescriptor>")
    md = parse_sp_metadata(wrapped, now=NOW)
    assert md.entity_id == ENTITY_ID
    # the entity's own validUntil (24 h) is earlier than the group's
    assert md.valid_until < NOW + 25 * 3600

    expired = wrapped.replace(b'validUntil="2999-01-01T00:00:00Z"', b'validUntil="2001-01-01T00:00:00Z"', 1)
    assert "metadata expired on 2001-01-01T00:00:00Z" in refused(expired)

    two = wrapped.replace(b"</md:EntitiesDescriptor>",
                          sp.replace(f' xmlns:md="{MD}"'.encode(), b"").replace(ENTITY_ID.encode(),
                                                                                  b"https://other.example.be")
                          + b"</md:EntitiesDescriptor>")
    assert "2 service providers" in refused(two)


# --- refused -------------------------------------------------------------------------
def test_doctype_and_entities_refused(sp_xml):
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + sp_xml.replace(
        b'entityID="https://portal.example.be/sp"', b'entityID="https://portal.example.be/&e;"')
    assert "DOCTYPE" in refused(xxe)
    laughs = b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><x>&lol2;</x>'
    assert "DOCTYPE" in refused(laughs)


def test_utf16_doctype_refused_after_parsing(sp_xml):
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x>' + sp_xml.decode()
    assert "DOCTYPE" in refused(doc.encode("utf-16"))


def test_malformed_xml_refused(sp_xml):
    assert "not well-formed XML" in refused(sp_xml[:-30])
    assert "empty" in refused(b"  ")


def test_too_large_refused(sp_xml):
    padding = b"<!--" + b"x" * 1_000_000 + b"-->"
    assert "the limit is 1000000 bytes" in refused(sp_xml + padding)


def test_schema_invalid_refused(sp_xml):
    detail = refused(sp_xml.replace(b'index="1"', b'index="one"'))
    assert detail.startswith("metadata does not validate against the SAML metadata schema: ")
    assert "index" in detail and "AssertionConsumerService" in detail
    assert "does not validate" in refused(sp_xml.replace(b"<md:NameIDFormat>", b"<md:Bogus/><md:NameIDFormat>"))


def test_not_metadata_refused():
    assert "root element must be md:EntityDescriptor" in refused(b"<html><body/></html>")


def test_missing_or_bad_entity_id_refused(sp_xml):
    assert refused(sp_xml.replace(b' entityID="https://portal.example.be/sp"', b"")) == "entityID missing"
    acs = post_acs("https://sp.example.be/acs", 0)
    assert "not an absolute URI" in refused(minimal(acs, entity='entityID="portal"'))
    assert "not an absolute URI" in refused(minimal(post_acs("https://sp.example.be/acs", 0),
                                                    entity='entityID="javascript:alert(1)"'))
    long_id = "https://sp.example.be/" + "a" * 1010
    assert "the limit is 1024" in refused(minimal(post_acs("https://sp.example.be/acs", 0),
                                                  entity=f'entityID="{long_id}"'))


def test_idp_metadata_is_not_sp_metadata():
    xml = (f'<md:EntityDescriptor xmlns:md="{MD}" entityID="https://idp.example.be"><md:IDPSSODescriptor '
           f'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:SingleSignOnService '
           f'Binding="{BINDING_HTTP_REDIRECT}" Location="https://idp.example.be/sso"/></md:IDPSSODescriptor>'
           f'</md:EntityDescriptor>').encode()
    assert "no SPSSODescriptor" in refused(xml)


def test_saml1_only_sp_refused(sp_xml):
    xml = sp_xml.replace(b'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"',
                         b'protocolSupportEnumeration="urn:oasis:names:tc:SAML:1.1:protocol"')
    assert "protocolSupportEnumeration" in refused(xml)


def test_http_acs_on_public_host_refused():
    detail = refused(minimal(post_acs("http://evil.example/acs", 0)))
    assert detail == "AssertionConsumerService 'http://evil.example/acs' must use https"
    redirect = post_acs("http://sp.example.be/acs", 1, binding=BINDING_HTTP_REDIRECT)
    assert "must use https" in refused(minimal(post_acs("https://sp.example.be/acs", 0) + redirect))
    assert "absolute https URL" in refused(minimal(post_acs("/acs", 0)))


def test_http_slo_on_public_host_refused(sp_xml):
    xml = sp_xml.replace(b'Location="https://portal.example.be/slo"', b'Location="http://portal.example.be/slo"')
    assert "SingleLogoutService 'http://portal.example.be/slo' must use https" in refused(xml)


def test_duplicate_index_refused():
    acs = post_acs("https://sp.example.be/a", 1) + post_acs("https://sp.example.be/b", 1)
    assert "AssertionConsumerService index 1 is used more than once" in refused(minimal(acs))


def test_no_post_acs_refused():
    assert "no AssertionConsumerService with binding" in refused(
        minimal(post_acs("https://sp.example.be/acs", 0, binding=BINDING_HTTP_REDIRECT)))


def test_expired_valid_until_refused():
    xml = minimal(post_acs("https://sp.example.be/acs", 0), extra='validUntil="2020-05-01T10:00:00Z"')
    assert refused(xml) == "metadata expired on 2020-05-01T10:00:00Z"
    # the same metadata, read earlier, is fine
    assert parse_sp_metadata(xml, now=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc).timestamp()).valid_until


def test_bad_certificate_refused(sp_xml):
    start = sp_xml.index(b"<ds:X509Certificate>") + len(b"<ds:X509Certificate>")
    broken = sp_xml[:start] + b"AAAA" + sp_xml[start + 4:]
    assert "certificate in KeyDescriptor #1 is not valid X.509" in refused(broken)
    not_base64 = sp_xml[:start] + b"!!!!" + sp_xml[start + 4:]  # the schema types it base64Binary
    detail = refused(not_base64)
    assert "does not validate against the SAML metadata schema" in detail and "X509Certificate" in detail


def test_expired_certificate_refused(tmp_path):
    xml = make_sp_metadata(*make_cert(tmp_path, "old", days=-2))
    detail = refused(xml)
    assert "certificate in KeyDescriptor #1 (CN=old) expired on" in detail


def test_short_rsa_key_refused(tmp_path):
    xml = make_sp_metadata(*make_cert(tmp_path, "weak", bits=1024))
    assert "KeyDescriptor #1 has a 1024-bit RSA key; at least 2048 bits are required" in refused(xml)


def test_signed_requests_need_a_signing_certificate(sp_xml):
    xml = minimal(post_acs("https://sp.example.be/acs", 0)).replace(
        b'protocolSupportEnumeration=', b'AuthnRequestsSigned="true" protocolSupportEnumeration=')
    assert "no signing certificate" in refused(xml)


def test_key_descriptor_without_use_serves_both(sp_xml):
    xml = sp_xml.replace(b'<md:KeyDescriptor use="signing">', b"<md:KeyDescriptor>", 1)
    start = xml.index(b'<md:KeyDescriptor use="encryption">')
    end = xml.index(b"</md:KeyDescriptor>", start) + len(b"</md:KeyDescriptor>")
    md = parse_sp_metadata(xml[:start] + xml[end:], now=NOW)
    assert len(md.signing_certs) == 1 and md.encryption_certs == md.signing_certs


def test_schema_location_hints_are_not_fetched():
    """The schema validator must never follow xsi:schemaLocation in untrusted metadata (no SSRF)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        hint = f'urn:evil http://127.0.0.1:{httpd.server_address[1]}/evil.xsd'
        ext = (f'<md:Extensions><e:x xmlns:e="urn:evil" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
               f'xsi:schemaLocation="{hint}"/></md:Extensions>')
        xml = minimal(post_acs("https://sp.example.be/acs", 0), sp_extra=ext)
        assert parse_sp_metadata(xml, now=NOW).entity_id == ENTITY_ID
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert hits == []

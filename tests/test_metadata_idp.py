"""metadata.idp_metadata: Sésame's own metadata, valid by schema and readable by a pysaml2 SP."""
from __future__ import annotations

import base64
import datetime as dt
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.attribute_converter import ac_factory
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.mdstore import InMemoryMetaData, MetadataStore
from saml2.xml import schema as saml_schema

from metadata.errors import MetadataConfigError as ConfigError
from metadata.idp_metadata import build_idp_metadata
from metadata.policy import ATTRIBUTE_PROFILE
from metadata.schema import METADATA_XSD

IDP = "https://sesame.example.be/idp"
SSO = "https://sesame.example.be/saml/sso"
SLO = "https://sesame.example.be/saml/slo"
NS = {"md": "urn:oasis:names:tc:SAML:2.0:metadata", "ds": "http://www.w3.org/2000/09/xmldsig#",
      "saml": "urn:oasis:names:tc:SAML:2.0:assertion"}


@pytest.fixture(scope="module")
def cert_pair(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sesame")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    tmp = tmp_path_factory.mktemp("idp")
    (tmp / "sp.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    (tmp / "sp.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, tmp


@pytest.fixture(scope="module")
def cert_b64(cert_pair) -> str:
    return base64.b64encode(cert_pair[0].public_bytes(serialization.Encoding.DER)).decode()


def build(cert_b64: str, **kw) -> bytes:
    args = dict(entity_id=IDP, sso_url=SSO, slo_url=SLO, signing_cert_b64=cert_b64, valid_for_seconds=86400,
                now=time.time(), attribute_names=ATTRIBUTE_PROFILE, organization="Sésame")
    args.update(kw)
    return build_idp_metadata(**args)


def test_validates_against_the_metadata_schema(cert_b64):
    root = etree.fromstring(build(cert_b64))
    saml_schema.validate(root, saml_schema._create_xml_schema_validator(source=METADATA_XSD))
    bare = etree.fromstring(build(cert_b64, organization=None, valid_for_seconds=None, attribute_names=[]))
    saml_schema.validate(bare, saml_schema._create_xml_schema_validator(source=METADATA_XSD))
    assert bare.get("validUntil") is None and bare.find("md:Organization", NS) is None


def test_contents(cert_b64):
    now = 1_800_000_000.0
    root = etree.fromstring(build(cert_b64, now=now))
    assert root.tag == "{%s}EntityDescriptor" % NS["md"] and root.get("entityID") == IDP
    assert root.get("ID", "").startswith("_") and root.get("validUntil") == "2027-01-16T08:00:00Z"
    idp = root.find("md:IDPSSODescriptor", NS)
    assert idp.get("protocolSupportEnumeration") == "urn:oasis:names:tc:SAML:2.0:protocol"
    assert idp.get("WantAuthnRequestsSigned") == "false"
    kd = idp.find("md:KeyDescriptor", NS)
    assert kd.get("use") == "signing"
    assert kd.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS) == cert_b64
    sso = {(e.get("Binding"), e.get("Location")) for e in idp.findall("md:SingleSignOnService", NS)}
    slo = {(e.get("Binding"), e.get("Location")) for e in idp.findall("md:SingleLogoutService", NS)}
    assert sso == {(BINDING_HTTP_REDIRECT, SSO), (BINDING_HTTP_POST, SSO)}
    assert slo == {(BINDING_HTTP_REDIRECT, SLO), (BINDING_HTTP_POST, SLO)}
    assert [e.text for e in idp.findall("md:NameIDFormat", NS)] == [
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"]
    assert root.get("cacheDuration") is None  # only when asked
    attributes = idp.findall("saml:Attribute", NS)
    assert [a.get("Name") for a in attributes] == list(ATTRIBUTE_PROFILE)
    assert {a.get("NameFormat") for a in attributes} == {"urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}
    assert root.findtext("md:Organization/md:OrganizationDisplayName", namespaces=NS) == "Sésame"


def test_same_inputs_same_bytes(cert_b64):
    assert build(cert_b64, now=1_800_000_000.0) == build(cert_b64, now=1_800_000_000.0)


def test_pem_certificate_accepted(cert_pair, cert_b64):
    pem = cert_pair[0].public_bytes(serialization.Encoding.PEM).decode()
    assert build(cert_b64, now=1.0e9) == build(pem, now=1.0e9)


def test_bad_inputs_refused(cert_b64):
    with pytest.raises(ConfigError) as info:
        build("bm90IGEgY2VydGlmaWNhdGU=")
    assert "not valid X.509" in info.value.detail
    with pytest.raises(ConfigError) as info:
        build(cert_b64, valid_for_seconds=0)
    assert "must be positive" in info.value.detail
    with pytest.raises(ConfigError) as info:
        build(cert_b64, cache_duration_seconds=-5)
    assert "cacheDuration must be a positive number of seconds" in info.value.detail


@pytest.mark.parametrize("seconds, text", [(21600, "PT6H"), (3600, "PT1H"), (5400, "PT1H30M"), (45, "PT45S"),
                                           (86400 + 61, "PT24H1M1S")])
def test_cache_duration(cert_b64, seconds, text):
    """cacheDuration (metadata §1.2.3) as an xs:duration, schema-valid, read by a pysaml2 SP."""
    xml = build(cert_b64, valid_for_seconds=None, cache_duration_seconds=seconds)
    root = etree.fromstring(xml)
    saml_schema.validate(root, saml_schema._create_xml_schema_validator(source=METADATA_XSD))
    assert root.get("cacheDuration") == text and root.get("validUntil") is None
    source = InMemoryMetaData(ac_factory(), metadata=xml.decode())
    source.load()
    assert IDP in source


def test_pysaml2_metadata_store_loads_it(cert_b64):
    xml = build(cert_b64).decode()
    store = MetadataStore(ac_factory(), SPConfig())
    source = InMemoryMetaData(ac_factory(), metadata=xml)
    source.load()
    store.metadata["sesame"] = source
    assert [s["location"] for s in store.single_sign_on_service(IDP, BINDING_HTTP_REDIRECT)] == [SSO]
    assert [s["location"] for s in store.single_logout_service(IDP, BINDING_HTTP_POST, "idpsso")] == [SLO]
    signing = store.certs(IDP, "idpsso", "signing")
    assert len(signing) == 1 and "".join(signing[0][1].split()) == cert_b64


def test_pysaml2_sp_builds_an_authn_request_to_sesame(cert_pair, cert_b64):
    """End to end: an SP configured with this metadata redirects to the SSO URL."""
    _, tmp = cert_pair
    config = SPConfig().load({
        "entityid": "https://portal.example.be/sp",
        "key_file": str(tmp / "sp.key"), "cert_file": str(tmp / "sp.crt"),
        "metadata": {"inline": [build(cert_b64).decode()]},
        "service": {"sp": {"endpoints": {"assertion_consumer_service": [
            ("https://portal.example.be/acs", BINDING_HTTP_POST)]}}},
    })
    _, info = Saml2Client(config).prepare_for_authenticate(entityid=IDP, binding=BINDING_HTTP_REDIRECT)
    location = dict(info["headers"])["Location"]
    assert location.split("?")[0] == SSO
    assert "SAMLRequest" in parse_qs(urlsplit(location).query)


def test_our_metadata_names_its_contacts_and_its_display_names_from_configuration(make_idp):
    """Organization, ContactPerson and mdui:UIInfo filled from [saml] and [operator]; a
    pysaml2 SP reads them (issue 14 §4)."""
    from saml2.mdstore import InMemoryMetaData
    from saml2.config import Config

    app, services = make_idp(saml={"organization": "Fédération Wallonie-Bruxelles",
                                    "contact_technical_email": "sesame-ops@example.be",
                                    "contact_support_email": "aide@example.be"},
                             operator={"name": "Sésame FWB", "privacy_url": "https://www.example.be/vie-privee"})
    xml = app.test_client().get("/saml/metadata").data
    root = etree.fromstring(xml)
    md_ns, ui_ns = "urn:oasis:names:tc:SAML:2.0:metadata", "urn:oasis:names:tc:SAML:metadata:ui"
    contacts = {c.get("contactType"): c.findtext(f"{{{md_ns}}}EmailAddress") for c in root.iter(f"{{{md_ns}}}ContactPerson")}
    assert contacts == {"technical": "mailto:sesame-ops@example.be", "support": "mailto:aide@example.be"}
    assert root.findtext(f"{{{md_ns}}}Organization/{{{md_ns}}}OrganizationName") == "Fédération Wallonie-Bruxelles"
    names = {n.get("{http://www.w3.org/XML/1998/namespace}lang"): n.text for n in root.iter(f"{{{ui_ns}}}DisplayName")}
    assert names == {lang: "Sésame FWB" for lang in ("fr", "nl", "de", "en")}
    assert {u.text for u in root.iter(f"{{{ui_ns}}}PrivacyStatementURL")} == {"https://www.example.be/vie-privee"}
    assert {u.text for u in root.iter(f"{{{ui_ns}}}InformationURL")} == {"http://idp.test/help"}
    store = InMemoryMetaData(Config().load({}).attribute_converters, None)  # pysaml2 parses it as an SP would
    store.parse(xml.decode())
    assert services.settings.entity_id in store.keys()
    entity = store[services.settings.entity_id]  # read as pysaml2 reads metadata
    assert {c["contact_type"] for c in entity["contact_person"]} == {"technical", "support"}

"""Metadata as a Shibboleth SP (shibd's /Shibboleth.sso/Metadata) and SimpleSAMLphp
publish it, registered with `sesame portal add`, and the AuthnRequest shibd sends
by default (unsigned, HTTP-Redirect, ACS URL with ProtocolBinding): Sésame accepts
the registration and answers at the HTTP-POST consumer, never at another binding's."""
from __future__ import annotations

import base64
import datetime as dt
import zlib

import pytest
from lxml import etree

from idp.app.cli import main
from keys import verify_xml
from keys.generate import generate_key_pair
from tests.saml_sp import autopost_fields, follow, login_with_password

SP = "https://sp.example.be"
SHIB_ENTITY = f"{SP}/shibboleth"


def _cert_b64() -> str:
    _, cert = generate_key_pair(common_name="sp.example.be", key_size=2048)
    return "".join(cert.decode().splitlines()[1:-1])


def shibboleth_metadata(cert: str) -> bytes:
    b = "urn:oasis:names:tc:SAML:2.0:bindings:"
    return f'''<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_shib1" entityID="{SHIB_ENTITY}">
  <md:Extensions xmlns:alg="urn:oasis:names:tc:SAML:metadata:algsupport">
    <alg:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha512"/>
    <alg:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
    <alg:SigningMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
  </md:Extensions>
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol urn:oasis:names:tc:SAML:1.1:protocol urn:oasis:names:tc:SAML:1.0:protocol">
    <md:Extensions>
      <init:RequestInitiator xmlns:init="urn:oasis:names:tc:SAML:profiles:SSO:request-init"
          Binding="urn:oasis:names:tc:SAML:profiles:SSO:request-init" Location="{SP}/Shibboleth.sso/Login"/>
      <idpdisc:DiscoveryResponse xmlns:idpdisc="urn:oasis:names:tc:SAML:profiles:SSO:idp-discovery-protocol"
          Binding="urn:oasis:names:tc:SAML:profiles:SSO:idp-discovery-protocol"
          Location="{SP}/Shibboleth.sso/Login" index="1"/>
    </md:Extensions>
    <md:KeyDescriptor>
      <ds:KeyInfo><ds:KeyName>sp.example.be</ds:KeyName>
        <ds:X509Data><ds:X509SubjectName>CN=sp.example.be</ds:X509SubjectName>
          <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>
    </md:KeyDescriptor>
    <md:ArtifactResolutionService Binding="{b}SOAP" Location="{SP}/Shibboleth.sso/Artifact/SOAP" index="1"/>
    <md:SingleLogoutService Binding="{b}SOAP" Location="{SP}/Shibboleth.sso/SLO/SOAP"/>
    <md:SingleLogoutService Binding="{b}HTTP-Redirect" Location="{SP}/Shibboleth.sso/SLO/Redirect"/>
    <md:SingleLogoutService Binding="{b}HTTP-POST" Location="{SP}/Shibboleth.sso/SLO/POST"/>
    <md:SingleLogoutService Binding="{b}HTTP-Artifact" Location="{SP}/Shibboleth.sso/SLO/Artifact"/>
    <md:AssertionConsumerService Binding="{b}HTTP-POST" Location="{SP}/Shibboleth.sso/SAML2/POST" index="1"/>
    <md:AssertionConsumerService Binding="{b}HTTP-POST-SimpleSign" Location="{SP}/Shibboleth.sso/SAML2/POST-SimpleSign" index="2"/>
    <md:AssertionConsumerService Binding="{b}HTTP-Artifact" Location="{SP}/Shibboleth.sso/SAML2/Artifact" index="3"/>
    <md:AssertionConsumerService Binding="{b}PAOS" Location="{SP}/Shibboleth.sso/SAML2/ECP" index="4"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:1.0:profiles:browser-post" Location="{SP}/Shibboleth.sso/SAML/POST" index="5"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:1.0:profiles:artifact-01" Location="{SP}/Shibboleth.sso/SAML/Artifact" index="6"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>'''.encode()


def simplesamlphp_metadata(cert: str) -> bytes:
    entity = "https://portail.example.be/simplesaml/module.php/saml/sp/metadata.php/default-sp"
    acs = "https://portail.example.be/simplesaml/module.php/saml/sp/saml2-acs.php/default-sp"
    return f'''<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="https://portail.example.be/simplesaml/module.php/saml/sp/saml2-logout.php/default-sp"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:1.0:profiles:browser-post"
        Location="https://portail.example.be/simplesaml/module.php/saml/sp/saml1-acs.php/default-sp" index="1"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="{acs}" index="2"/>
  </md:SPSSODescriptor>
  <md:ContactPerson contactType="technical"><md:GivenName>Support</md:GivenName>
    <md:EmailAddress>mailto:support@example.be</md:EmailAddress></md:ContactPerson>
</md:EntityDescriptor>'''.encode()


def shibd_request(*, acs: str, binding: str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                  req_id: str = "_shibreq1") -> str:
    """What shibd 3 sends by default: unsigned, HTTP-Redirect, NameIDPolicy AllowCreate."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    xml = (f'<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
           f'AssertionConsumerServiceURL="{acs}" Destination="http://idp.test/saml/sso" ID="{req_id}" '
           f'IssueInstant="{now}" ProtocolBinding="{binding}" Version="2.0">'
           f'<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{SHIB_ENTITY}</saml:Issuer>'
           f'<samlp:NameIDPolicy AllowCreate="1"/></samlp:AuthnRequest>').encode()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(c.compress(xml) + c.flush()).decode()


@pytest.fixture
def registered(make_idp, tmp_path):
    config = tmp_path / "sesame.toml"
    config.write_text(f'[server]\nbase_url = "http://idp.test"\ndata_dir = "{tmp_path / "idp"}"\ndemo = true\n'
                      '[hashing]\nargon2_time_cost = 1\nargon2_memory_kib = 8192\nargon2_parallelism = 1\n')
    app, services = make_idp()
    cert = _cert_b64()
    for name, xml in (("shib.xml", shibboleth_metadata(cert)), ("ssp.xml", simplesamlphp_metadata(cert))):
        (tmp_path / name).write_bytes(xml)
        assert main(["--config", str(config), "portal", "add", str(tmp_path / name),
                     "--attributes", "surname,givenName", "--accepted-keys", "password"]) == 0
    return app, services


def test_both_registrations_keep_only_http_post_consumers(registered):
    _, services = registered
    shib = services.registry.get(SHIB_ENTITY)
    assert shib.metadata.default_acs().location == f"{SP}/Shibboleth.sso/SAML2/POST"
    assert [a.index for a in shib.metadata.acs if a.usable] == [1]
    assert shib.metadata.signing_certs and shib.metadata.encryption_certs  # no use=: both
    ssp = [p for p in services.registry.list() if "simplesaml" in p.entity_id][0]
    assert ssp.metadata.default_acs().index == 0


def test_shibd_default_request_is_answered_at_its_post_consumer(registered):
    app, services = registered
    browser = app.test_client()
    page = follow(browser, browser.get("/saml/sso", query_string={
        "SAMLRequest": shibd_request(acs=f"{SP}/Shibboleth.sso/SAML2/POST"), "RelayState": "ss:mem:abc123"}))
    action, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    assert action == f"{SP}/Shibboleth.sso/SAML2/POST" and fields["RelayState"] == "ss:mem:abc123"
    xml = base64.b64decode(fields["SAMLResponse"])
    root = verify_xml(xml, certificates=[services.signer.certificate_pem])  # no WantAssertionsSigned: the response
    ns = {"saml": "urn:oasis:names:tc:SAML:2.0:assertion"}
    assert root.get("InResponseTo") == "_shibreq1"
    assert root.findtext(".//saml:Audience", namespaces=ns) == SHIB_ENTITY
    names = sorted(a.get("Name") for a in root.iterfind(".//saml:Attribute", ns))
    assert names == ["givenName", "surname"]
    assert etree.QName(root).localname == "Response"


def test_request_for_the_artifact_consumer_is_refused(registered):
    app, _ = registered
    r = app.test_client().get("/saml/sso", query_string={"SAMLRequest": shibd_request(
        acs=f"{SP}/Shibboleth.sso/SAML2/Artifact", binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact",
        req_id="_shibreq2")})
    assert r.status_code == 400 and 'data-code="unknown_consumer_url"' in r.get_data(as_text=True)

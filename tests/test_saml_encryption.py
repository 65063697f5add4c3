"""Encrypted assertions end to end (SAML core §2.3.4, §6; DESIGN.md §1 step 8).

A pysaml2 service provider whose metadata publishes an encryption key, and
whose policy says ``encrypt_assertions``, logs in through Sésame; pysaml2
decrypts with its own xmlsec1 and checks the response as usual.
"""
from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from lxml import etree
from saml2.response import StatusError

from tests.saml_sp import MON_ESPACE, TestPortal, autopost_fields, send
from tests.test_saml_sso import audit_events, login

SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"
XENC = "{http://www.w3.org/2001/04/xmlenc#}"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
IN_CLEAR = (b"Dupont", b"Marie", b"85031412302", b"marie.dupont@example.be", b"1985-03-14")


def encrypting_spec(slug: str, port: int, *, policy=(), **changes):
    return replace(MON_ESPACE, slug=slug, base_url=f"http://localhost:{port}", encrypt_assertions=True,
                   policy=MON_ESPACE.policy + (("encrypt_assertions", True),) + tuple(policy), **changes)


@pytest.fixture
def encrypting(world, tmp_path):
    """Mon Espace's policy plus ``encrypt_assertions``; pysaml2 publishes and decrypts with a key."""
    return TestPortal(world[1], encrypting_spec("monespace-encrypted", 18095), tmp_path / "sp")


def decoded(fields) -> bytes:
    return base64.b64decode(fields["SAMLResponse"])


def assert_encrypted(xml: bytes) -> None:
    root = etree.fromstring(xml)
    assert root.find(SAML + "Assertion") is None and root.find(f".//{SAML}Assertion") is None
    [wrapper] = root.findall(SAML + "EncryptedAssertion")
    assert wrapper[0].tag == XENC + "EncryptedData"
    for value in IN_CLEAR:
        assert value not in xml


def assert_mon_espace_identity(response) -> None:
    identity = response.get_identity()
    assert identity["surname"] == ["Dupont"] and identity["givenName"] == ["Marie"]
    assert identity["egovNRN"] == ["85031412302"] and identity["birthDate"] == ["1985-03-14"]
    assert identity["mail"] == ["marie.dupont@example.be"] and identity["PrefLanguage"] == ["fr"]
    assert set(identity) == {"surname", "givenName", "egovNRN", "birthDate", "mail", "PrefLanguage"}
    assert response.name_id.format.endswith("persistent")


def test_metadata_of_the_encrypting_portal_has_an_encryption_key(world, encrypting):
    services = world[1]
    portal = services.registry.get(encrypting.entity_id)
    assert portal.policy.encrypt_assertions and portal.metadata.encryption_certs
    assert not services.registry.get(world[2].entity_id).metadata.encryption_certs  # demo portals unchanged


def test_login_answers_an_encrypted_assertion_that_pysaml2_decrypts(world, encrypting):
    app, services, *_ = world
    sent, done = login(app.test_client(), encrypting)
    action, fields = autopost_fields(done)
    assert action == f"{encrypting.spec.base_url}/acs"
    assert_encrypted(decoded(fields))
    response = encrypting.parse(fields["SAMLResponse"])
    assert response.in_response_to == sent.request_id
    assert response.assertion.id and response.assertion.signature is not None  # signed, then encrypted
    assert_mon_espace_identity(response)
    [event] = [e for e in audit_events(services) if e.event == "saml.response"]
    assert event.result == "ok" and event.detail["encrypted"] is True


@pytest.mark.parametrize("policy, changes", [
    ((("sign", "both"),), {}),                       # assertion signed, encrypted, response signed
    ((), {"want_assertions_signed": False}),          # response signed over an unsigned encrypted assertion
])
def test_encryption_with_each_signing_mode(world, tmp_path, policy, changes):
    app, services, *_ = world
    spec = encrypting_spec("monespace-encrypted-" + str(len(changes)), 18097, policy=policy, **changes)
    portal = TestPortal(services, spec, tmp_path / "sp")
    _, done = login(app.test_client(), portal)
    _, fields = autopost_fields(done)
    xml = decoded(fields)
    assert_encrypted(xml)
    root = etree.fromstring(xml)
    assert root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is not None  # the response is signed
    assert_mon_espace_identity(portal.parse(fields["SAMLResponse"]))


def test_sso_reuse_is_encrypted_too(world, encrypting):
    app, services, *_ = world
    browser = app.test_client()
    login(browser, encrypting)
    sent = encrypting.request()
    _, fields = autopost_fields(send(browser, sent))  # answered from the SSO session, no login page
    assert_encrypted(decoded(fields))
    response = encrypting.parse(fields["SAMLResponse"])
    assert response.in_response_to == sent.request_id
    assert_mon_espace_identity(response)
    [event] = [e for e in audit_events(services) if e.event == "sso.reuse"]
    assert event.detail["encrypted"] is True


def test_policy_demands_encryption_but_metadata_has_no_key_fails_closed(world, tmp_path, caplog):
    """Registration refuses this combination (test below); a row that has it all the same
    (written before that check, or by hand) still never gets an assertion in clear."""
    from sqlalchemy import update

    from idp.persistence.models import Portal

    app, services, *_ = world
    spec = replace(MON_ESPACE, slug="monespace-no-enc-key", base_url="http://localhost:18096")
    portal = TestPortal(services, spec, tmp_path / "sp")
    assert not services.registry.get(portal.entity_id).metadata.encryption_certs
    policy = {**services.registry.get(portal.entity_id).policy.to_mapping(), "encrypt_assertions": True}
    with services.database.session() as s:
        s.execute(update(Portal).where(Portal.entity_id == portal.entity_id).values(policy=policy))
    services.registry.refresh()  # a worker sees the row changed within registry.refresh_seconds
    assert services.registry.get(portal.entity_id).policy.encrypt_assertions
    with caplog.at_level("WARNING", logger="sesame.sso"):
        _, done = login(app.test_client(), portal)
    _, fields = autopost_fields(done)
    xml = decoded(fields)
    root = etree.fromstring(xml)
    assert root.find(f"{SAMLP}Status/{SAMLP}StatusCode").get("Value") == RESPONDER
    assert root.find(SAML + "Assertion") is None and root.find(SAML + "EncryptedAssertion") is None
    for value in IN_CLEAR:
        assert value not in xml
    with pytest.raises(StatusError):
        portal.parse(fields["SAMLResponse"])
    assert any("not sent" in r.getMessage() for r in caplog.records)
    [event] = [e for e in audit_events(services) if e.event == "saml.response"]
    assert event.result == "encryption_unavailable" and event.portal == portal.entity_id


def test_registration_asking_encryption_without_an_encryption_key_is_refused(tmp_path, idp):
    from idp.app.cli import main
    from sp_examples.portal import sp_config, sp_metadata
    from keys.generate import ensure_key_pair
    from idp.app.demo import idp_metadata_xml

    _, services = idp
    config = tmp_path / "sesame.toml"
    config.write_text(f'[server]\nbase_url = "http://idp.test"\ndata_dir = "{tmp_path / "idp"}"\ndemo = true\n')
    key, cert = ensure_key_pair(directory=tmp_path / "plain", common_name="plain")
    spec = replace(MON_ESPACE, slug="plain", base_url="http://localhost:18096")
    (tmp_path / "plain.xml").write_bytes(sp_metadata(sp_config(spec, key_file=key, cert_file=cert,
                                                               idp_metadata=idp_metadata_xml(services))))
    assert main(["--config", str(config), "portal", "add", str(tmp_path / "plain.xml"),
                 "--encrypt-assertions"]) == 2
    assert services.registry.get(spec.entity_id) is None

"""The European key end to end: a pysaml2 portal, Sésame (Flask test client) and
the eIDAS sandbox node served as a real HTTP server (tests/eidas_fixtures.py).

Each bad input is the sandbox told to misbehave; asserted by error code
(``data-code``), audit rows and the absence of a session, never by wording.
"""
from __future__ import annotations

import base64
import stat
import urllib.parse
import urllib.request
from dataclasses import replace

import pytest
from lxml import etree
from sqlalchemy import select

from adapters import SettingsError
from adapters.eidas import EidasAdapter
from adapters.eidas.key import PENDING
from adapters.eidas.metadata import sp_metadata
from idp import create_app
from idp.app.demo import start_eidas_sandbox
from idp.app.services import Services
from idp.persistence.models import Credential, Person
from keys import verify_xml
from sandbox.eidas import IDENTITIES, sp_from_metadata, state
from tests.conftest import idp_settings
from tests.eidas_fixtures import (BASE, KEY_TYPES, RETURN, SP_ENTITY, EidasWorld, eidas_keys,  # noqa: F401
                                  eidas_settings, make_world, node)
from tests.live import HOST, free_port
from tests.saml_sp import MON_ESPACE, TestPortal, autopost_fields, error_code, follow, form_fields, send

SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
EIDAS = "{http://eidas.europa.eu/saml-extensions}"
CLASS = "urn:be:fedict:iam:fas:citizen:Level"


@pytest.fixture
def world(tmp_path, clock, node, eidas_keys):
    w = make_world(tmp_path, clock, node, eidas_keys)
    yield w
    w.services.database.dispose()


def session_id(world) -> str | None:
    from flask.sessions import SecureCookieSessionInterface

    cookie = world.browser.get_cookie("sesame")
    if cookie is None:
        return None
    return SecureCookieSessionInterface().get_signing_serializer(world.app).loads(cookie.value).get("sid")


def sent_request(sent) -> etree._Element:
    return etree.fromstring(base64.b64decode(sent.fields["SAMLRequest"]))


# --- the login ------------------------------------------------------------------------------
def test_done_when_a_portal_at_300_gets_the_identity_at_substantial_and_refuses_low(tmp_path, clock, node,
                                                                                    eidas_keys):
    w = make_world(tmp_path, clock, node, eidas_keys, min_level=300)
    done = w.login(level="substantial")
    response = w.portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert state(node).requests[-1]["loa"] == "substantial"  # asked of the node: the level the portal needs
    assert response.authn_info()[0][0] == CLASS + "400"
    assert response.ava == {"surname": ["Schneider"], "givenName": ["Anna"], "birthDate": ["1988-04-12"],
                            "eidasIdentifier": ["DE/BE/DE-4F2A9C11"]}
    with w.services.database.session() as s:  # the person, found again by the eIDAS identifier
        link = s.scalar(select(Credential).where(Credential.key == "eidas"))
        assert link.username == f"{node.base_url}/metadata|DE/BE/DE-4F2A9C11"
    assert [(e.key, e.level) for e in w.audit("login.success")] == [("eidas", 400)]
    # The same request answered at "low": the engine refuses it, with a clear page.
    w.browser = w.app.test_client()
    answer = w.login(level="low")
    assert answer.status_code == 303 and "/login/?tx=" in answer.headers["Location"]
    page = follow(w.browser, answer)
    assert error_code(page) == "level_not_reached" and 'id="autopost"' not in page.get_data(as_text=True)
    assert [e.result for e in w.audit("login.refused")] == ["level_below_minimum"]
    assert len(w.audit("login.success")) == 1 and session_id(w) is None
    w.services.database.dispose()


@pytest.mark.parametrize("level,sesame_level", [("low", 200), ("substantial", 400), ("high", 500)])
def test_each_level_gives_its_class(tmp_path, clock, node, eidas_keys, level, sesame_level):
    w = make_world(tmp_path, clock, node, eidas_keys, min_level=100)
    done = w.login(person="nl-sanne", level=level)
    response = w.portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.authn_info()[0][0] == CLASS + str(sesame_level)
    assert response.ava["surname"] == ["de Vries"]
    assert state(node).requests[-1]["loa"] == "low"
    with w.services.database.session() as s:  # a new person, from what the node released
        person = s.scalar(select(Person).join(Credential).where(Credential.key == "eidas"))
        assert (person.given_name, person.surname, person.birth_date.isoformat(), person.nrn) == (
            "Sanne", "de Vries", "1993-01-21", None)
    assert session_id(w) is not None
    w.services.database.dispose()


def test_the_request_follows_the_eidas_profile(world):
    sent = world.to_node(country="IT")
    request = verify_xml(base64.b64decode(sent.fields["SAMLRequest"]),
                         certificates=[world.services.signer.certificate_pem])  # signed with Sésame's key
    assert sent.action == f"{world.node.base_url}/sso" and sent.fields["country"] == "IT"
    assert request.get("Destination") == sent.action and request.get("AssertionConsumerServiceURL") == RETURN
    assert request.findtext(SAML + "Issuer") == SP_ENTITY and request.get("ForceAuthn") == "false"
    assert request.findtext(f"{SAMLP}Extensions/{EIDAS}SPType") == "public"
    asked = {e.get("FriendlyName"): e.get("isRequired") for e in request.iter(EIDAS + "RequestedAttribute")}
    assert asked == {"PersonIdentifier": "true", "FamilyName": "true", "FirstName": "true", "DateOfBirth": "true"}
    context = request.find(SAMLP + "RequestedAuthnContext")
    assert context.get("Comparison") == "minimum"
    assert context.findtext(SAML + "AuthnContextClassRef") == "http://eidas.europa.eu/LoA/substantial"
    assert world.services.store.get(PENDING + request.get("ID"))["country"] == "IT"  # awaited, in the shared store
    assert world.audit("login.eidas_request")[-1].detail["loa"] == "substantial"


@pytest.mark.parametrize("min_level,loa", [(100, "low"), (200, "low"), (400, "substantial"), (500, "high")])
def test_the_level_asked_of_the_node_follows_the_portal_and_force_authn_is_passed_on(
        tmp_path, clock, node, eidas_keys, min_level, loa):
    w = make_world(tmp_path, clock, node, eidas_keys, min_level=min_level)
    page = follow(w.browser, w.browser.get(f"/login/eidas/?tx={_tx(w, force_authn='true')}"))
    token = _csrf(page)
    tx = page.request.url.split("tx=")[1]
    out = w.browser.post(f"/login/eidas/country?tx={tx}", data={"csrf_token": token, "country": "DE"})
    request = etree.fromstring(base64.b64decode(form_fields(out.get_data(as_text=True))["SAMLRequest"]))
    assert request.find(f"{SAMLP}RequestedAuthnContext/{SAML}AuthnContextClassRef").text.endswith("/" + loa)
    assert request.get("ForceAuthn") == "true"
    w.services.database.dispose()


def _tx(world, **kwargs) -> str:
    from urllib.parse import parse_qs, urlsplit

    page = follow(world.browser, send(world.browser, world.portal.request(**kwargs)))
    return parse_qs(urlsplit(page.request.url).query)["tx"][0]


def _csrf(page) -> str:
    return form_fields(page.get_data(as_text=True))["csrf_token"]


def test_a_belgian_register_number_is_released_only_when_the_node_gives_one(world):
    IDENTITIES_BE = {"be-marie": {"country": "BE", "identifier": "BE/BE/85031412302", "given_name": "Marie",
                                  "family_name": "Dupont", "birth_date": "1985-03-14"}}
    state(world.node).identities.update(IDENTITIES_BE)
    try:
        done = world.login(person="be-marie")
    finally:
        state(world.node).identities.pop("be-marie")
    response = world.portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.ava["egovNRN"] == ["85031412302"]  # linked to the demo's Marie Dupont by her number
    world.browser = world.app.test_client()
    done = world.login(person="de-lukas")
    assert "egovNRN" not in world.portal.parse(autopost_fields(done)[1]["SAMLResponse"]).ava


def test_the_country_page_lists_the_configured_countries_and_refuses_another(world):
    tx, page = world.country_page()
    text = page.get_data(as_text=True)
    assert 'value="DE"' in text and "Allemagne" in text and 'value="BE"' not in text
    answer = world.browser.post(f"/login/eidas/country?tx={tx}", data={"csrf_token": _csrf(page), "country": "US"})
    assert answer.status_code == 400 and error_code(answer) == "eidas_unknown_country"
    assert state(world.node).requests == []


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("switch,code,result", [
    ("bad_signature", "eidas_refused", "invalid_signature"),
    ("unsigned", "eidas_refused", "missing_signature"),
    ("bad_assertion_signature", "eidas_refused", "assertion_invalid_signature"),
    ("wrapped_signature", "eidas_refused", "assertion_unsafe_signature"),
    ("wrong_audience", "eidas_refused", "wrong_audience"),
    ("wrong_destination", "eidas_refused", "wrong_destination"),
    ("wrong_recipient", "eidas_refused", "unconfirmed_subject"),
    ("expired", "eidas_refused", "expired"),
    ("missing_attribute", "eidas_refused", "missing_attribute"),
    ("authn_failed", "eidas_failed", "authn_failed"),
    ("unsolicited", "eidas_refused", "unsolicited"),
    ("undecryptable", "eidas_refused", "undecryptable"),
    ("not_encrypted", "eidas_refused", "not_encrypted"),
])
def test_a_bad_answer_sends_the_citizen_back_to_the_key_choice(world, switch, code, result):
    state(world.node).misbehave.add(switch)
    answer = world.login()
    assert answer.status_code == 303 and "/login/?tx=" in answer.headers["Location"]
    page = follow(world.browser, answer)
    text = page.get_data(as_text=True)
    assert error_code(page) == code and 'id="key-eidas"' in text  # another try, or another key
    assert 'id="autopost"' not in text  # nothing for the portal
    assert [e.result for e in world.audit("login.provider_failed")] == [result]
    assert world.audit("login.success") == [] and session_id(world) is None


def test_the_citizen_cancelling_at_the_node(world):
    answer = world.login(decision="cancel")
    assert error_code(follow(world.browser, answer)) == "eidas_cancelled"
    assert world.audit("login.provider_failed")[-1].result == "cancelled"
    # Cancelling at Sésame then gives the portal the SAML error status it is owed, and only that.
    page = follow(world.browser, answer)
    cancel = world.browser.post(f"/login/cancel?tx={page.request.url.split('tx=')[1].split('&')[0]}",
                                data={"csrf_token": _csrf(page)})
    response = world.portal.client.parse_authn_request_response  # pysaml2 raises on an error status
    with pytest.raises(Exception, match="AuthnFailed|StatusAuthnFailed"):
        response(autopost_fields(cancel)[1]["SAMLResponse"], "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                 outstanding=world.portal.outstanding)


def test_a_replayed_response_is_refused(world):
    """The node sends the first login's response again, for a new request: refused."""
    assert autopost_fields(world.login())
    state(world.node).misbehave.add("replay")
    world.browser = world.app.test_client()
    answer = world.login()
    assert error_code(follow(world.browser, answer)) == "eidas_refused"
    assert world.audit("login.provider_failed")[-1].result == "wrong_in_response_to"
    assert len(world.audit("login.success")) == 1


def test_an_answer_to_a_request_no_longer_awaited_is_refused(tmp_path, clock, node, eidas_keys):
    w = make_world(tmp_path, clock, node, eidas_keys,
                   key_settings=eidas_settings(node, eidas_keys, request_ttl_seconds=30))
    sent = w.at_node(w.to_node())
    clock.advance(60)  # the request expired in the store (the journey and its return state live on)
    answer = w.back_at_sesame(sent)
    assert error_code(follow(w.browser, answer)) == "eidas_refused"
    assert w.audit("login.provider_failed")[-1].result == "request_not_pending"
    w.services.database.dispose()


def test_a_response_without_relay_state_or_twice_is_refused_by_the_engine(world):
    sent = world.at_node(world.to_node())
    alone = world.browser.post("/login/eidas/return", data={"SAMLResponse": sent.fields["SAMLResponse"]})
    assert alone.status_code == 400 and error_code(alone) == "bad_return"
    assert autopost_fields(world.back_at_sesame(sent))  # the real one still works once
    again = world.back_at_sesame(sent)
    assert again.status_code == 400 and error_code(again) == "bad_return"
    assert [e.result for e in world.audit("login.return_refused")] == ["bad_return", "bad_return"]
    assert len(world.audit("login.success")) == 1


def test_garbage_in_saml_response_is_a_clear_refusal(world):
    sent = world.to_node()
    for value in ("%%%not-base64", base64.b64encode(b"<x><!DOCTYPE y></x>").decode()):
        state_value = sent.fields["RelayState"]
        answer = world.browser.post("/login/eidas/return", data={"SAMLResponse": value, "RelayState": state_value})
        assert answer.status_code == 303 and error_code(follow(world.browser, answer)) == "eidas_refused"
        sent = world.to_node()
    assert [e.result for e in world.audit("login.provider_failed")] == ["malformed", "unsafe_xml"]


# --- our metadata and keys -------------------------------------------------------------------------
def test_our_sp_metadata_is_signed_and_is_what_the_node_needs(world, eidas_keys):
    xml = sp_metadata(adapter=world.adapter, signer=world.services.signer, return_url=RETURN,
                      now=world.services.clock.now())
    root = verify_xml(xml, certificates=[world.services.signer.certificate_pem])
    assert root.get("entityID") == SP_ENTITY and root.get("validUntil")
    assert root.findtext("{urn:oasis:names:tc:SAML:2.0:metadata}Extensions/" + EIDAS + "SPType") == "public"
    registered = sp_from_metadata(xml)  # the sandbox node reads it as a node would
    assert registered["acs_urls"] == [RETURN]
    assert registered["encryption"].strip() == world.adapter.encryption_certificate.strip()
    assert stat.S_IMODE((eidas_keys / "eidas-encryption.key").stat().st_mode) == 0o600


def test_settings_are_checked_at_start(node, eidas_keys, tmp_path):
    base = eidas_settings(node, eidas_keys)
    with pytest.raises(SettingsError, match="node_sso_url"):
        EidasAdapter({**base, "node_sso_url": ""})
    with pytest.raises(SettingsError, match="countries"):
        EidasAdapter({**base, "countries": ["DE", "XX"]})
    with pytest.raises(SettingsError, match="level_low"):
        EidasAdapter({**base, "level_low": 400})
    with pytest.raises(SettingsError, match="encryption_key_file"):  # missing, not generated: refused
        EidasAdapter({**base, "generate_keys": False, "encryption_key_file": str(tmp_path / "none.key"),
                      "encryption_cert_file": str(tmp_path / "none.crt")})
    assert set(IDENTITIES) and EidasAdapter(base).levels == (200, 500)



def test_the_demo_starts_the_sandbox_node_with_sesame_registered_from_its_metadata(tmp_path, clock, eidas_keys):
    """``start_eidas_sandbox`` (the demo): the node on its port, its certificate written where
    the key reads it, and our signed request accepted by it."""
    url = f"http://{HOST}:{free_port()}"
    settings = {"node_sso_url": f"{url}/sso", "node_entity_id": f"{url}/metadata",
                "node_certificate_file": str(tmp_path / "node" / "demo-node.crt"),
                "encryption_key_file": str(eidas_keys / "eidas-encryption.key"),
                "encryption_cert_file": str(eidas_keys / "eidas-encryption.crt"), "generate_keys": True}
    services = Services.build(idp_settings(tmp_path, base_url=BASE, keys={
        "enabled": ["password", "eidas"], "eidas": settings}), clock=clock, key_types=KEY_TYPES)
    server = start_eidas_sandbox(services)
    try:
        with urllib.request.urlopen(f"{url}/metadata", timeout=5) as answer:
            assert b"IDPSSODescriptor" in answer.read()
        served = services.adapters["eidas"].node_certificates()
        assert len(served) == 1 and b"BEGIN CERTIFICATE" in served[0]
        portal = TestPortal(services, replace(MON_ESPACE, policy=(("accepted_keys", ["eidas"]), ("min_level", 100))),
                            tmp_path / "sp")
        world = EidasWorld(create_app(services=services), services, portal, None)
        sent = world.to_node()
        body = urllib.parse.urlencode(sent.fields).encode()
        with urllib.request.urlopen(urllib.request.Request(sent.action, data=body), timeout=5) as answer:
            assert 'id="level-substantial"' in answer.read().decode()  # the node took our signed request
    finally:
        server.shutdown()
        server.server_close()
        services.database.dispose()


def test_the_wrapped_signature_is_a_real_attack_that_only_the_strict_check_stops(world):
    """The sandbox's XSW answer verifies for a naive verifier (resolve the reference by ID,
    check the digest, read the document's assertion); ``keys.verify_xml`` refuses it."""
    import xmlsec

    from keys import UnsafeSignature, decrypt_element

    state(world.node).misbehave.add("wrapped_signature")
    sent = world.at_node(world.to_node())
    response = etree.fromstring(base64.b64decode(sent.fields["SAMLResponse"]))
    plaintext = decrypt_element(response.find(SAML + "EncryptedAssertion"), world.adapter.decryption_key)
    evil = etree.fromstring(plaintext)
    hidden = evil.find(f"{SAML}Advice/{SAML}Assertion")
    signature = evil.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    naive = xmlsec.SignatureContext()
    naive.key = xmlsec.Key.from_memory(state(world.node).certificate_pem, xmlsec.KeyFormat.CERT_PEM, None)
    naive.register_id(hidden, "ID")
    naive.verify(signature)  # no exception: the signature is good, over the hidden original
    read = [v.text for v in evil.iterfind(f"{SAML}AttributeStatement/{SAML}Attribute/{SAML}AttributeValue")]
    assert "DE/BE/ATTACKER-0001" in read  # what a naive reader of the document's assertion would take
    with pytest.raises(UnsafeSignature):
        verify_xml(plaintext, certificates=[state(world.node).certificate_pem])


def test_our_sp_metadata_is_served_signed_at_our_entity_id(tmp_path, clock, node, eidas_keys):
    """What the node fetches to trust our requests: /keys/eidas/metadata, signed with Sésame's key."""
    w = make_world(tmp_path, clock, node, eidas_keys)
    answer = w.app.test_client().get("/keys/eidas/metadata")
    assert answer.status_code == 200 and answer.mimetype == "application/samlmetadata+xml"
    verify_xml(answer.data, certificates=[w.services.signer.certificate_pem])
    root = etree.fromstring(answer.data)
    assert root.get("entityID") == SP_ENTITY
    assert root.find(".//{urn:oasis:names:tc:SAML:2.0:metadata}AssertionConsumerService").get("Location") == \
        RETURN
    w.services.database.dispose()

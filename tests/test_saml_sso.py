"""Full SAML round trips driven by a pysaml2 service provider (tests/saml_sp.py)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.response import StatusError

from tests.saml_sp import (MON_ESPACE, TestPortal, autopost_fields, follow, login_with_password, send)

FAS100 = "urn:be:fedict:iam:fas:citizen:Level100"


@pytest.fixture
def unsigned_monespace(world, tmp_path):
    """Mon Espace's policy, for a portal whose metadata does not promise signed requests."""
    spec = replace(MON_ESPACE, slug="monespace-unsigned", base_url="http://localhost:18083", sign_requests=False)
    return TestPortal(world[1], spec, tmp_path / "sp")


def login(browser, portal, sent=None, username="marie.dupont"):
    sent = sent or portal.request()
    page = follow(browser, send(browser, sent))
    assert page.status_code == 200 and "login/password" in page.get_data(as_text=True)
    return sent, login_with_password(browser, page, username=username)


@pytest.mark.parametrize("binding,sign", [(BINDING_HTTP_REDIRECT, True), (BINDING_HTTP_REDIRECT, False),
                                          (BINDING_HTTP_POST, True), (BINDING_HTTP_POST, False)])
def test_login_round_trip_each_binding(world, unsigned_monespace, binding, sign):
    app, services, monespace, _ = world
    monespace = monespace if sign else unsigned_monespace
    browser = app.test_client()
    sent = monespace.request(binding=binding, sign=sign, relay_state="/mes-demarches")
    _, done = login(browser, monespace, sent)
    action, fields = autopost_fields(done)
    assert action == f"{monespace.spec.base_url}/acs"
    assert fields["RelayState"] == "/mes-demarches"
    response = monespace.parse(fields["SAMLResponse"])
    assert response.in_response_to == sent.request_id
    identity = response.get_identity()
    assert identity["surname"] == ["Dupont"] and identity["givenName"] == ["Marie"]
    assert identity["egovNRN"] == ["85031412302"]
    assert identity["birthDate"] == ["1985-03-14"]
    assert identity["mail"] == ["marie.dupont@example.be"]
    assert "fedid" not in identity  # not in Mon Espace's policy
    assert response.authn_info()[0][0] == FAS100


def test_policy_releases_names_only_to_fse(world):
    app, services, _, fse = world
    browser = app.test_client()
    _, done = login(browser, fse)
    _, fields = autopost_fields(done)
    response = fse.parse(fields["SAMLResponse"])
    assert response.get_identity() == {"surname": ["Dupont"], "givenName": ["Marie"]}
    assert response.name_id.format == "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


def test_single_sign_on_to_second_portal_without_login_page(world):
    app, services, monespace, fse = world
    browser = app.test_client()
    login(browser, monespace)
    sent = fse.request()
    direct = send(browser, sent)
    action, fields = autopost_fields(direct)  # no login page in between
    assert action == "http://localhost:18082/acs"
    response = fse.parse(fields["SAMLResponse"])
    assert response.get_identity()["surname"] == ["Dupont"]
    assert response.authn_info()[0][0] == FAS100
    events = [e for e in audit_events(services) if e.event == "sso.reuse"]
    assert [e.portal for e in events] == [fse.entity_id]


def test_persistent_nameid_is_pairwise_and_stable(world, tmp_path):
    app, services, monespace, _ = world
    first = monespace.parse(autopost_fields(login(app.test_client(), monespace)[1])[1]["SAMLResponse"])
    second = monespace.parse(autopost_fields(login(app.test_client(), monespace)[1])[1]["SAMLResponse"])
    assert first.name_id.format.endswith("persistent")
    assert first.name_id.text == second.name_id.text
    other = monespace.parse(autopost_fields(
        login(app.test_client(), monespace, username="jan.peeters")[1])[1]["SAMLResponse"])
    assert other.name_id.text != first.name_id.text


def test_force_authn_shows_login_page_despite_session(world):
    app, _, monespace, _ = world
    browser = app.test_client()
    login(browser, monespace)
    again = follow(browser, send(browser, monespace.request(force_authn="true")))
    assert "login/password" in again.get_data(as_text=True)


def test_passive_request_without_session_answers_no_passive(world):
    app, _, monespace, _ = world
    browser = app.test_client()
    sent = monespace.request(is_passive="true")
    action, fields = autopost_fields(send(browser, sent))
    assert action == "http://localhost:18081/acs"
    with pytest.raises(StatusError) as raised:
        monespace.parse(fields["SAMLResponse"])
    assert "NoPassive" in type(raised.value).__name__ or "NoPassive" in str(raised.value)


def test_unmeetable_authn_context_answers_no_authn_context(world):
    from saml2.saml import AuthnContextClassRef
    from saml2.samlp import RequestedAuthnContext

    app, _, monespace, _ = world
    wanted = RequestedAuthnContext(
        authn_context_class_ref=[AuthnContextClassRef(text="urn:be:fedict:iam:fas:citizen:Level500")],
        comparison="minimum")
    sent = monespace.request(requested_authn_context=wanted)
    _, fields = autopost_fields(send(app.test_client(), sent))
    with pytest.raises(StatusError) as raised:
        monespace.parse(fields["SAMLResponse"])
    assert "NoAuthnContext" in type(raised.value).__name__ or "NoAuthnContext" in str(raised.value)


def test_exact_eidas_request_is_answered_with_the_requested_class(world):
    from saml2.saml import AuthnContextClassRef
    from saml2.samlp import RequestedAuthnContext

    app, _, monespace, _ = world
    wanted = RequestedAuthnContext(
        authn_context_class_ref=[AuthnContextClassRef(text="http://eidas.europa.eu/LoA/low")], comparison="exact")
    _, done = login(app.test_client(), monespace, monespace.request(requested_authn_context=wanted))
    response = monespace.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.authn_info()[0][0] == "http://eidas.europa.eu/LoA/low"


def test_cross_site_post_without_cookie_resumes_by_get(world):
    app, services, _, fse = world
    browser = app.test_client()
    first = send(browser, fse.request())  # no cookie yet: parked, then a top-level GET
    assert first.status_code == 303 and "/saml/resume?tx=" in first.headers["Location"]
    page = follow(browser, first)
    assert "login/password" in page.get_data(as_text=True)
    again = browser.get(first.headers["Location"])  # the parked request resumes once
    assert again.status_code == 400 and 'data-code="login_expired"' in again.get_data(as_text=True)


def test_cancel_answers_authn_failed(world):
    import re

    app, _, monespace, _ = world
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request()))
    body = page.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', body)[1]
    action = re.search(r'action="(/login/cancel\?tx=[^"]+)"', body)[1].replace("&amp;", "&")
    _, fields = autopost_fields(browser.post(action, data={"csrf_token": token}))
    with pytest.raises(StatusError):
        monespace.parse(fields["SAMLResponse"])


def audit_events(services):
    from sqlalchemy import select

    from idp.persistence.models import AuditEvent

    with services.database.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_metadata_is_signed_and_loads_in_a_pysaml2_sp(world):
    from saml2.attribute_converter import ac_factory
    from saml2.mdstore import MetadataStore

    from keys import verify_xml

    app, services, *_ = world
    response = app.test_client().get("/saml/metadata")
    assert response.status_code == 200
    assert response.mimetype == "application/samlmetadata+xml"
    root = verify_xml(response.data, certificates=[services.signer.certificate_pem])
    assert root.get("entityID") == services.settings.entity_id
    loaded = MetadataStore(ac_factory(), None)
    loaded.load("inline", str(response.data, "utf-8"))
    assert loaded.single_sign_on_service(services.settings.entity_id, BINDING_HTTP_REDIRECT)[0]["location"] \
        == "http://idp.test/saml/sso"


def test_chosen_language_is_released_as_pref_language(world):
    app, _, monespace, _ = world
    browser = app.test_client()
    sent = monespace.request()
    page = follow(browser, send(browser, sent))
    browser.get("/lang/nl?next=/")
    response = monespace.parse(autopost_fields(login_with_password(browser, page, username="marie.dupont"))[1]
                               ["SAMLResponse"])
    assert response.get_identity()["PrefLanguage"] == ["nl"]


# --- Sésame's metadata: no silent expiry ----------------------------------------
def test_served_metadata_asks_for_refresh_and_never_expires_by_default(world):
    """A portal holding a static copy keeps trusting Sésame; one that fetches refreshes every 6 hours."""
    from lxml import etree

    app, services, *_ = world
    root = etree.fromstring(app.test_client().get("/saml/metadata").data)
    assert root.get("validUntil") is None
    assert root.get("cacheDuration") == "PT6H"


def test_served_metadata_valid_until_when_configured(make_idp):
    import datetime as dt

    from lxml import etree

    from keys import verify_xml

    app, services = make_idp(saml={"metadata_valid_days": 365, "metadata_cache_seconds": 3600})
    data = app.test_client().get("/saml/metadata").data
    root = verify_xml(data, certificates=[services.signer.certificate_pem])  # still signed
    expected = dt.datetime.fromtimestamp(int(services.clock.now()) + 365 * 86400, tz=dt.timezone.utc)
    assert root.get("validUntil") == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert root.get("cacheDuration") == "PT1H"
    assert etree.fromstring(data).get("validUntil") == root.get("validUntil")


# --- NameID formats ---------------------------------------------------------------
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def assert_status(portal, saml_response: str, status: str) -> None:
    with pytest.raises(StatusError) as raised:
        portal.parse(saml_response)
    assert status in type(raised.value).__name__ or status in str(raised.value)


def test_email_nameid_where_the_policy_releases_mail(world):
    """Mon Espace (persistent, releases mail) asks for an e-mail NameID: it gets Marie's address."""
    app, services, monespace, _ = world
    sent = monespace.request(nameid_format=EMAIL)
    assert f'Format="{EMAIL}"' in _request_xml(sent)  # pysaml2 did put it in NameIDPolicy
    _, done = login(app.test_client(), monespace, sent)
    response = monespace.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert response.name_id.format == EMAIL
    assert response.name_id.text == "marie.dupont@example.be"
    assert response.get_identity()["mail"] == ["marie.dupont@example.be"]


def test_email_nameid_refused_where_the_policy_does_not_release_mail(world):
    """FSE 21-27 receives names only: an e-mail NameID would release the address; refused before any login."""
    app, _, _, fse = world
    browser = app.test_client()
    action, fields = autopost_fields(follow(browser, send(browser, fse.request(nameid_format=EMAIL))))
    assert action == "http://localhost:18082/acs"
    assert_status(fse, fields["SAMLResponse"], "InvalidNameIDPolicy")


def test_email_nameid_refused_for_a_person_without_address(world):
    app, services, monespace, _ = world
    services.people.create(surname="Sansmail", given_name="Paul", username="paul.sansmail",
                           password="Demo-Sesame-2026")
    _, done = login(app.test_client(), monespace, monespace.request(nameid_format=EMAIL),
                    username="paul.sansmail")
    action, fields = autopost_fields(done)
    assert action == "http://localhost:18081/acs"
    assert_status(monespace, fields["SAMLResponse"], "InvalidNameIDPolicy")
    # without a format asked, the same person gets the policy's own (persistent)
    _, done = login(app.test_client(), monespace, monespace.request(), username="paul.sansmail")
    assert monespace.parse(autopost_fields(done)[1]["SAMLResponse"]).name_id.format.endswith("persistent")


@pytest.fixture
def email_portal(world, tmp_path):
    """A portal whose policy chooses the e-mail NameID."""
    policy = dict(MON_ESPACE.policy)
    policy["nameid_format"] = "email"
    spec = replace(MON_ESPACE, slug="email-portal", base_url="http://localhost:18084", policy=tuple(policy.items()))
    return TestPortal(world[1], spec, tmp_path / "sp")


def test_policy_email_nameid_without_format_in_the_request(world, email_portal):
    app, *_ = world
    _, done = login(app.test_client(), email_portal, email_portal.request())
    response = email_portal.parse(autopost_fields(done)[1]["SAMLResponse"])
    assert (response.name_id.format, response.name_id.text) == (EMAIL, "marie.dupont@example.be")
    # another format than the policy's (and not e-mail) is still refused
    sent = email_portal.request(nameid_format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient")
    assert_status(email_portal, autopost_fields(send(app.test_client(), sent))[1]["SAMLResponse"],
                  "InvalidNameIDPolicy")


def _request_xml(sent) -> str:
    import base64
    import zlib
    from urllib.parse import parse_qs

    if sent.method == "GET":
        raw = base64.b64decode(parse_qs(sent.query)["SAMLRequest"][0])
        return zlib.decompress(raw, -15).decode()
    return base64.b64decode(sent.data["SAMLRequest"]).decode()


@pytest.mark.parametrize("mode", ["uri", "both"])
def test_standard_uri_attribute_names_where_the_policy_asks(world, tmp_path, mode):
    """A portal's policy may ask for urn:oid names (NameFormat uri, FriendlyName the FAS
    name) instead of, or beside, Sésame's names; attributes without one keep theirs."""
    from dataclasses import replace as with_

    from tests.saml_sp import TestPortal

    app, services, monespace, _ = world
    spec = with_(monespace.spec, slug=f"oid-{mode}", base_url="http://localhost:18087",
                 policy=(*monespace.spec.policy, ("attribute_names", mode)))
    portal = TestPortal(services, spec, tmp_path / "oid")
    browser = app.test_client()
    _, done = login(browser, portal)
    _, fields = autopost_fields(done)
    statement = portal.parse(fields["SAMLResponse"]).assertion.attribute_statement[0]
    named = {a.name: (a.name_format, a.friendly_name, [v.text for v in a.attribute_value])
             for a in statement.attribute}
    uri = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
    assert named["urn:oid:2.5.4.4"] == (uri, "surname", ["Dupont"])
    assert named["urn:oid:2.5.4.42"] == (uri, "givenName", ["Marie"])
    assert named["urn:oid:1.3.6.1.5.5.7.9.1"] == (uri, "birthDate", ["19850314000000Z"])
    assert named["egovNRN"][2] == ["85031412302"]  # no standard name: Sésame's, always
    assert ("surname" in named) is (mode == "both")

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

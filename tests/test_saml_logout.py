"""Portal-initiated single logout, driven by a pysaml2 service provider."""
from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from tests.saml_sp import (autopost_fields, follow, form_action, form_fields,
                           login_with_password, send)

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


@pytest.fixture
def logged_in(world):
    app, services, monespace, fse = world
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request()))
    _, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    response = monespace.parse(fields["SAMLResponse"])
    return app, services, browser, monespace, fse, response


def logout_request(portal, name_id, binding):
    result = portal.client.global_logout(name_id, sign=True, sign_alg=RSA_SHA256, digest_alg=SHA256)
    ((_, http_args),) = result.values()
    return http_args


@pytest.mark.parametrize("binding", [BINDING_HTTP_POST, BINDING_HTTP_REDIRECT])
def test_logout_ends_the_session_and_answers_the_portal(logged_in, binding):
    app, services, browser, monespace, fse, response = logged_in
    http_args = monespace.client.do_logout(
        response.name_id, [services.settings.entity_id], "", None, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, expected_binding=binding)[services.settings.entity_id][1]
    if binding == BINDING_HTTP_POST:
        page = http_args["data"]
        answer = browser.post(urlsplit(form_action(page)).path, data=form_fields(page))
        action, fields = autopost_fields(answer)
        assert action == "http://localhost:18081/slo"
        parsed = monespace.client.parse_logout_request_response(fields["SAMLResponse"], BINDING_HTTP_POST)
    else:
        location = urlsplit(dict(http_args["headers"])["Location"])
        answer = browser.get(f"{location.path}?{location.query}")
        assert answer.status_code == 303
        back = urlsplit(answer.headers["Location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == "http://localhost:18081/slo"
        message = parse_qs(back.query)["SAMLResponse"][0]
        assert "Signature" in parse_qs(back.query)
        parsed = monespace.client.parse_logout_request_response(message, BINDING_HTTP_REDIRECT)
    assert parsed is not None and parsed.status_ok()
    # the SSO session is gone: the next portal shows the login page again
    page = follow(browser, send(browser, fse.request()))
    assert "login/password" in page.get_data(as_text=True)


def test_unsigned_logout_request_refused(logged_in):
    app, services, browser, monespace, fse, response = logged_in
    http_args = monespace.client.do_logout(
        response.name_id, [services.settings.entity_id], "", None, sign=False,
        expected_binding=BINDING_HTTP_POST)[services.settings.entity_id][1]
    page = http_args["data"]
    answer = browser.post(urlsplit(form_action(page)).path, data=form_fields(page))
    assert answer.status_code == 400
    assert 'data-code="signature_required"' in answer.get_data(as_text=True)
    # the session survives a refused logout
    direct = send(browser, fse.request())
    assert autopost_fields(direct)[0] == "http://localhost:18082/acs"


def test_logout_request_from_portal_outside_the_session_ends_nothing(logged_in):
    app, services, browser, monespace, fse, response = logged_in
    # FSE never took part in Marie's session, yet asks to log her out
    fse.client.users.add_information_about_person({
        "name_id": response.name_id, "ava": {}, "came_from": "/", "issuer": services.settings.entity_id,
        "not_on_or_after": 2**31})
    http_args = fse.client.do_logout(response.name_id, [services.settings.entity_id], "", None, sign=True,
                                     sign_alg=RSA_SHA256, digest_alg=SHA256,
                                     expected_binding=BINDING_HTTP_POST)[services.settings.entity_id][1]
    page = http_args["data"]
    other_browser = app.test_client()
    answer = other_browser.post(urlsplit(form_action(page)).path, data=form_fields(page))
    assert autopost_fields(answer)[0] == "http://localhost:18082/slo"
    # Marie's session in her own browser is untouched
    assert autopost_fields(send(browser, fse.request()))[0] == "http://localhost:18082/acs"


# --- logout across the portals of the session ------------------------------------
def _sso_to(browser, portal):
    """A second portal joins the session (no login page)."""
    action, fields = autopost_fields(send(browser, portal.request()))
    return portal.parse(fields["SAMLResponse"])


def _portal_answers(browser, portal, hop, *, name_id):
    """The browser reaches ``portal``'s logout endpoint; pysaml2 answers; back to Sésame."""
    assert hop.status_code == 303, hop.get_data(as_text=True)[:300]
    url = urlsplit(hop.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{portal.spec.base_url}/slo"
    query = parse_qs(url.query)
    request_xml = portal.client.parse_logout_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT,
                                                     sigalg=query["SigAlg"][0], signature=query["Signature"][0])
    assert request_xml.message.name_id.text == name_id.text  # the NameID that portal was given
    http_args = portal.client.handle_logout_request(
        query["SAMLRequest"][0], name_id, BINDING_HTTP_REDIRECT, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, sigalg=query["SigAlg"][0], signature=query["Signature"][0])
    return _back_to_sesame(browser, http_args)


def _back_to_sesame(browser, http_args):
    """The portal's LogoutResponse reaches Sésame, which sends the browser on (303 to /saml/slo/next)."""
    back = urlsplit(dict(http_args["headers"])["Location"])
    received = browser.get(f"{back.path}?{back.query}")
    assert received.status_code == 303 and "/saml/slo/next?run=" in received.headers["Location"]
    return browser.get(urlsplit(received.headers["Location"]).path + "?" + urlsplit(received.headers["Location"]).query)


def test_portal_logout_reaches_every_other_portal_then_answers(logged_in):
    app, services, browser, monespace, fse, response = logged_in
    fse_identity = _sso_to(browser, fse)
    http_args = monespace.client.do_logout(
        response.name_id, [services.settings.entity_id], "", None, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, expected_binding=BINDING_HTTP_REDIRECT)[services.settings.entity_id][1]
    location = urlsplit(dict(http_args["headers"])["Location"])
    hop = browser.get(f"{location.path}?{location.query}")  # to Sésame; on to FSE 21-27
    final = _portal_answers(browser, fse, hop, name_id=fse_identity.name_id)
    url = urlsplit(final.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://localhost:18081/slo"
    answer = monespace.client.parse_logout_request_response(parse_qs(url.query)["SAMLResponse"][0],
                                                            BINDING_HTTP_REDIRECT)
    assert answer.status_ok()
    assert "login/password" in follow(browser, send(browser, fse.request())).get_data(as_text=True)


def test_citizen_logout_on_sesame_reaches_every_portal(logged_in):
    import re

    app, services, browser, monespace, fse, response = logged_in
    fse_identity = _sso_to(browser, fse)
    home = browser.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', home)[1]
    page = browser.post("/logout", data={"csrf_token": token})
    # A page that continues by script (a redirect would be held to the page's form-action).
    assert page.status_code == 200 and 'id="continue"' in page.get_data(as_text=True)
    hop = browser.get(re.search(r'id="continue" href="([^"]+)"', page.get_data(as_text=True))[1].replace("&amp;", "&"))
    hop = _portal_answers(browser, monespace, hop, name_id=response.name_id)
    done = _portal_answers(browser, fse, hop, name_id=fse_identity.name_id)
    assert done.status_code == 200 and 'id="logged-out"' in done.get_data(as_text=True)
    assert "login/password" in follow(browser, send(browser, monespace.request())).get_data(as_text=True)


def test_portal_that_refuses_makes_the_logout_partial(logged_in):
    from saml2.saml import NameID

    app, services, browser, monespace, fse, response = logged_in
    _sso_to(browser, fse)
    http_args = monespace.client.do_logout(
        response.name_id, [services.settings.entity_id], "", None, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, expected_binding=BINDING_HTTP_REDIRECT)[services.settings.entity_id][1]
    location = urlsplit(dict(http_args["headers"])["Location"])
    hop = browser.get(f"{location.path}?{location.query}")
    stranger = NameID(text="someone-else", format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient")
    url = urlsplit(hop.headers["Location"])
    query = parse_qs(url.query)
    http_args = fse.client.handle_logout_request(  # FSE does not know that user: "Wrong user"
        query["SAMLRequest"][0], stranger, BINDING_HTTP_REDIRECT, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, sigalg=query["SigAlg"][0], signature=query["Signature"][0])
    final = _back_to_sesame(browser, http_args)
    answer = monespace.client.parse_logout_request_response(
        parse_qs(urlsplit(final.headers["Location"]).query)["SAMLResponse"][0], BINDING_HTTP_REDIRECT)
    # SAML core §3.7.3.2: one portal did not log out: PartialLogout
    assert answer.response.status.status_code.status_code.value == \
        "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"


def test_logout_response_to_no_request_of_ours_is_refused(logged_in):
    from saml2.saml import Issuer
    from saml2.samlp import LogoutRequest

    app, services, browser, monespace, fse, response = logged_in
    never_sent = LogoutRequest(id="_never_sent", version="2.0", issue_instant="2026-01-01T00:00:00Z",
                               issuer=Issuer(text=services.settings.entity_id))
    stray = monespace.client.create_logout_response(never_sent, [BINDING_HTTP_POST], sign=True,
                                                    sign_alg=RSA_SHA256, digest_alg=SHA256)
    assert 'Destination="http://idp.test/saml/slo"' in str(stray)
    answer = browser.post("/saml/slo", data={"SAMLResponse": base64.b64encode(str(stray).encode()).decode()})
    assert answer.status_code == 400 and 'data-code="malformed_request"' in answer.get_data(as_text=True)
    # Marie's session is untouched
    assert autopost_fields(send(browser, fse.request()))[0] == "http://localhost:18082/acs"


def test_long_relay_state_of_a_logout_request_comes_back_unchanged(logged_in):
    """A portal's RelayState (here a ~300-character return URL) is returned with its LogoutResponse."""
    app, services, browser, monespace, fse, response = logged_in
    deep_link = ("http://localhost:18081/mes-demarches/dossiers/2026-BXL-000123/pieces?onglet=documents&tri=date"
                 "&retour=%2Fmes-demarches%2Fdossiers%3Fpage%3D3%26statut%3Douvert&langue=fr" + "&x=y" * 40)
    assert len(deep_link) > 250
    http_args = monespace.client.do_logout(
        response.name_id, [services.settings.entity_id], "", None, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, expected_binding=BINDING_HTTP_POST)[services.settings.entity_id][1]
    page = http_args["data"]
    fields = {**form_fields(page), "RelayState": deep_link}  # outside the enveloped signature
    action, answered = autopost_fields(browser.post(urlsplit(form_action(page)).path, data=fields))
    assert action == "http://localhost:18081/slo"
    assert answered["RelayState"] == deep_link
    assert monespace.client.parse_logout_request_response(answered["SAMLResponse"], BINDING_HTTP_POST).status_ok()


def test_logout_response_with_an_overlong_in_response_to_is_refused_before_anything_else():
    """InResponseTo becomes a store key: over 256 characters it is refused before the
    issuer, the signature or the store are looked at."""
    from idp import errors
    from idp.saml.logout import read_logout_response

    xml = ('<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0" '
           f'IssueInstant="2026-01-01T00:00:00Z" InResponseTo="_{"x" * 300}"/>')
    with pytest.raises(errors.MalformedRequest) as raised:
        read_logout_response(binding=BINDING_HTTP_POST, message=base64.b64encode(xml.encode()).decode(),
                             raw_query=None, registry=None, slo_urls=("http://idp.test/saml/slo",), now=0.0,
                             max_bytes=200_000, max_age=300, skew=120)
    assert "too long" in raised.value.detail

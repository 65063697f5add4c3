"""Portal-initiated single logout, driven by a pysaml2 service provider."""
from __future__ import annotations

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

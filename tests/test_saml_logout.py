"""Portal-initiated single logout, driven by a pysaml2 service provider."""
from __future__ import annotations

import base64
import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from saml2.response import StatusUnknownPrincipal
from saml2.saml import NameID

from tests.parallel import in_parallel
from tests.saml_sp import (audit_events, autopost_fields, follow, form_action, form_fields,
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


def frames_of(page) -> list[str]:
    """The logout page's frames (one per front-channel portal), as the browser loads them."""
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    return [html.unescape(src) for src in re.findall(r'<iframe src="([^"]+)"', page.get_data(as_text=True))]


def finish_link(page) -> str:
    return html.unescape(re.search(r'id="continue" href="([^"]+)"', page.get_data(as_text=True))[1])


def _portal_answers(browser, portal, frame_src, *, name_id, known=True):
    """One frame: Sésame sends it to ``portal``'s logout endpoint; pysaml2 answers
    (for ``name_id``, or as "Wrong user" when not ``known``); back to Sésame in the frame."""
    hop = browser.get(frame_src)
    assert hop.status_code == 303, hop.get_data(as_text=True)[:300]
    assert hop.headers["Content-Security-Policy"].count("frame-ancestors 'self'") == 1
    url = urlsplit(hop.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{portal.spec.base_url}/slo"
    query = parse_qs(url.query)
    request_xml = portal.client.parse_logout_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT,
                                                     sigalg=query["SigAlg"][0], signature=query["Signature"][0])
    assert request_xml.message.name_id.text == name_id.text  # the NameID that portal was given
    subject = name_id if known else NameID(text="someone-else", format=name_id.format)
    http_args = portal.client.handle_logout_request(
        query["SAMLRequest"][0], subject, BINDING_HTTP_REDIRECT, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, sigalg=query["SigAlg"][0], signature=query["Signature"][0])
    back = urlsplit(dict(http_args["headers"])["Location"])
    received = browser.get(f"{back.path}?{back.query}")
    assert received.status_code == 200 and received.headers["X-Frame-Options"] == "SAMEORIGIN"
    return received


def _logout_at(browser, services, portal, name_id, binding=BINDING_HTTP_REDIRECT):
    http_args = portal.client.do_logout(
        name_id, [services.settings.entity_id], "", None, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, expected_binding=binding)[services.settings.entity_id][1]
    location = urlsplit(dict(http_args["headers"])["Location"])
    return browser.get(f"{location.path}?{location.query}")


def test_portal_logout_reaches_every_other_portal_then_answers(logged_in):
    app, services, browser, monespace, fse, response = logged_in
    fse_identity = _sso_to(browser, fse)
    page = _logout_at(browser, services, monespace, response.name_id)  # to Sésame: the frames page
    (frame,) = frames_of(page)
    assert "frame-src 'self' http://localhost:18082" in page.headers["Content-Security-Policy"]
    done = _portal_answers(browser, fse, frame, name_id=fse_identity.name_id)
    assert 'data-confirmed="yes"' in done.get_data(as_text=True)
    assert browser.get(html.unescape(re.search(r'data-status="([^"]+)"', page.get_data(as_text=True))[1])
                       ).get_json() == {"waiting": 0}
    final = browser.get(finish_link(page))
    url = urlsplit(final.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://localhost:18081/slo"
    answer = monespace.client.parse_logout_request_response(parse_qs(url.query)["SAMLResponse"][0],
                                                            BINDING_HTTP_REDIRECT)
    assert answer.status_ok() and answer.response.status.status_code.status_code is None  # Success, complete
    assert "login/password" in follow(browser, send(browser, fse.request())).get_data(as_text=True)
    assert browser.get(finish_link(page)).status_code == 400  # a run finishes once


def test_citizen_logout_on_sesame_reaches_every_portal(logged_in):
    app, services, browser, monespace, fse, response = logged_in
    fse_identity = _sso_to(browser, fse)
    home = browser.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', home)[1]
    page = browser.post("/logout", data={"csrf_token": token})
    # A page (a redirect would be held to the page's form-action), one frame per portal.
    first, second = frames_of(page)
    _portal_answers(browser, monespace, first, name_id=response.name_id)
    _portal_answers(browser, fse, second, name_id=fse_identity.name_id)
    done = browser.get(finish_link(page))
    assert done.status_code == 200 and 'id="logged-out"' in done.get_data(as_text=True)
    assert "login/password" in follow(browser, send(browser, monespace.request())).get_data(as_text=True)


def test_portal_that_refuses_makes_the_logout_partial(logged_in):
    app, services, browser, monespace, fse, response = logged_in
    fse_identity = _sso_to(browser, fse)
    page = _logout_at(browser, services, monespace, response.name_id)
    (frame,) = frames_of(page)
    refused = _portal_answers(browser, fse, frame, name_id=fse_identity.name_id, known=False)  # "Wrong user"
    assert 'data-confirmed="no"' in refused.get_data(as_text=True)
    final = browser.get(finish_link(page))
    answer = monespace.client.parse_logout_request_response(
        parse_qs(urlsplit(final.headers["Location"]).query)["SAMLResponse"][0], BINDING_HTTP_REDIRECT)
    # SAML core §3.7.3.2: one portal did not log out: PartialLogout
    assert answer.response.status.status_code.status_code.value == \
        "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"


def test_a_portal_that_never_answers_costs_the_wait_not_the_logout(logged_in):
    """The citizen's browser never reaches FSE (down, or hanging): the page ends anyway,
    Mon Espace is logged out, and the citizen is told which portal was not."""
    app, services, browser, monespace, fse, response = logged_in
    _sso_to(browser, fse)
    home = browser.get("/").get_data(as_text=True)
    page = browser.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', home)[1]})
    first, second = frames_of(page)
    _portal_answers(browser, monespace, first, name_id=response.name_id)
    browser.get(second)  # sent towards FSE, which never answers
    assert 'data-wait="8"' in page.get_data(as_text=True)  # the page's own limit ([logout])
    done = browser.get(finish_link(page)).get_data(as_text=True)
    assert 'id="partial"' in done and "<li>FSE 21-27 (Agence FSE)</li>" in done
    assert "<li>Mon Espace</li>" not in done
    finished = audit_events(services, "logout.finished")[-1]
    assert finished.result == "partial"


def test_frame_answers_arriving_together_are_all_kept(logged_in):
    """Two portals answer at the same instant (their frames run side by side)."""
    app, services, browser, monespace, fse, response = logged_in
    fse_identity = _sso_to(browser, fse)
    home = browser.get("/").get_data(as_text=True)
    page = browser.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', home)[1]})
    first, second = frames_of(page)
    answers = []
    for portal, frame, name_id in ((monespace, first, response.name_id), (fse, second, fse_identity.name_id)):
        hop = browser.get(frame)
        query = parse_qs(urlsplit(hop.headers["Location"]).query)
        http_args = portal.client.handle_logout_request(
            query["SAMLRequest"][0], name_id, BINDING_HTTP_REDIRECT, sign=True, sign_alg=RSA_SHA256,
            digest_alg=SHA256, sigalg=query["SigAlg"][0], signature=query["Signature"][0])
        back = urlsplit(dict(http_args["headers"])["Location"])
        answers.append(f"{back.path}?{back.query}")
    urls = answers * 3
    results = in_parallel(len(urls), lambda i: app.test_client().get(urls[i]))
    assert sorted(r.status_code for r in results) == [200, 200, 400, 400, 400, 400]  # each answer counts once
    done = browser.get(finish_link(page)).get_data(as_text=True)
    assert 'id="logged-out"' in done


def test_a_logout_request_for_another_name_id_ends_nothing(logged_in):
    """A LogoutRequest naming another NameID than the one that portal was given
    (a stale or forged one): UnknownPrincipal, and the session lives on."""
    app, services, browser, monespace, fse, response = logged_in
    stranger = NameID(text="not-the-one-given", format=response.name_id.format)
    monespace.client.users.add_information_about_person({
        "name_id": stranger, "ava": {}, "came_from": "/", "issuer": services.settings.entity_id,
        "not_on_or_after": 2**31})
    answer = _logout_at(browser, services, monespace, stranger)
    url = urlsplit(answer.headers["Location"])
    with pytest.raises(StatusUnknownPrincipal):  # pysaml2 reads Requester / UnknownPrincipal
        monespace.client.parse_logout_request_response(parse_qs(url.query)["SAMLResponse"][0],
                                                       BINDING_HTTP_REDIRECT)
    assert audit_events(services, "logout")[-1].result == "nameid_mismatch"
    assert autopost_fields(send(browser, fse.request()))[0] == "http://localhost:18082/acs"  # still logged in


def test_a_replayed_logout_request_is_refused(logged_in):
    app, services, browser, monespace, fse, response = logged_in
    http_args = monespace.client.do_logout(
        response.name_id, [services.settings.entity_id], "", None, sign=True, sign_alg=RSA_SHA256,
        digest_alg=SHA256, expected_binding=BINDING_HTTP_REDIRECT)[services.settings.entity_id][1]
    location = urlsplit(dict(http_args["headers"])["Location"])
    assert browser.get(f"{location.path}?{location.query}").status_code == 303
    # a new login, then the same signed LogoutRequest again
    page = follow(browser, send(browser, monespace.request()))
    login_with_password(browser, page, username="marie.dupont")
    replayed = browser.get(f"{location.path}?{location.query}")
    assert replayed.status_code == 400
    assert autopost_fields(send(browser, fse.request()))[0] == "http://localhost:18082/acs"  # session kept


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


@pytest.mark.parametrize("initiator", ["monespace", "fse"])
def test_logout_from_each_portal_with_a_third_one_down(world, tmp_path, initiator):
    """Three portals in the session, the third one's server down: whichever portal
    starts the logout, the other live one is logged out, the down one is reported,
    and the initiator hears PartialLogout."""
    from dataclasses import replace as with_

    from tests.saml_sp import FSE, TestPortal

    app, services, monespace, fse = world
    down = TestPortal(services, with_(FSE, slug="down", base_url="http://localhost:18099"), tmp_path / "down")
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request()))
    identities = {"monespace": monespace.parse(autopost_fields(login_with_password(
        browser, page, username="marie.dupont"))[1]["SAMLResponse"])}
    identities["fse"] = _sso_to(browser, fse)
    autopost_fields(send(browser, down.request()))  # answered, never delivered: the server is down
    starter, other = (monespace, fse) if initiator == "monespace" else (fse, monespace)
    page = _logout_at(browser, services, starter, identities[initiator].name_id)
    frames = frames_of(page)
    assert len(frames) == 2
    answered = [src for src in frames if _frame_target(browser, src) == other.spec.base_url]
    _portal_answers(browser, other, answered[0], name_id=identities["fse" if other is fse else "monespace"].name_id)
    final = browser.get(finish_link(page))  # the page's time limit passed: the down portal never answered
    reply = urlsplit(final.headers["Location"])
    assert f"{reply.scheme}://{reply.netloc}{reply.path}" == f"{starter.spec.base_url}/slo"
    answer = starter.client.parse_logout_request_response(parse_qs(reply.query)["SAMLResponse"][0],
                                                          BINDING_HTTP_REDIRECT)
    assert answer.response.status.status_code.status_code.value == \
        "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
    finished = audit_events(services, "logout.finished")[-1]
    assert finished.result == "partial" and finished.detail["failed"] == down.entity_id


def _frame_target(browser, frame_src: str) -> str:
    """Where a frame's LogoutRequest goes (scheme://host:port), without sending it on."""
    url = urlsplit(browser.get(frame_src).headers["Location"])
    return f"{url.scheme}://{url.netloc}"


def test_logout_while_a_login_is_in_flight_ends_only_the_session(logged_in):
    """A second tab is half-way through a login when the first logs out: the logout
    ends the session and tells the portals; the login in flight, once finished,
    starts a new session that owes nothing to the ended one."""
    app, services, browser, monespace, fse, response = logged_in
    choose = follow(browser, send(browser, fse.request(force_authn="true")))  # a login in flight, same browser
    home = browser.get("/").get_data(as_text=True)
    page = browser.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', home)[1]})
    (frame,) = frames_of(page)
    _portal_answers(browser, monespace, frame, name_id=response.name_id)
    assert 'id="logged-out"' in browser.get(finish_link(page)).get_data(as_text=True)
    done = login_with_password(browser, choose, username="marie.dupont")
    fse.parse(autopost_fields(done)[1]["SAMLResponse"])
    with browser.session_transaction() as flask_session:
        session = services.sessions.get(flask_session["sid"])
    assert session.portals == [fse.entity_id]  # Mon Espace, logged out, is not carried over

"""Back-channel single logout (SOAP, SAML bindings §3.2) against real SOAP endpoints.

Mon Espace is the example portal (sp_examples, pysaml2) served over HTTP with a
SOAP ``SingleLogoutService``; two more portals of the session offer SOAP too, but
one hangs (a server that accepts and never answers) and one is down (nobody
listens).  Sésame calls all three itself: Mon Espace is logged out, the other
two cost at most the back-channel timeout, and the citizen is told which.
"""
from __future__ import annotations

import re
import socket
import time
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
import requests

from idp.app.demo import register_portal, serve_in_thread
from sp_examples.portal import create_portal_app
from tests.live import free_ports
from tests.saml_sp import (FSE, MON_ESPACE, TestPortal, audit_events, autopost_fields, follow,
                           login_with_password, send)

TIMEOUT = 1  # [logout] back_channel_timeout_seconds, for the test


@pytest.fixture
def hanging_server():
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def world(make_idp, tmp_path, hanging_server):
    app, services = make_idp(logout={"back_channel_timeout_seconds": TIMEOUT})
    live_port, down_port = free_ports(2)
    monespace = replace(MON_ESPACE, base_url=f"http://127.0.0.1:{live_port}", soap_logout=True)
    config = register_portal(services, monespace, tmp_path / "portals")
    server = serve_in_thread(create_portal_app(monespace, config, idp_entity_id=services.settings.entity_id),
                             "127.0.0.1", live_port)
    hanging = TestPortal(services, replace(FSE, slug="hanging", base_url=f"http://127.0.0.1:{hanging_server}",
                                           soap_logout=True), tmp_path / "sp")
    down = TestPortal(services, replace(FSE, slug="down", title="Portail hors ligne",
                                        base_url=f"http://127.0.0.1:{down_port}", soap_logout=True,
                                        policy=(*FSE.policy, ("display_name", "Portail hors ligne"))),
                      tmp_path / "sp")
    yield app, services, monespace, hanging, down
    server.shutdown()
    server.server_close()


def log_in_at_the_live_portal(app, browser, portal_url: str) -> requests.Session:
    """The citizen's browser: the portal over HTTP, Sésame through its test client."""
    at_portal = requests.Session()
    to_idp = urlsplit(at_portal.get(f"{portal_url}/login", allow_redirects=False).headers["Location"])
    page = follow(browser, browser.get(f"{to_idp.path}?{to_idp.query}"))
    action, fields = autopost_fields(login_with_password(browser, page, username="marie.dupont"))
    assert at_portal.post(action, data=fields, allow_redirects=False).status_code == 303
    assert 'id="welcome"' in at_portal.get(f"{portal_url}/").text
    return at_portal


def test_back_channel_logout_reaches_the_portals_that_answer_in_bounded_time(world):
    app, services, monespace, hanging, down = world
    browser = app.test_client()
    at_portal = log_in_at_the_live_portal(app, browser, monespace.base_url)
    for portal in (hanging, down):  # they join the session (single sign-on, no page)
        autopost_fields(send(browser, portal.request()))

    home = browser.get("/").get_data(as_text=True)
    started = time.monotonic()
    page = browser.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', home)[1]})
    elapsed = time.monotonic() - started
    text = page.get_data(as_text=True)

    assert elapsed < TIMEOUT + 1.5  # the hanging portal costs its timeout, once, in parallel with the rest
    assert "<iframe" not in text  # nobody needed the browser
    assert 'id="partial"' in text
    unreachable = re.findall(r"<li>([^<]+)</li>", text.split('id="unreachable"')[1].split("</ul>")[0])
    assert sorted(unreachable) == ["FSE 21-27 (Agence FSE)", "Portail hors ligne"]
    assert 'id="login"' in at_portal.get(f"{monespace.base_url}/").text  # logged out there, server to server
    results = {e.portal: e.result for e in audit_events(services, "logout.portal")}
    assert results == {monespace.entity_id: "ok", hanging.entity_id: "unreachable", down.entity_id: "unreachable"}
    assert audit_events(services, "logout.finished")[-1].result == "partial"


def test_back_channel_logout_started_by_the_portal_is_answered_success(world, make_idp):
    """Only Mon Espace in the session, and it asks: nothing left to tell, Success."""
    app, services, monespace, _, _ = world
    browser = app.test_client()
    at_portal = log_in_at_the_live_portal(app, browser, monespace.base_url)
    to_idp = at_portal.post(f"{monespace.base_url}/logout", allow_redirects=False)
    location = urlsplit(to_idp.headers["Location"])
    answer = browser.get(f"{location.path}?{location.query}")
    back = answer.headers["Location"]
    assert back.startswith(f"{monespace.base_url}/slo?SAMLResponse=")
    assert at_portal.get(back, allow_redirects=False).headers["Location"].endswith("/?logout=ok")


def test_a_soap_answer_that_is_not_signed_is_not_a_confirmation(world, tmp_path):
    """A portal answering with an unsigned LogoutResponse (or anything else) has not
    confirmed: the logout is partial, never Success on its word."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    app, services, monespace, _, _ = world

    class Unsigned(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            body = (b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body>'
                    b'<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" '
                    b'Version="2.0" IssueInstant="2030-01-01T00:00:00Z" InResponseTo="_y">'
                    b'<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
                    + self.server.issuer.encode() + b'</saml:Issuer><samlp:Status>'
                    b'<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
                    b'</samlp:LogoutResponse></soap-env:Body></soap-env:Envelope>')
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unsigned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        liar = TestPortal(services, replace(FSE, slug="liar", base_url=f"http://127.0.0.1:{server.server_port}",
                                            soap_logout=True), tmp_path / "sp")
        server.issuer = liar.entity_id
        browser = app.test_client()
        page = follow(browser, send(browser, liar.request()))
        autopost_fields(login_with_password(browser, page, username="marie.dupont"))
        home = browser.get("/").get_data(as_text=True)
        done = browser.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"',
                                                                      home)[1]}).get_data(as_text=True)
        assert 'id="partial"' in done
        assert audit_events(services, "logout.portal")[-1].result == "signature_required"
    finally:
        server.shutdown()
        server.server_close()

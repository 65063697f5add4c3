"""A pysaml2 service provider used as a test client against Sésame.

It is ordinary pysaml2 (the same SP as ``sp_examples``), driving Sésame through
the Flask test client: the requests it sends and the responses it checks are
the real SAML messages.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client

from idp.app.demo import DEMO_KEYS, DEMO_PASSWORD, DEMO_PORTALS, register_portal
from sp_examples.portal import PortalSpec

MON_ESPACE = replace(DEMO_PORTALS[0], base_url="http://localhost:18081")
# The tests' FSE 21-27 takes every demo key (the demo's takes the eID and itsme only):
# most tests reach it by single sign-on after a password login.
FSE = replace(DEMO_PORTALS[1], base_url="http://localhost:18082",
              policy=(("accepted_keys", list(DEMO_KEYS)), *DEMO_PORTALS[1].policy[1:]))

_INPUT = re.compile(r'<input[^>]*name="(?P<name>[^"]+)"[^>]*value="(?P<value>[^"]*)"', re.S)
_FORM = re.compile(r'<form[^>]*action="(?P<action>[^"]+)"', re.S)


def form_fields(page: str) -> dict[str, str]:
    return {m["name"]: html.unescape(m["value"]) for m in _INPUT.finditer(page)}


def form_action(page: str) -> str:
    return html.unescape(_FORM.search(page)["action"])


def error_code(response) -> str | None:
    """The error code a page shows (``id="error" data-code=...``), None when it shows none."""
    found = re.search(r'id="error" data-code="([^"]+)"', response.get_data(as_text=True))
    return found[1] if found else None


def audit_events(services, event: str) -> list:
    """The audit rows of ``event``, oldest first."""
    from sqlalchemy import select

    from idp.persistence.models import AuditEvent

    with services.database.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)))


@dataclass
class Sent:
    request_id: str
    method: str
    path: str
    data: dict | None = None
    query: str = ""


class TestPortal:
    __test__ = False  # not a pytest class

    def __init__(self, services, spec: PortalSpec, directory: Path) -> None:
        self.spec = spec
        self.services = services
        self.config = register_portal(services, spec, directory)
        self.client = Saml2Client(self.config)
        self.outstanding: dict[str, str] = {}

    @property
    def entity_id(self) -> str:
        return self.spec.entity_id

    def request(self, *, binding: str | None = None, sign: bool | None = None, relay_state: str = "/forms",
                **kwargs) -> Sent:
        """An AuthnRequest as the browser would carry it to Sésame."""
        binding = binding or self.spec.binding
        sign = self.spec.sign_requests if sign is None else sign
        req_id, info = self.client.prepare_for_authenticate(
            entityid=self.services.settings.entity_id, relay_state=relay_state, binding=binding,
            sign=sign, sigalg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" if sign else None,
            digest_alg="http://www.w3.org/2001/04/xmlenc#sha256", **kwargs)
        self.outstanding[req_id] = relay_state
        if binding == BINDING_HTTP_REDIRECT:
            url = urlsplit(dict(info["headers"])["Location"])
            return Sent(req_id, "GET", url.path, query=url.query)
        page = info["data"]
        return Sent(req_id, "POST", urlsplit(form_action(page)).path, data=form_fields(page))

    def parse(self, saml_response: str):
        """pysaml2's own checks of a response: signature, audience, InResponseTo, times."""
        return self.client.parse_authn_request_response(saml_response, BINDING_HTTP_POST,
                                                        outstanding=self.outstanding)


def send(browser, sent: Sent):
    if sent.method == "GET":
        return browser.get(f"{sent.path}?{sent.query}")
    return browser.post(sent.path, data=sent.data)


def follow(browser, response, limit: int = 5):
    while response.status_code in (302, 303) and limit:
        location = urlsplit(response.headers["Location"])
        response = browser.get(f"{location.path}?{location.query}" if location.query else location.path)
        limit -= 1
    return response


def login_with_password(browser, login_page, *, username: str, password: str = DEMO_PASSWORD):
    """From the key choice page, through the password key; returns the last response."""
    page = login_page.get_data(as_text=True)
    key_link = re.search(r'href="(/login/password/\?tx=[^"]+)"', page)
    assert key_link, "password key not offered"
    form_page = browser.get(html.unescape(key_link[1]))
    fields = form_fields(form_page.get_data(as_text=True))
    action = form_action(form_page.get_data(as_text=True))
    return browser.post(action, data={"csrf_token": fields["csrf_token"], "username": username,
                                      "password": password})


def autopost_fields(response) -> tuple[str, dict[str, str]]:
    page = response.get_data(as_text=True)
    assert 'id="autopost"' in page, page[:500]
    return form_action(page), form_fields(page)

"""The autopost page of a response from the SSO session (idp.views.saml.autopost_page):
rendered once per language with stand-ins, then filled with escaped values."""
from __future__ import annotations

import html
import re

from tests.saml_sp import autopost_fields, follow, login_with_password, send

HOSTILE = '/x?a=1&b="><script>alert(1)</script>\'&#39;\x1eaction\x1e'


def _logged_in(world):
    app, _, monespace, _ = world
    browser = app.test_client()
    page = follow(browser, send(browser, monespace.request()))
    login_with_password(browser, page, username="marie.dupont")
    return browser, monespace


def test_values_are_escaped_and_come_back_unchanged(world):
    browser, monespace = _logged_in(world)
    sent = monespace.request(relay_state=HOSTILE)
    answer = send(browser, sent)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<script>alert" not in body
    action, fields = autopost_fields(answer)
    assert fields["RelayState"] == HOSTILE
    assert monespace.parse(fields["SAMLResponse"]).in_response_to == sent.request_id
    assert action == f"{monespace.spec.base_url}/acs"
    assert f"form-action 'self' {monespace.spec.base_url}" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"


def test_without_relay_state_no_field_and_the_page_is_in_the_browsers_language(world):
    browser, monespace = _logged_in(world)
    first = send(browser, monespace.request(relay_state=None)).get_data(as_text=True)
    assert 'name="RelayState"' not in first and 'lang="fr"' in first and "Connexion en cours" in first
    sent = monespace.request(relay_state="/r")
    second = browser.get(f"{sent.path}?{sent.query}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert html.unescape(re.search(r'name="RelayState" value="([^"]*)"', second)[1]) == "/r"
    assert 'lang="en"' in second and "Connexion en cours" not in second

"""The paper token key as a citizen meets it, in a real browser (Debian's
chromium through Playwright), with a real SMTP server (tests/messaging.py):
the issue's "done when" for this key.

With a strong session (the test-only level-500 stand-in), Marie orders a card
from "Mes clés numériques": the card is shown once on a printable page (the
"Imprimer" button comes from the key's own script file: the page's policy
allows no inline script) and arrives as a PDF; she confirms one code.  Then,
in a fresh browser, she logs in at Mon Espace with username, password and the
code asked, read from the PDF.  No page breaks its Content-Security-Policy.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import pytest

from idp.app.demo import DEMO_PASSWORD, make_nrn, register_portal
from tests.live import live_demo
from tests.messaging import mail_settings
from tests.standin_keys import KEY_TYPES
from tests.strong_login import login_strong_in_browser, strong_keys
from tests.test_browser_journeys import csp_violations
from tests.test_token_key import CARD_CODE, pdf_codes

pytestmark = pytest.mark.browser
MARIE_NRN = make_nrn(dt.date(1985, 3, 14), 123)
MARIE_MAIL = "marie.dupont@example.be"


@pytest.fixture
def demo(tmp_path, smtp_server):
    with live_demo(tmp_path, key_types=KEY_TYPES, keys=strong_keys("password", "token"),
                   mail=mail_settings(smtp_server)) as running:
        # The demo portals' list of keys predates the token: Mon Espace accepts it here.
        spec = running.portals["monespace"]
        policy = tuple((name, [*value, "token"] if name == "accepted_keys" else value) for name, value in spec.policy)
        register_portal(running.services, replace(spec, policy=policy), tmp_path / "portals")
        running.mail = smtp_server.inbox
        yield running


def asked_position(page) -> int:
    return int(re.search(r"code de sécurité n° (\d+)", page.locator("main").inner_text())[1])


def test_order_a_card_then_log_in_at_mon_espace_with_a_code_of_it(demo, browser, context):
    page = context.new_page()
    violations = csp_violations(page)
    login_strong_in_browser(page, demo.idp_url, MARIE_NRN)
    page.click("#activate-token")                          # "Activer"
    page.wait_for_url(f"{demo.idp_url}/login/token/?*")
    assert MARIE_MAIL in page.locator("#mail-to").inner_text()
    page.click("#submit")                                  # "Commander ma carte"
    page.locator("#card").wait_for()
    shown = {int(n): c for n, c in CARD_CODE.findall(page.locator("#card").inner_text())}
    assert len(shown) == 24
    assert page.locator("#print").is_visible()             # the key's script ran under the page's policy
    page.emulate_media(media="print")                      # on paper: the card alone
    assert page.locator("#card").is_visible() and not page.locator("form.wizard").is_visible()
    assert not page.locator("header.top").is_visible() and not page.locator("#print").is_visible()
    page.emulate_media(media="screen")
    [mail] = [m for m in demo.mail.to(MARIE_MAIL) if m.attachments]
    codes = pdf_codes(mail.attachments[0][2])
    assert codes == shown
    page.click("#submit")                                  # "Continuer": printed
    page.locator("#code").wait_for()
    page.fill("#code", codes[asked_position(page)])
    page.click("#submit")                                  # "Confirmer"
    page.wait_for_url(f"{demo.idp_url}/account/keys?activated=token")
    assert page.locator("#key-token").get_attribute("data-active") == "yes"

    # A fresh browser: Mon Espace, the token, username + password, the code asked.
    citizen = browser.new_context(locale="fr-BE")
    try:
        portal = citizen.new_page()
        violations += csp_violations(portal)
        portal.goto(demo.portal_url("monespace") + "/")
        portal.click("#login")
        portal.wait_for_url(f"{demo.idp_url}/login/?*")
        portal.click("#key-token")
        portal.fill("#username", "marie.dupont")
        portal.fill("#password", DEMO_PASSWORD)
        portal.click("#submit")
        portal.locator("#code").wait_for()
        position = asked_position(portal)
        portal.fill("#code", "AAAAAAAA" if codes[position] != "AAAAAAAA" else "BBBBBBBB")
        portal.click("#submit")
        assert portal.locator("#error").get_attribute("data-code") == "token_wrong_code"
        assert asked_position(portal) == position
        portal.fill("#code", codes[position])
        portal.click("#submit")
        portal.wait_for_url(demo.portal_url("monespace") + "/")
        assert "Marie" in portal.locator("body").inner_text()
    finally:
        citizen.close()
    assert violations == []

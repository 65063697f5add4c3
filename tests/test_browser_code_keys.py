"""The security-code keys as a citizen meets them, in a real browser (Debian's
chromium through Playwright), with a real SMTP server and a real HTTP SMS
gateway (tests/messaging.py): the issue's "done when".

A citizen with a strong session (the test-only level-500 stand-in, until the
eID and itsme keys land) activates the e-mail, SMS and authenticator-app keys
from "Mes clés numériques", logs out, and logs in at Mon Espace with each of
them: the password page, the code page with the masked address and its
"Envoyer un nouveau code" button, the code, back at the portal.  A citizen
who has not activated a key is told so.  No page breaks its
Content-Security-Policy.
"""
from __future__ import annotations

import datetime as dt
import time

import pyotp
import pytest

from idp.app.demo import DEMO_PASSWORD, make_nrn
from tests.live import live_demo
from tests.messaging import mail_settings, sms_settings
from tests.standin_keys import KEY_TYPES
from tests.strong_login import login_strong_in_browser, strong_keys
from tests.test_browser_journeys import csp_violations

pytestmark = pytest.mark.browser
MARIE_NRN = make_nrn(dt.date(1985, 3, 14), 123)
MAIL = "marie.codes@example.be"
MOBILE = "+32470123456"


@pytest.fixture
def demo(tmp_path, smtp_server, sms_gateway):
    keys = strong_keys("password", "totp", "email_code", "sms_code")
    with live_demo(tmp_path, key_types=KEY_TYPES, keys=keys, mail=mail_settings(smtp_server),
                   sms=sms_settings(sms_gateway)) as running:
        running.mail, running.sms = smtp_server.inbox, sms_gateway.inbox
        yield running


def activate_sent_code_key(page, demo, key: str, address: str, inbox, typed: str | None = None) -> None:
    """From "Mes clés numériques": Activer, the address (as ``typed``), the registration
    code received at ``address``, Activer."""
    page.click(f"#activate-{key}")
    page.wait_for_url(f"{demo.idp_url}/login/{key}/?*")
    page.fill("#address", typed or address)
    page.click("#submit")
    page.locator("#code").wait_for()
    page.click("#resend")                 # "Envoyer un nouveau code", too soon after the first
    assert page.locator("#error").get_attribute("data-code") == "resend_too_soon"
    page.fill("#code", inbox.last_code(address))
    page.click("#submit")
    page.locator("#sent-to").wait_for()  # "... est vérifié(e). Cliquez sur Activer"
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/account/keys?activated={key}")
    assert page.locator(f"#key-{key}").get_attribute("data-active") == "yes"


def activate_totp(page, demo) -> str:
    """The five-step wizard; returns the secret, as read on the page."""
    page.click("#activate-totp")
    page.wait_for_url(f"{demo.idp_url}/login/totp/?*")
    page.click("#submit")                       # Coordonnées: the address on record
    page.locator("#apps").wait_for()            # Installer une application mobile
    page.click("#submit")
    page.locator("#qr").wait_for()              # Activer une application mobile
    assert page.locator("#qr").evaluate("img => img.complete && img.naturalWidth > 0")
    secret = page.locator("#secret").inner_text().replace(" ", "")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("#submit")                       # Marie has a username + password: done
    page.wait_for_url(f"{demo.idp_url}/account/keys?activated=totp")
    return secret


def portal_login_with(page, demo, key: str) -> None:
    """At Mon Espace: "Se connecter", the key, username + password; ends on the code page."""
    page.goto(demo.portal_url("monespace") + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    page.click(f"#key-{key}")
    page.fill("#username", "marie.dupont")
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit")
    page.locator("#code").wait_for()


def logged_in_at_mon_espace(page, demo) -> None:
    page.wait_for_url(demo.portal_url("monespace") + "/")
    assert "Marie" in page.locator("body").inner_text()


def test_activate_three_keys_log_out_and_log_in_with_each(demo, context):
    page = context.new_page()
    violations = csp_violations(page)
    login_strong_in_browser(page, demo.idp_url, MARIE_NRN)   # "S'identifier avec le lecteur de cartes eID"
    activate_sent_code_key(page, demo, "email_code", MAIL, demo.mail)
    activate_sent_code_key(page, demo, "sms_code", MOBILE, demo.sms, typed="0470 12 34 56")
    secret = activate_totp(page, demo)
    # The notices, to the address the e-mail key confirmed (it became the person's address).
    assert sum("activée" in m.subject for m in demo.mail.to(MAIL)) == 3
    page.click("#nav-logout")
    page.wait_for_url(f"{demo.idp_url}/**")

    # By e-mail (level 200): the masked address, a resend too soon, the mailed code.
    portal_login_with(page, demo, "email_code")
    assert page.locator("#sent-to").inner_text().count("m*****@example.be") == 1
    page.click("#resend")
    assert page.locator("#error").get_attribute("data-code") == "resend_too_soon"
    page.fill("#code", demo.mail.last_code(MAIL))
    page.click("#submit")
    logged_in_at_mon_espace(page, demo)
    page.click("text=Se déconnecter du portail")
    page.wait_for_url(demo.portal_url("monespace") + "/**")

    # By SMS (level 300).
    portal_login_with(page, demo, "sms_code")
    assert "56" in page.locator("#sent-to").inner_text() and "470123456" not in page.content()
    page.fill("#code", demo.sms.last_code(MOBILE))
    page.click("#submit")
    logged_in_at_mon_espace(page, demo)
    page.click("text=Se déconnecter du portail")
    page.wait_for_url(demo.portal_url("monespace") + "/**")

    # With the authenticator app (level 400): a wrong code first, then the app's.
    portal_login_with(page, demo, "totp")
    right = pyotp.TOTP(secret).now()
    page.fill("#code", f"{(int(right) + 1) % 1_000_000:06d}")
    page.click("#submit")
    assert page.locator("#error").is_visible()
    # The code of the next 30-second step (within the window): the current one may be the
    # very code that confirmed the activation, refused again as already used.
    page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("#submit")
    logged_in_at_mon_espace(page, demo)
    assert violations == []


def test_a_key_not_yet_activated_says_so_and_points_to_my_keys(demo, context):
    page = context.new_page()
    violations = csp_violations(page)
    page.goto(demo.portal_url("monespace") + "/")
    page.click("#login")

    def not_active_page():
        page.click("#key-sms_code")
        page.fill("#username", "jan.peeters")
        page.fill("#password", DEMO_PASSWORD)
        page.click("#submit")
        assert page.locator("#error").get_attribute("data-code") == "key_not_active"

    not_active_page()
    page.click("#choose-other")                   # "Choisissez une autre clé numérique."
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    not_active_page()
    page.click("#manage-keys")                    # "Mes clés numériques"
    page.wait_for_url(f"{demo.idp_url}/account/keys")
    assert page.locator("#login-strong").is_visible()  # activation needs the eID or itsme
    assert violations == []

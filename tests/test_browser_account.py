"""The citizen's own pages in a real browser (Debian's chromium through
Playwright): every page and button of "Mes clés numériques" (before and after
the strong login, Activer, Supprimer with its confirmation, Modifier password
and username), "Mon profil", and "Nom d'utilisateur et/ou mot de passe
oublié(s)?" up to the new password, with a real SMTP server; no page breaks its
Content-Security-Policy.
"""
from __future__ import annotations

import datetime as dt

import pytest

from idp.app.demo import DEMO_PASSWORD, make_nrn
from tests.live import live_demo
from tests.messaging import mail_settings
from tests.standin_keys import KEY_TYPES
from tests.strong_login import login_strong_in_browser, strong_keys
from tests.test_browser_journeys import csp_violations

pytestmark = pytest.mark.browser
ACTIVATION_CODE = "ACT-13579"
MARIE_NRN = make_nrn(dt.date(1985, 3, 14), 123)
MARIE_MAIL = "marie.dupont@example.be"
CODES_TO = "marie.codes@example.be"
NEW_PASSWORD = "Nouveau-Sesame-2027!"


@pytest.fixture
def demo(tmp_path, smtp_server):
    keys = strong_keys("password", "standin_activation", standin_activation={"activation_code": ACTIVATION_CODE})
    with live_demo(tmp_path, key_types=KEY_TYPES, keys=keys, mail=mail_settings(smtp_server)) as running:
        running.inbox = smtp_server.inbox
        yield running


def password_login_from(page, demo, username="marie.dupont", password=DEMO_PASSWORD, *, back: str | None = None):
    """On a page offering "S'identifier": through the key choice and the password key, back there (or ``back``)."""
    back = back or page.url
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    page.click("#key-password")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#submit")
    page.wait_for_url(back)


def test_keys_page_strong_login_activate_and_remove(demo, context):
    page = context.new_page()
    violations = csp_violations(page)
    page.goto(f"{demo.idp_url}/account/keys")
    assert page.locator("#error").get_attribute("data-code") == "login_required"
    password_login_from(page, demo)
    assert page.locator("#key-password .active").inner_text() == "ACTIVE"
    assert page.locator("#key-standin_activation").get_attribute("data-active") == "no"
    assert page.locator("#activate-standin_activation").count() == 0  # level 100: no Activer
    assert page.locator("#login-strong").is_visible()

    login_strong_in_browser(page, demo.idp_url, MARIE_NRN)  # "S'identifier avec le lecteur de cartes eID"
    assert page.locator("#login-strong").count() == 0
    page.click("#activate-standin_activation")  # "Activer"
    page.wait_for_url(f"{demo.idp_url}/login/standin_activation/?*")
    page.fill("#code", ACTIVATION_CODE)
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/account/keys?activated=standin_activation")
    assert page.locator("#activated").is_visible()
    assert page.locator("#key-standin_activation").get_attribute("data-active") == "yes"
    assert "activée" in demo.inbox.wait_for(MARIE_MAIL).subject

    page.click("#remove-standin_activation")  # "Supprimer": first the confirmation
    page.wait_for_url(f"{demo.idp_url}/account/keys/standin_activation/remove")
    page.click("#cancel")
    page.wait_for_url(f"{demo.idp_url}/account/keys")
    assert page.locator("#key-standin_activation").get_attribute("data-active") == "yes"
    page.click("#remove-standin_activation")
    page.click("#confirm-remove")
    page.wait_for_url(f"{demo.idp_url}/account/keys?done=removed")
    assert page.locator("#done").is_visible()
    assert page.locator("#key-standin_activation").get_attribute("data-active") == "no"
    assert page.locator("#activate-standin_activation").is_visible()  # the strong session may activate again
    assert "supprimée" in demo.inbox.wait_for(MARIE_MAIL, count=2).subject
    assert violations == []


def test_modify_password_and_username_then_profile(demo, context):
    page = context.new_page()
    violations = csp_violations(page)
    page.goto(f"{demo.idp_url}/")
    password_login_from(page, demo, "jan.peeters")
    page.click("#my-keys")
    page.wait_for_url(f"{demo.idp_url}/account/keys")

    page.click("#modify-password")
    page.fill("#current", "Not-The-Password-1")
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("#submit")
    assert page.locator("#error").get_attribute("data-code") == "wrong_current_password"
    page.fill("#current", DEMO_PASSWORD)
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/account/keys?done=password")

    page.click("#modify-username")
    page.fill("#username", "marie.dupont")
    page.click("#submit")
    assert page.locator("#error").get_attribute("data-code") == "username_taken"
    page.fill("#username", "jan.p")
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/account/keys?done=username")

    page.click("#nav-profile")  # "Mon profil"
    page.wait_for_url(f"{demo.idp_url}/account/profile")
    assert page.locator("#name").inner_text() == "Jan Peeters"
    page.fill("#mail", "jan.nieuw@example.be")
    page.select_option("#lang", "nl")
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/account/profile?saved=1")
    assert page.locator("#saved").is_visible()
    page.wait_for_selector("html[lang=nl]")  # the pages follow the new language
    assert page.locator("#mail").input_value() == "jan.nieuw@example.be"

    page.click("#nav-logout")  # "Se déconnecter": the single-logout page, then "logged out"
    page.wait_for_selector("#logged-out, #partial")
    page.goto(f"{demo.idp_url}/account/keys")
    password_login_from(page, demo, "jan.p", NEW_PASSWORD)  # the new username and password
    assert page.locator("#key-password").get_attribute("data-active") == "yes"
    assert violations == []


def test_forgot_username_and_password_up_to_the_new_password(demo, context):
    fedid = demo.services.credentials.find(key="password", username="marie.dupont").person_fedid
    demo.services.credentials.activate(key="email_code", person_fedid=fedid, data={"to": CODES_TO})
    page = context.new_page()
    violations = csp_violations(page)
    page.goto(f"{demo.idp_url}/")
    page.click("#forgot")
    page.wait_for_url(f"{demo.idp_url}/account/forgot")
    page.fill("#identifier", MARIE_MAIL)
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/account/forgot/code")
    assert page.locator("#sent").is_visible()
    demo.inbox.wait_for(CODES_TO)
    page.fill("#code", "000000" if demo.inbox.last_code(CODES_TO) != "000000" else "111111")
    page.click("#submit")
    assert page.locator("#error").get_attribute("data-code") == "bad_code"
    page.fill("#code", demo.inbox.last_code(CODES_TO))
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/account/forgot/password")
    assert page.locator("#username").inner_text() == "marie.dupont"
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("#submit")
    assert page.locator("#done").is_visible()
    # "S'identifier", with the new password, ends on the keys page
    password_login_from(page, demo, "marie.dupont", NEW_PASSWORD, back=f"{demo.idp_url}/account/keys")
    assert page.locator("#key-password").get_attribute("data-active") == "yes"
    assert violations == []

"""Journeys in a real browser (Debian's chromium through Playwright): Sésame's own
home page and its buttons ("S'identifier", "Activer", "Annuler", "Retour"),
with the stand-in keys of tests/standin_keys served live:

* the provider and the card helper listen on 127.0.0.1 while Sésame is
  ``localhost``: another *site*, so the provider's ``form_post`` is a real
  cross-site POST that chromium sends without the SameSite=Lax cookie;
* the card page's script reaches the helper under the page's own CSP
  (``connect-src`` extended for that page only), as a card reader helper would.
"""
from __future__ import annotations

import pytest

from idp.app.demo import DEMO_PASSWORD, serve_in_thread
from tests.browsers import record_urls
from tests.live import HOST, free_port, live_demo
from tests.standin_keys import KEY_TYPES
from tests.standin_keys.provider import SECRET, create_provider

pytestmark = pytest.mark.browser
ACTIVATION_CODE = "ACT-98765"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    provider_port = free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    keys = {"enabled": ["password", "standin_redirect", "standin_card", "standin_activation"],
            "standin_redirect": {"provider_url": provider_url, "secret": SECRET},
            "standin_card": {"helper_url": provider_url, "secret": SECRET},
            "standin_activation": {"activation_code": ACTIVATION_CODE}}
    # The engine's activation path after a password login; the level 500 an activation
    # needs by default is tested in tests/test_account_keys.py.
    with live_demo(tmp_path_factory.mktemp("live-journeys"), key_types=KEY_TYPES, keys=keys,
                   account={"activation_level": 100}) as running:
        running.servers.append(serve_in_thread(create_provider(), HOST, provider_port))
        running.provider_url = provider_url
        yield running


def csp_violations(page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None)
    return found


def open_key_choice(demo, page):
    page.goto(demo.idp_url + "/")
    page.click("#login")  # "S'identifier": a journey without a portal
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    assert page.locator(".portal").count() == 0  # no "Service en ligne :" line without a portal


def test_login_from_the_home_page_through_a_provider_and_a_cross_site_return(demo, context):
    page = context.new_page()
    seen = record_urls(page)
    open_key_choice(demo, page)
    page.click("#key-standin_redirect")  # → provider (another site) → form_post back to Sésame
    page.wait_for_url(f"{demo.idp_url}/")
    assert page.locator("#identified").inner_text().endswith("Marie Dupont.")
    assert any(url.startswith(demo.provider_url + "/authorize") for url in seen), seen
    # chromium sent the cross-site POST without the cookie: it was parked and resumed by a GET
    assert any("/login/standin_redirect/return?resume=" in url for url in seen), seen


def test_card_page_reaches_its_helper_under_its_own_policy(demo, context):
    page = context.new_page()
    violations = csp_violations(page)
    open_key_choice(demo, page)
    with page.expect_response(lambda r: "/login/standin_card/" in r.url and r.request.method == "GET") as first:
        page.click("#key-standin_card")
    assert f"connect-src 'self' {demo.provider_url}" in first.value.headers["content-security-policy"]
    page.wait_for_url(f"{demo.idp_url}/")  # the script signed, posted the JSON step, went on
    assert page.locator("#identified").inner_text().endswith("Marie Dupont.")
    assert violations == []


def test_activation_from_the_home_page_and_back(demo, context):
    page = context.new_page()
    open_key_choice(demo, page)
    page.click("#key-standin_redirect")
    page.wait_for_url(f"{demo.idp_url}/")
    page.click("#activate-standin_activation")  # "Activer"
    page.wait_for_url(f"{demo.idp_url}/login/standin_activation/?*")
    page.fill("#code", "WRONG")
    page.click("#submit")
    assert page.locator("#error").get_attribute("data-code") == "bad_code"
    page.fill("#code", ACTIVATION_CODE)
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/")
    assert page.locator("#activate-standin_activation").count() == 0  # activated: no longer offered
    assert page.locator("#identified").is_visible()


def test_too_many_activation_codes_end_on_a_page_with_a_way_back(demo, context):
    page = context.new_page()
    open_key_choice(demo, page)
    page.click("#key-password")
    page.fill("#username", "lea.schmitz")  # not Marie: she activated the key above
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/")
    page.click("#activate-standin_activation")
    for _ in range(3):
        page.fill("#code", "WRONG")
        page.click("#submit")
        page.locator("#error").wait_for()
    page.fill("#code", ACTIVATION_CODE)  # too late: the attempts are used up
    page.click("#submit")
    assert page.locator("#error").get_attribute("data-code") == "too_many_attempts"
    page.click("#back")  # "Retour"
    page.wait_for_url(f"{demo.idp_url}/")
    assert page.locator("#identified").is_visible()


def test_cancel_on_the_key_choice_without_a_portal_goes_back(demo, context):
    page = context.new_page()
    open_key_choice(demo, page)
    assert page.locator("#cancel").inner_text() == "Annuler"
    page.click("#cancel")
    page.wait_for_url(f"{demo.idp_url}/")
    assert page.locator("#login").is_visible() and page.locator("#identified").count() == 0


def test_home_login_with_the_password_in_dutch(demo, context):
    page = context.new_page()
    page.goto(demo.idp_url + "/")
    page.click("header a[hreflang=nl]")
    page.wait_for_selector("html[lang=nl]")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    assert page.locator("#cancel").inner_text() == "Annuleren"
    page.click("#key-password")
    page.fill("#username", "jan.peeters")
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{demo.idp_url}/")
    assert "Jan Peeters" in page.locator("#identified").inner_text()

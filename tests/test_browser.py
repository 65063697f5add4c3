"""End to end in a real browser: Debian's chromium driven by Playwright, against a
live Sésame and the two demo portals (tests/live.py).

Never downloads a browser: chromium is /usr/bin/chromium (``apt-get install chromium``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from idp.app.demo import DEMO_PASSWORD
from tests.browsers import record_urls
from tests.live import live_demo

pytestmark = pytest.mark.browser

NL_CATALOG = Path(__file__).resolve().parent.parent / "idp" / "translations" / "nl" / "LC_MESSAGES" / "messages.po"

PASSWORD_TITLE_FR = "IDENTIFICATION avec vos nom d'utilisateur et mot de passe"
BAD_CREDENTIALS_FR = "Le nom d'utilisateur ou le mot de passe est incorrect."


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with live_demo(tmp_path_factory.mktemp("live")) as running:
        yield running


def attributes(page) -> dict[str, str]:
    cells = page.locator("#attributes td[data-attr]")
    return {cells.nth(i).get_attribute("data-attr"): cells.nth(i).inner_text() for i in range(cells.count())}


def open_password_form(demo, page, slug: str = "monespace") -> None:
    """From the portal's home to Sésame's password form."""
    page.goto(demo.portal_url(slug) + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    assert "Choisissez votre clé numérique" in page.locator("main").inner_text()
    page.click("#key-password")
    page.wait_for_url(f"{demo.idp_url}/login/password/?*")


def logged_in_at_both_portals(demo, page, username: str) -> tuple[str, str]:
    """Password login at Mon Espace, then single sign-on at FSE 21-27; their addresses."""
    open_password_form(demo, page)
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit")
    monespace, fse = demo.portal_url("monespace"), demo.portal_url("fse")
    page.wait_for_url(f"{monespace}/")
    page.goto(fse + "/")
    page.click("#login")
    page.wait_for_url(f"{fse}/")
    return monespace, fse


def test_login_then_single_sign_on_to_second_portal(demo, context):
    from playwright.sync_api import expect

    page = context.new_page()
    open_password_form(demo, page)
    page.fill("#username", "marie.dupont")
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit")  # → autopost page → Mon Espace's /acs → its home page

    monespace = demo.portal_url("monespace")
    page.wait_for_url(f"{monespace}/")
    expect(page.locator("#welcome")).to_have_text("Bienvenue, Marie Dupont")
    got = attributes(page)
    assert got["egovNRN"] == "85031412302"
    assert got["birthDate"] == "1985-03-14"
    assert got["surname"] == "Dupont" and got["givenName"] == "Marie"
    assert page.locator("#authn-context").inner_text() == "urn:be:fedict:iam:fas:citizen:Level100"

    # FSE 21-27, same browser: single sign-on, Sésame's login page never shows.
    fse = demo.portal_url("fse")
    page = context.new_page()
    seen = record_urls(page)
    page.goto(fse + "/")
    page.click("#login")   # → FSE's POST form → Sésame /saml/sso → autopost → FSE's /acs
    page.wait_for_url(f"{fse}/")
    expect(page.locator("#welcome")).to_have_text("Bienvenue, Marie Dupont")
    assert attributes(page) == {"surname": "Dupont", "givenName": "Marie"}
    assert any(url.startswith(f"{demo.idp_url}/saml/sso") for url in seen), seen
    assert not [url for url in seen if demo.is_idp_login_url(url)], seen


def test_wrong_password_error_then_dutch(demo, context, tmp_path):
    page = context.new_page()
    open_password_form(demo, page)
    shot = tmp_path / "login.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 1000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.fill("#username", "marie.dupont")
    page.fill("#password", "not-the-password")
    page.click("#submit")
    error = page.locator("#error")
    error.wait_for()
    assert error.get_attribute("data-code") == "bad_credentials"
    assert error.inner_text() == BAD_CREDENTIALS_FR
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("#username").input_value() == "marie.dupont"
    french = page.locator("main").inner_text()
    assert PASSWORD_TITLE_FR in french

    page.click("header a[hreflang=nl]")
    page.wait_for_selector("html[lang=nl]")
    page.wait_for_url(f"{demo.idp_url}/login/password/**")  # same login, now in Dutch
    assert page.locator("#username").is_visible()
    assert page.locator("header strong[lang=nl]").inner_text() == "nl"
    if NL_CATALOG.exists():
        dutch = page.locator("main").inner_text()
        assert dutch != french
        assert PASSWORD_TITLE_FR not in dutch


def test_logout_at_one_portal_logs_out_of_the_other(demo, context):
    from playwright.sync_api import expect

    page = context.new_page()
    monespace, fse = logged_in_at_both_portals(demo, page, "jan.peeters")
    expect(page.locator("#welcome")).to_have_text("Bienvenue, Jan Peeters")

    page.goto(monespace + "/")
    seen = record_urls(page)
    page.click("text=Se déconnecter du portail")  # Mon Espace → Sésame → FSE 21-27 → Sésame → Mon Espace
    page.wait_for_url(f"{monespace}/?logout=ok")
    assert any(url.startswith(f"{fse}/slo") for url in seen), seen
    page.goto(fse + "/")
    expect(page.locator("#login")).to_be_visible()  # FSE's own session ended too
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")  # and Sésame asks for a key again


def test_logout_on_sesames_own_page_logs_out_of_every_portal(demo, context):
    """Logout started on Sésame's home page (not by a portal): the redirect chain to
    each portal must survive the page's Content-Security-Policy."""
    from playwright.sync_api import expect

    page = context.new_page()
    monespace, fse = logged_in_at_both_portals(demo, page, "lea.schmitz")

    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(demo.idp_url + "/")
    seen = record_urls(page)
    page.click("#logout")  # "Se déconnecter" on Sésame
    expect(page.locator("#logged-out")).to_be_visible()
    assert violations == [], violations
    assert any(url.startswith(f"{fse}/slo") for url in seen), seen
    assert any(url.startswith(f"{monespace}/slo") for url in seen), seen
    for portal in (monespace, fse):
        page.goto(portal + "/")
        expect(page.locator("#login")).to_be_visible()  # the portal's own session ended
    page.goto(demo.idp_url + "/")
    assert page.locator("#identified").count() == 0

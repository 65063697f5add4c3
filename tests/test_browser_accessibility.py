"""An automated accessibility check of Sésame's pages (issue 14 §5): axe-core, the
engine behind the usual audit tools, run in Debian's chromium on each page a
citizen reaches, anonymous and logged in, with and without an error.  No
serious or critical violation is accepted.

axe-core comes with ``axe-playwright-python`` (its ``axe.min.js``), injected
through the DevTools protocol, so the pages' own Content-Security-Policy stays
as it is.
"""
from __future__ import annotations

import pytest

from idp.app.demo import DEMO_PASSWORD
from tests.live import live_demo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with live_demo(tmp_path_factory.mktemp("live")) as running:
        yield running


def serious_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{page.url}: {v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_the_citizen_pages_pass_axe(demo, context):
    page = context.new_page()
    found: list[str] = []

    def check(url: str | None = None) -> None:
        if url:
            page.goto(url)
        found.extend(serious_violations(page))

    for path in ("/", "/help", "/privacy", "/accessibility", "/contact", "/account/forgot",
                 "/login/?tx=unknown"):  # the last one: the error page
        check(demo.idp_url + path)

    page.goto(demo.portal_url("monespace") + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    check()  # the key choice
    # "Besoin d'aide ?", as a citizen clicks it, then back to the key choice
    page.click("#help")
    page.wait_for_url(f"{demo.idp_url}/help")
    assert page.locator("#faq h2").count() >= 4
    page.click("#help-forgot")
    page.wait_for_url(f"{demo.idp_url}/account/forgot*")
    for link, path in (("#footer-privacy", "/privacy"), ("#footer-accessibility", "/accessibility"),
                       ("#footer-contact", "/contact"), ("#footer-help", "/help")):
        page.click(link)
        page.wait_for_url(f"{demo.idp_url}{path}")
    for _ in range(6):  # help, forgot, and the four footer pages: back to the key choice
        page.go_back()
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    page.click("#key-password")
    page.wait_for_url(f"{demo.idp_url}/login/password/?*")
    check()  # the password form
    page.fill("#username", "marie.dupont")
    page.fill("#password", "wrong")
    page.click("#submit")
    page.wait_for_selector("#error")
    check()  # the form with its error
    described = page.locator("#password").get_attribute("aria-describedby") or ""
    assert "error" in described.split(), "the error is tied to its field"
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit")
    page.wait_for_url(demo.portal_url("monespace") + "/")

    for path in ("/", "/account/keys", "/account/sessions", "/account/profile"):
        check(demo.idp_url + path)
    page.goto(demo.idp_url + "/account/sessions")
    page.click("#logout-all")
    page.wait_for_selector("#logged-out, #partial")
    check()  # the logged-out page
    assert found == [], "\n".join(found)

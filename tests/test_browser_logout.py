"""Logout that never gets stuck, in Debian's chromium (issue 11 §2-3).

Three portals in one session: Mon Espace and FSE 21-27 (live example portals)
and a third whose server is down.  The citizen opens "Mes sessions" on Sésame,
sees the three portals with since when, which key and which level, and clicks
"Me déconnecter de tous les services en ligne": the two live portals are logged
out through their frames, the page ends within the front-channel limit, and it
names the portal that could not be reached.
"""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tests.browsers import record_urls
from tests.live import free_port, live_demo
from tests.saml_sp import FSE, TestPortal
from tests.test_browser import logged_in_at_both_portals

pytestmark = pytest.mark.browser

FRONT_WAIT = 3  # [logout] front_channel_timeout_seconds for this test


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with live_demo(tmp_path_factory.mktemp("live"), logout={"front_channel_timeout_seconds": FRONT_WAIT}) as running:
        yield running


def join_the_down_portal(demo, context, tmp_path) -> TestPortal:
    """A portal whose server is down joins the session: Sésame answers its request
    (single sign-on) and the browser (another tab) fails to deliver the answer."""
    page = context.new_page()
    down = TestPortal(demo.services, replace(FSE, slug="down", title="Portail hors ligne",
                                             base_url=f"http://localhost:{free_port()}",
                                             policy=(*FSE.policy, ("display_name", "Portail hors ligne"))),
                      tmp_path / "sp")
    sent = down.request()
    assert sent.method == "POST"
    # The browser carries the portal's AuthnRequest (HTTP-POST) to Sésame, as the portal's page would.
    page.goto(f"{demo.idp_url}/")
    page.evaluate("""([action, fields]) => {
        const form = document.createElement('form'); form.method = 'post'; form.action = action;
        for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement('input'); input.type = 'hidden';
            input.name = name; input.value = value; form.appendChild(input); }
        document.body.appendChild(form); form.submit(); }""", [demo.idp_url + sent.path, sent.data])
    from playwright.sync_api import Error as BrowserError

    with pytest.raises(BrowserError, match="ERR_CONNECTION_REFUSED"):  # the server is down
        page.wait_for_url(f"{down.spec.base_url}/acs", wait_until="commit")
    page.close()
    return down


def test_sessions_page_then_logout_of_all_with_one_portal_down(demo, context, tmp_path):
    from playwright.sync_api import expect

    page = context.new_page()
    monespace, fse = logged_in_at_both_portals(demo, page, "marie.dupont")
    join_the_down_portal(demo, context, tmp_path)

    page.goto(f"{demo.idp_url}/")
    page.click("#my-sessions")
    page.wait_for_url(f"{demo.idp_url}/account/sessions")
    rows = page.locator("#portals tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(3)] == \
        ["Mon Espace", "FSE 21-27 (Agence FSE)", "Portail hors ligne"]
    first = rows.nth(0).locator("td")
    assert first.nth(2).inner_text() == "nom d'utilisateur et mot de passe" and first.nth(3).inner_text() == "100"
    expect(page.locator("#session-since")).to_contain_text("30 minutes")

    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    seen = record_urls(page)
    started = time.monotonic()
    page.click("#logout-all")
    expect(page.locator("#partial")).to_be_visible(timeout=(FRONT_WAIT + 5) * 1000)
    assert time.monotonic() - started < FRONT_WAIT + 4  # the down portal cost the wait, not the logout
    expect(page.locator("#unreachable li")).to_have_text(["Portail hors ligne"])
    assert violations == [], violations
    assert any(url.startswith(f"{fse}/slo") for url in seen), seen
    assert any(url.startswith(f"{monespace}/slo") for url in seen), seen
    for portal in (monespace, fse):
        page.goto(portal + "/")
        expect(page.locator("#login")).to_be_visible()  # each live portal's own session ended
    page.goto(f"{demo.idp_url}/account/sessions")
    expect(page.locator("#login-needed, #error")).to_have_count(1)  # nobody is logged in any more


def test_logout_with_every_portal_up_says_so(demo, context):
    from playwright.sync_api import expect

    page = context.new_page()
    logged_in_at_both_portals(demo, page, "jan.peeters")
    page.goto(f"{demo.idp_url}/account/sessions")
    expect(page.locator("#portals tbody tr")).to_have_count(2)
    started = time.monotonic()
    page.click("#nav-logout")  # the bar's "Se déconnecter": the same single logout
    expect(page.locator("#logged-out")).to_be_visible()
    assert time.monotonic() - started < FRONT_WAIT  # every frame answered: no waiting for the limit

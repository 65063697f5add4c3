"""Step-up in Debian's chromium (issue 11 §1): logged in at Mon Espace with the
password, the citizen opens FSE 21-27, which demands level 500. The key choice
says why, offers only the keys that reach 500; after the strong login (the
test-only stand-in of tests/standin_keys) FSE lets her in, and Mon Espace
answers at the higher level without a page."""
from __future__ import annotations

from dataclasses import replace

import pytest

from idp.app.demo import DEMO_PASSWORD, register_portal
from tests.live import live_demo
from tests.standin_keys import KEY_TYPES
from tests.strong_login import STRONG, STRONG_SECRET, strong_keys

pytestmark = pytest.mark.browser
MARIE_NRN = "85031412302"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live-step-up")
    with live_demo(tmp, key_types=KEY_TYPES, keys=strong_keys("password")) as running:
        for slug, level in (("monespace", 100), ("fse", 500)):
            spec = running.portals[slug]
            policy = {**dict(spec.policy), "accepted_keys": ["password", STRONG], "min_level": level}
            register_portal(running.services, replace(spec, policy=tuple(policy.items())), tmp / "portals")
        yield running


def test_a_portal_demanding_more_asks_for_a_stronger_key_and_both_share_it(demo, context):
    from playwright.sync_api import expect

    page = context.new_page()
    monespace, fse = demo.portal_url("monespace"), demo.portal_url("fse")
    page.goto(monespace + "/")
    page.click("#login")
    page.click("#key-password")
    page.fill("#username", "marie.dupont")
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit")
    page.wait_for_url(monespace + "/")
    expect(page.locator("#authn-context")).to_have_text("urn:be:fedict:iam:fas:citizen:Level100")

    page.goto(fse + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    expect(page.locator("#step-up")).to_contain_text("demande une clé numérique plus sûre")
    assert page.locator("a.key").count() == 1 and page.locator(f"#key-{STRONG}").is_visible()
    page.click(f"#key-{STRONG}")
    page.fill("#nrn", MARIE_NRN)
    page.fill("#secret", STRONG_SECRET)
    page.click("#prove")
    page.wait_for_url(fse + "/")
    expect(page.locator("#authn-context")).to_have_text("urn:be:fedict:iam:fas:citizen:Level500")

    page.goto(monespace + "/login")  # Mon Espace asks again: Sésame answers at once, at the higher level
    page.wait_for_url(monespace + "/")
    expect(page.locator("#authn-context")).to_have_text("urn:be:fedict:iam:fas:citizen:Level500")
    page.click("text=Se déconnecter du portail")  # one session: logging out of one logs out of both
    page.wait_for_url(f"{monespace}/?logout=ok")
    page.goto(fse + "/")
    expect(page.locator("#login")).to_be_visible()

"""The TOTP key's activation wizard in a real browser (Debian's chromium through
Playwright), against a live Sésame on the real clock: the QR code is an inline
image the page's own policy allows (img-src data:, on this key's pages only),
the secret is read off the page as a citizen would type it into an app, and
the code comes from pyotp as an authenticator app computes it.
"""
from __future__ import annotations

import datetime as dt

import pyotp
import pytest
from sqlalchemy import select

from idp.app.demo import make_nrn
from idp.persistence.models import Person
from tests.live import live_demo
from tests.standin_keys import KEY_TYPES
from tests.test_browser_journeys import csp_violations
from tests.strong_login import STRONG, STRONG_SECRET, strong_keys

pytestmark = pytest.mark.browser
MARIE_NRN = make_nrn(dt.date(1985, 3, 14), 123)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with live_demo(tmp_path_factory.mktemp("live-totp"), key_types=KEY_TYPES,
                   keys=strong_keys("password", "totp")) as running:
        yield running


def login_strong(demo, page) -> None:
    """Level 500 from the home page: "S'identifier", then the test-only strong stand-in key."""
    page.goto(demo.idp_url + "/")
    page.click("#login")
    page.click(f"#key-{STRONG}")
    page.fill("#nrn", MARIE_NRN)
    page.fill("#secret", STRONG_SECRET)
    page.click("#prove")
    page.wait_for_url(f"{demo.idp_url}/")
    assert page.locator("#identified").inner_text().endswith("Marie Dupont.")


def test_activation_wizard_with_the_qr_code_and_a_code_from_the_app(demo, context):
    page = context.new_page()
    violations = csp_violations(page)
    login_strong(demo, page)
    page.click("#activate-totp")  # "Activer"
    page.wait_for_url(f"{demo.idp_url}/login/totp/?*")

    # 1 Coordonnées: a malformed address is refused, the right one kept.
    assert page.locator("#mail").input_value() == "marie.dupont@example.be"
    page.fill("#mail", "marie@example")
    page.click("#submit")
    assert page.locator("#error").get_attribute("data-code") == "bad_email"
    page.fill("#mail", "marie.dupont@example.be")
    page.click("#submit")
    # 2 Installer une application mobile
    page.wait_for_url(f"{demo.idp_url}/login/totp/install?*")
    assert "Google Authenticator" in page.locator("#apps").inner_text()
    page.click("#submit")
    # 3 Activer une application mobile: the QR code loaded under the page's policy.
    page.wait_for_url(f"{demo.idp_url}/login/totp/scan?*")
    qr = page.locator("img#qr")
    assert qr.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("() => { const i = document.getElementById('qr'); return i.complete && i.naturalWidth; }") > 0
    secret = page.locator("#secret").inner_text().replace(" ", "")
    assert len(secret) == 32
    page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.click("#submit")
    assert page.locator("#error").get_attribute("data-code") == "wrong_code"
    assert page.locator("#secret").inner_text().replace(" ", "") == secret  # same seed after an error
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("#submit")
    # Marie has a username + password: step 4 is skipped, the key is active, back home.
    page.wait_for_url(f"{demo.idp_url}/")
    assert page.locator("#activate-totp").count() == 0
    assert demo.services.credentials.has_active(key="totp", person_fedid=_fedid(demo))
    assert violations == []


def _fedid(demo) -> str:
    with demo.services.database.session() as s:
        return s.scalar(select(Person.fedid).where(Person.nrn == MARIE_NRN))

"""The demo's own parts: citizens with security-code keys ready, and the outbox
page that stands in for a mail server and an SMS gateway (demo mode only)."""
from __future__ import annotations

import re

import pyotp
import pytest

from idp import create_app
from idp.app.demo import DEMO_PASSWORD, create_citizens, create_demo_keys
from idp.app.services import Services
from tests.conftest import idp_settings
from tests.live import live_demo
from tests.test_browser_journeys import csp_violations

CODE_KEYS = ["password", "totp", "email_code", "sms_code"]


def test_demo_citizens_get_their_keys_once(tmp_path):
    services = Services.build(idp_settings(tmp_path, keys={"enabled": CODE_KEYS}))
    create_citizens(services)
    seeds = create_demo_keys(services)
    again = create_demo_keys(services)
    assert seeds == again and set(seeds) == {"marie.dupont"}
    assert len(seeds["marie.dupont"]) == 32 and pyotp.TOTP(seeds["marie.dupont"]).now().isdigit()

    def active(username):
        fedid = services.credentials.find(key="password", username=username).person_fedid
        return sorted(c.key for c in services.credentials.all_of_person(fedid) if c.active)

    assert active("marie.dupont") == sorted(CODE_KEYS)
    assert active("lea.schmitz") == ["email_code", "password"]
    assert active("jan.peeters") == ["password"]  # the one who can try the activations


def test_the_outbox_page_exists_in_demo_mode_only(tmp_path):
    demo = create_app(services=Services.build(idp_settings(tmp_path / "demo", keys={"enabled": CODE_KEYS})))
    assert demo.test_client().get("/demo/outbox").status_code == 200
    # Outside demo mode a node needs its secrets and signing key (and a real mail server for the code keys).
    settings = idp_settings(tmp_path / "real", server={"demo": False, "secret_key": "k" * 40,
                                                        "pairwise_secret": "p" * 40, "seal_key": "s" * 40},
                            signing=_signing(tmp_path))
    assert create_app(services=Services.build(settings)).test_client().get("/demo/outbox").status_code == 404


def _signing(tmp_path) -> dict:
    from keys.generate import ensure_key_pair

    key, cert = ensure_key_pair(directory=tmp_path / "signing", common_name="idp.test")
    return {"key_file": str(key), "cert_file": str(cert)}


@pytest.mark.browser
def test_a_code_read_in_the_outbox_logs_in_at_a_portal(tmp_path, context):
    with live_demo(tmp_path, keys={"enabled": CODE_KEYS}) as demo:
        create_demo_keys(demo.services)
        page = context.new_page()
        violations = csp_violations(page)
        page.goto(demo.portal_url("monespace") + "/")
        page.click("#login")
        page.click("#key-email_code")
        page.fill("#username", "lea.schmitz")
        page.fill("#password", DEMO_PASSWORD)
        page.click("#submit")
        page.locator("#code").wait_for()
        outbox = context.new_page()
        outbox.goto(f"{demo.idp_url}/demo/outbox")
        latest = outbox.locator("#outbox li").first.inner_text()
        assert "lea.schmitz@example.be" in latest
        page.fill("#code", re.search(r"\b(\d{6})\b", latest)[1])
        page.click("#submit")
        page.wait_for_url(demo.portal_url("monespace") + "/")
        assert "Lea" in page.locator("body").inner_text()
        assert violations == []


def test_the_demo_office_has_marie_as_its_officer_once(tmp_path):
    from idp.app.demo import DEMO_OFFICE, create_demo_office
    from idp.office.registry import RegistrationOffice

    services = Services.build(idp_settings(tmp_path, keys={"enabled": CODE_KEYS}))
    create_citizens(services)
    assert create_demo_office(services) == create_demo_office(services) == DEMO_OFFICE[0]
    office = RegistrationOffice.from_services(services)
    marie = services.credentials.find(key="password", username="marie.dupont").person_fedid
    assert office.is_officer(DEMO_OFFICE[0], marie)
    assert [o.code for o in office.offices()] == [DEMO_OFFICE[0]]

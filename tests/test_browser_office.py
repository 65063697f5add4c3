"""The registration office in a real browser (Debian's chromium through
Playwright): the officer's registration form after the strong login, the
list's "Nouveau code d'activation" and "Nouveau token" buttons, "Renouveler"
of an active token in "Mes clés numériques"; then,
in the citizen's own browser, the activation page from the e-mail's link (a
wrong code first, the attempts left shown), the key choice, the language, the
terms, username and password, the key's wizard, and the page saying the
citizen was logged out; no page
breaks its Content-Security-Policy.
"""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pyotp
import pytest

from idp.app.demo import make_nrn
from idp.journeys.context import Ports
from idp.office.registry import RegistrationOffice
from tests.browsers import TIMEOUT_MS
from tests.live import live_demo
from tests.messaging import mail_settings
from tests.standin_keys import KEY_TYPES
from tests.strong_login import login_strong_in_browser, strong_keys
from tests.test_browser_journeys import csp_violations

pytestmark = pytest.mark.browser
OFFICE = "BXL-1"
JAN_NRN = make_nrn(dt.date(1990, 7, 2), 45)
MAIL = "naima.mremi@example.fr"


@pytest.fixture
def demo(tmp_path, smtp_server):
    with live_demo(tmp_path, key_types=KEY_TYPES, keys=strong_keys("password", "totp"),
                   mail=mail_settings(smtp_server)) as running:
        office = RegistrationOffice.from_services(running.services)  # what `sesame office add` / `officer grant` do
        office.add_office(OFFICE, "Bureau d'enregistrement de Bruxelles")
        office.grant(OFFICE, JAN_NRN)
        running.inbox = smtp_server.inbox
        yield running


def register(officer, *, doc_number: str = "19FV12345") -> str:
    """The officer's registration form, filled as at the counter; the activation code shown once."""
    officer.select_option("#doc_type", "passport")
    officer.fill("#doc_number", doc_number)
    officer.fill("#doc_country", "FR")
    officer.fill("#doc_expiry", f"{dt.date.today().year + 5}-06-30")
    officer.fill("#surname", "Mremi")
    officer.fill("#given_names", "Naïma")
    officer.fill("#birth_date", "1988-04-21")
    officer.select_option("#sex", "F")
    officer.fill("#nationality", "FR")
    officer.fill("#mail", MAIL)
    officer.select_option("#lang", "fr")
    officer.click("#submit")
    officer.wait_for_selector("#activation-code")
    code = officer.locator("#activation-code").inner_text()
    return code


def test_the_officer_registers_and_the_citizen_starts_the_activation(demo, browser, context):
    officer = context.new_page()
    violations = csp_violations(officer)
    login_strong_in_browser(officer, demo.idp_url, JAN_NRN, next_path=f"/office/{OFFICE}/register")
    assert officer.locator("#office-name").get_attribute("data-office") == OFFICE
    code = register(officer)
    assert re.fullmatch(r"[A-Z0-9]{5}( [A-Z0-9]{5}){3}", code)
    officer.click("#to-registrations")
    assert officer.locator("#registrations tbody tr").count() == 1
    assert code not in officer.content()  # shown once

    # The citizen, in their own browser, from the e-mail.
    found = re.search(r"(https?://\S+/office/activation/\S+)", demo.inbox.wait_for(MAIL).text)
    citizen_context = browser.new_context(locale="fr-BE")
    citizen_context.set_default_timeout(TIMEOUT_MS)
    try:
        citizen = citizen_context.new_page()
        violations += csp_violations(citizen)
        citizen.goto(found[1])
        assert citizen.locator("#steps").get_attribute("data-step") == "1"
        citizen.fill("#code", "AAAAA AAAAA AAAAA AAAAA" if not code.startswith("AAAAA") else "BBBBB BBBBB BBBBB BBBBB")
        citizen.click("#submit")
        assert citizen.locator("#error").get_attribute("data-code") == "bad_activation_code"
        assert citizen.locator("#attempts-left").get_attribute("data-left") == "2"
        citizen.fill("#code", code)
        citizen.click("#submit")
        citizen.wait_for_url(f"{demo.idp_url}/office/activation/key")
        assert citizen.locator("#steps").get_attribute("data-step") == "2"
        with citizen_context.expect_page() as opened:
            citizen.click("#terms-page")                   # "Lire les conditions d'usage", in a new tab
        terms = opened.value
        terms.wait_for_load_state()
        assert terms.url == f"{demo.idp_url}/office/terms" and terms.locator("h1").is_visible()
        terms.close()
        with citizen.expect_download() as download:
            citizen.click("#terms-download")
        assert download.value.suggested_filename.endswith(".txt")
        citizen.check("#key-totp")
        citizen.select_option("#lang", "fr")
        citizen.check("#terms")
        citizen.fill("#username", "naima.mremi")
        citizen.fill("#password", "Gentiane-Orageuse-47")
        citizen.fill("#confirm", "Gentiane-Orageuse-47")
        citizen.click("#submit")
        citizen.wait_for_url(f"{demo.idp_url}/login/totp/**")
        assert urlsplit(citizen.url).path.startswith("/login/totp/")
        assert citizen.locator("#mail").input_value() == MAIL  # the wizard's first step, for this person
        citizen.click("#submit")                           # Coordonnées
        citizen.locator("#apps").wait_for()
        citizen.click("#submit")                           # Installer une application mobile
        secret = citizen.locator("#secret").inner_text().replace(" ", "")
        citizen.fill("#code", pyotp.TOTP(secret).now())
        citizen.click("#submit")                           # the username + password came with the code
        citizen.wait_for_url(f"{demo.idp_url}/office/activation/done")
        assert citizen.locator("#activated").get_attribute("data-key") == "totp"
        assert citizen.locator("#logged-out").is_visible()  # "vous avez été automatiquement déconnecté(e)"
        citizen.click("#to-keys")
        citizen.wait_for_url(f"{demo.idp_url}/account/keys")
        assert citizen.locator("#login-strong").is_visible()  # no session: the guide logs the citizen out
    finally:
        citizen_context.close()
    assert violations == []


@pytest.fixture
def with_token(tmp_path, smtp_server):
    with live_demo(tmp_path, key_types=KEY_TYPES, keys=strong_keys("password", "token"),
                   mail=mail_settings(smtp_server)) as running:
        office = RegistrationOffice.from_services(running.services)
        office.add_office(OFFICE, "Bureau d'enregistrement de Bruxelles")
        office.grant(OFFICE, JAN_NRN)
        running.inbox = smtp_server.inbox
        yield running


def test_the_officer_reissues_a_code_and_a_token_from_the_list(with_token, context):
    demo = with_token
    officer = context.new_page()
    violations = csp_violations(officer)
    login_strong_in_browser(officer, demo.idp_url, JAN_NRN, next_path=f"/office/{OFFICE}/register")
    first = register(officer)
    officer.click("#to-registrations")
    row = officer.locator("#registrations tbody tr").first
    rid = row.get_attribute("id").removeprefix("registration-")

    officer.click(f"#reissue-code-{rid}")            # "Nouveau code d'activation"
    officer.wait_for_selector("#activation-code")
    second = officer.locator("#activation-code").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{5}( [A-Z0-9]{5}){3}", second) and second != first
    assert demo.inbox.wait_for(MAIL, count=2)        # a new activation mail with a new link

    officer.click("#to-registrations")
    officer.click(f"#reissue-token-{rid}")           # "Nouveau token": the card shown once, mailed as a PDF
    officer.wait_for_selector("#card")
    shown = [officer.locator(f"#code-{n}").inner_text() for n in (1, 24)]
    assert all(re.fullmatch(r"[A-Z2-9]{8}", code) for code in shown)
    assert any(m.attachments for m in demo.inbox.to(MAIL))
    assert violations == []


def test_my_keys_offers_a_new_token_card(with_token, context):
    """"Renouveler" on an active token starts the token's wizard again (a new card)."""
    demo = with_token
    page = context.new_page()
    violations = csp_violations(page)
    login_strong_in_browser(page, demo.idp_url, JAN_NRN)
    assert page.locator("#activate-token").is_visible() and page.locator("#renew-token").count() == 0
    fedid = demo.services.credentials.find(key="password", username="jan.peeters").person_fedid
    adapter = demo.services.adapters["token"]  # a card already active, as an office gives it
    adapter.issue_card(Ports(adapter.id, demo.services.ports, adapter.ports), fedid, lang="fr")
    page.goto(f"{demo.idp_url}/account/keys")
    assert page.locator("#activate-token").count() == 0
    assert "24" in page.locator("#note-token").inner_text()
    page.click("#renew-token")                       # "Renouveler"
    page.wait_for_url(f"{demo.idp_url}/login/token/?*")
    assert violations == []

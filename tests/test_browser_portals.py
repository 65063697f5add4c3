"""The example portals (sp_examples/monespace, sp_examples/fse) in a real browser:
chromium through Playwright, a live Sésame, the portals' e-mails read from a
real SMTP server (aiosmtpd), the portals' clock moved to see 30 days pass."""
from __future__ import annotations

import re

import pytest
from aiosmtpd.controller import Controller
from axe_playwright_python.sync_playwright import Axe

from idp.app.demo import DEMO_PASSWORD
from sp_examples.common import Clock
from tests.live import free_port, live_demo
from tests.messaging import Inbox, _Handler

pytestmark = pytest.mark.browser

LINK = re.compile(r"http://\S+")


@pytest.fixture(scope="module")
def inbox():
    box = Inbox()
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, inbox, clock):
    options = {"mail": {"host": "127.0.0.1", "port": inbox[1]}, "clock": clock}
    with live_demo(tmp_path_factory.mktemp("portals"), portal_apps=True, portal_options=options) as running:
        yield running


def password_login(demo, page, slug: str, username: str) -> None:
    """From the portal's home, "Me connecter", through Sésame's password key."""
    page.goto(demo.portal_url(slug) + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    page.click("#key-password")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#submit")


def mail_links(box: Inbox, address: str, count: int = 1) -> list[str]:
    return LINK.findall(box.wait_for(address, count=count).text)


def activated_monespace_account(demo, page, box, username: str, mail: str) -> None:
    base = demo.portal_url("monespace")
    password_login(demo, page, "monespace", username)
    page.wait_for_url(f"{base}/inscription")
    page.fill("#mail", mail)
    page.fill("#mail_confirm", mail)
    page.click("#signup-submit")
    page.wait_for_url(f"{base}/inscription/envoye")
    page.goto(mail_links(box, mail)[0])


def test_monespace_first_login_with_the_validation_email(demo, context, inbox):
    box, _ = inbox
    base = demo.portal_url("monespace")
    page = context.new_page()
    page.goto(base + "/")
    assert "Guichet électronique de la Fédération Wallonie-Bruxelles" in page.locator("h1").inner_text()
    password_login(demo, page, "monespace", "marie.dupont")
    page.wait_for_url(f"{base}/inscription")
    assert page.locator('#identity dd[data-attr="surname"]').inner_text() == "Dupont"
    assert page.locator("#identity input").count() == 0          # read-only
    page.get_by_label("Adresse e-mail privée", exact=True).fill("marie.private@example.org")
    page.get_by_label("Confirmez l'adresse e-mail privée").fill("marie.private@example.org")
    page.click("#signup-submit")
    assert "marie.private@example.org" in page.locator("#pending").inner_text()
    page.click("#resend")
    assert "Un nouveau courriel vous a été envoyé." in page.locator("#notice").inner_text()
    first, second = mail_links(box, "marie.private@example.org"), mail_links(box, "marie.private@example.org", 2)
    page.goto(first[0])                                           # the resend retired it
    assert "n'est plus valable" in page.locator("#message").inner_text()
    page.goto(second[0])
    assert "Votre compte Mon Espace est maintenant activé" in page.locator("#validated").inner_text()
    page.click("#my-spaces")
    page.wait_for_url(f"{base}/espaces")
    spaces = page.locator("#spaces").inner_text()
    assert "Citoyen" in spaces and "Membre des personnels de l'enseignement" in spaces
    page.click("#logout-link")
    page.click("#logout-confirm")
    page.wait_for_url(f"{base}/?logout=ok")
    assert "Vous êtes déconnecté" in page.locator("#notice").inner_text()


def test_monespace_deletion_after_30_days_and_its_withdrawal(demo, context, inbox, clock):
    box, _ = inbox
    base = demo.portal_url("monespace")
    page = context.new_page()
    activated_monespace_account(demo, page, box, "lea.schmitz", "lea.private@example.org")
    page.goto(base + "/compte")
    page.click("#delete")
    assert "Votre compte sera supprimé le" in page.locator("#deletion-pending").inner_text()
    clock.advance(days=29)
    page.goto(base + "/compte")
    page.click("text=Annuler la suppression de mon compte")
    assert "La suppression de votre compte est annulée." in page.locator("#notice").inner_text()
    page.click("#delete")
    clock.advance(days=30, minutes=1)
    page.goto(base + "/espaces")                                  # the purge ran: the account is gone
    page.wait_for_url(f"{base}/inscription")


def test_fse_roles_granted_and_removed_between_two_people(demo, browser, inbox):
    box, _ = inbox
    base = demo.portal_url("fse")
    people = {}
    for username, mail in (("marie.dupont", "marie@asbl.example"), ("jan.peeters", "jan@asbl.example")):
        ctx = browser.new_context(locale="fr-BE")
        ctx.set_default_timeout(10_000)
        people[username] = page = ctx.new_page()
        password_login(demo, page, "fse", username)
        page.wait_for_url(f"{base}/bienvenue")
        page.fill("#mail", mail)
        page.click("#validate")
        page.goto(mail_links(box, mail)[0])
        page.wait_for_url(f"{base}/application")
        if username == "marie.dupont":  # the first user creates the organisation
            page.fill("#organisation", "ASBL Horizon")
            page.click("#create-organisation")
            assert "Gestionnaire du compte" in page.locator("#my-roles").inner_text()
            page.fill("#new-mail", "jan@asbl.example")
            page.check("#new-encoder")
            page.click("#add")
    marie, jan = people["marie.dupont"], people["jan.peeters"]
    try:
        jan.reload()
        assert jan.locator("#my-roles").inner_text() == "Vos rôles : Encodeur"
        assert jan.locator("#add-person").count() == 0            # not a manager
        row = marie.locator('tr[data-mail="jan@asbl.example"]')
        marie.reload()
        row.locator('input[name="legal"]').check()
        with marie.expect_navigation():
            row.locator("button").click()
        jan.reload()
        assert jan.locator("#my-roles").inner_text() == "Vos rôles : Encodeur, Personne juridiquement responsable"
        row.locator('input[name="encoder"]').uncheck()
        row.locator('input[name="legal"]').uncheck()
        with marie.expect_navigation():
            row.locator("button").click()
        assert marie.locator('tr[data-mail="jan@asbl.example"]').count() == 0
        jan.reload()
        assert "Créer votre organisation" in jan.locator("h1").inner_text()
    finally:
        for page in people.values():
            page.context.close()


def test_cancelling_at_sesame_is_a_human_message(demo, context):
    page = context.new_page()
    base = demo.portal_url("fse")
    page.goto(base + "/")
    page.click("#login")
    page.wait_for_url(f"{demo.idp_url}/login/?*")
    page.click("#cancel")
    page.wait_for_url(f"{base}/?error=*")
    assert page.locator("#portal-error").inner_text() == "Vous avez annulé la connexion."


def test_both_portals_fit_a_phone(demo, browser, inbox):
    box, _ = inbox
    ctx = browser.new_context(locale="fr-BE", viewport={"width": 375, "height": 667})
    ctx.set_default_timeout(10_000)
    try:
        page = ctx.new_page()
        activated_monespace_account(demo, page, box, "jan.peeters", "jan.private@example.org")
        fse = demo.portal_url("fse")
        page.goto(fse + "/login?next=/bienvenue")                 # single sign-on, then part D
        page.wait_for_url(f"{fse}/bienvenue")
        page.fill("#mail", "jan.phone@example.org")
        page.click("#validate")
        page.goto(mail_links(box, "jan.phone@example.org")[0])
        page.fill("#organisation", "Une organisation au nom assez long pour un téléphone")
        page.click("#create-organisation")
        page.fill("#new-mail", "colleague.with.a.long.address@example.org")
        page.check("#new-legal")
        page.click("#add")
        for url in (demo.portal_url("monespace") + "/", demo.portal_url("monespace") + "/espaces",
                    demo.portal_url("monespace") + "/compte", fse + "/", fse + "/application", fse + "/aide"):
            page.goto(url)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{url} is {width}px wide"
            assert page.locator('meta[name="viewport"]').count() == 1
            serious = [v["id"] for v in Axe().run(page).response["violations"]
                       if v["impact"] in ("serious", "critical")]
            assert serious == [], f"{url}: {serious}"  # axe-core: accessible labels, contrast, ...
    finally:
        ctx.close()

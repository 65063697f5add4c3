"""Mon Espace, the example portal (sp_examples/monespace), with Flask test clients:
real SAML through an in-process Sésame, real e-mails through aiosmtpd."""
from __future__ import annotations

import html
import re
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from idp.app.demo import DEMO_PORTALS, register_portal
from sp_examples.common import Clock
from sp_examples.monespace import create_monespace_app
from tests.parallel import in_parallel
from tests.saml_sp import autopost_fields, follow, form_action, form_fields, login_with_password

MON_ESPACE = replace(DEMO_PORTALS[0], base_url="http://localhost:18081")
LINK = re.compile(r"http://localhost(?::\d+)?(/\S+)")


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def saml_login(portal, idp_browser, *, username: str, next_path: str = "/") -> object:
    """Portal /login → Sésame (password) → portal /acs, as a browser would; the ACS answer."""
    start = portal.get(f"/login?next={next_path}")
    if start.status_code == 303:  # HTTP-Redirect binding (Mon Espace)
        page = follow(idp_browser, idp_browser.get(relative(start.headers["Location"])))
    else:  # HTTP-POST binding: the portal's own autopost page (FSE 21-27)
        text = start.get_data(as_text=True)
        page = follow(idp_browser, idp_browser.post(urlsplit(form_action(text)).path, data=form_fields(text)))
    answer = follow(idp_browser, login_with_password(idp_browser, page, username=username))
    _, fields = autopost_fields(answer)
    return portal.post("/acs", data=fields)


def text(response) -> str:
    """A page's text as the citizen reads it (entities decoded)."""
    return html.unescape(response.get_data(as_text=True))


def links(message) -> list[str]:
    return [relative("http://localhost" + m) for m in LINK.findall(message.text)]


@pytest.fixture
def monespace(idp, tmp_path, smtp_server):
    """(portal app, Sésame app, portal clock, inbox)."""
    app, services = idp
    config = register_portal(services, MON_ESPACE, tmp_path / "sp")
    clock = Clock()
    portal = create_monespace_app(MON_ESPACE, config, idp_entity_id=services.settings.entity_id,
                                  data_dir=tmp_path / "monespace",
                                  mail={"host": smtp_server.host, "port": smtp_server.port,
                                        "sender": "Mon Espace <no-reply@monespace.test>"},
                                  clock=clock)
    return portal, app, clock, smtp_server.inbox


def signed_up(monespace, mail="marie.private@example.org"):
    """Marie logged in and asked for her account; (portal client, idp client, validation e-mail)."""
    portal_app, idp_app, _, inbox = monespace
    portal, idp_browser = portal_app.test_client(), idp_app.test_client()
    arrived = saml_login(portal, idp_browser, username="marie.dupont", next_path="/espaces")
    assert arrived.headers["Location"] == "/espaces"
    assert follow(portal, portal.get("/espaces")).request.path == "/inscription"
    answer = portal.post("/inscription", data={"mail": mail, "mail_confirm": mail})
    assert answer.status_code == 303
    return portal, idp_browser, inbox.wait_for(mail)


def test_home_page_in_french_then_dutch(monespace):
    portal = monespace[0].test_client()
    page = text(portal.get("/"))
    assert "Guichet électronique de la Fédération Wallonie-Bruxelles" in page
    assert "Me connecter" in page and "Besoin d'aide ?" in page
    assert 'name="viewport"' in page and '<html lang="fr">' in page
    dutch = text(portal.get("/?lang=nl"))
    assert "Elektronisch loket" in dutch and '<html lang="nl">' in dutch
    assert '<html lang="nl">' in text(portal.get("/aide"))  # remembered


def test_saml_statuses_are_human_sentences(monespace):
    portal = monespace[0].test_client()
    page = text(portal.get("/?error=StatusAuthnFailed"))
    assert "Vous avez annulé la connexion" in page and "StatusAuthnFailed" not in page
    for status in ("StatusNoPassive", "StatusNoAuthnContext", "StatusRequestDenied", "StatusResponder"):
        shown = text(portal.get(f"/?error={status}"))
        assert 'id="portal-error"' in shown and status not in shown
    assert "Vous êtes déconnecté" in text(portal.get("/?logout=ok"))


def test_first_login_identity_read_only_and_addresses_must_match(monespace):
    portal_app, idp_app, _, inbox = monespace
    portal, idp_browser = portal_app.test_client(), idp_app.test_client()
    saml_login(portal, idp_browser, username="marie.dupont", next_path="/espaces")
    page = text(portal.get("/inscription"))
    assert 'data-attr="surname">Dupont<' in page and 'data-attr="givenName">Marie<' in page
    assert 'data-attr="birthDate">14/03/1985<' in page
    assert 'name="surname"' not in page  # shown, not editable
    wrong = portal.post("/inscription", data={"mail": "a@example.org", "mail_confirm": "b@example.org"})
    assert wrong.status_code == 200 and "Les deux adresses ne sont pas identiques." in text(wrong)
    assert inbox.to("a@example.org") == []


def test_validation_email_activates_once_and_cancel_link_dies(monespace):
    portal, _, message = signed_up(monespace)
    assert message.subject == "Validation de votre compte Mon Espace"
    activate, cancel = links(message)
    done = portal.get(activate)
    assert "Votre compte Mon Espace est maintenant activé" in text(done)
    assert "Mes espaces" in text(done)
    assert portal.get(activate).status_code == 410      # single use
    assert portal.get(cancel).status_code == 410        # the other link of the mail is spent
    spaces = text(portal.get("/espaces"))
    assert "Citoyen" in spaces and "Membre des personnels de l'enseignement" in spaces


def test_resend_makes_the_first_link_useless(monespace):
    portal, _, first = signed_up(monespace)
    page = text(portal.post("/inscription/envoye"))
    assert "Un nouveau courriel vous a été envoyé." in page
    second = monespace[3].wait_for("marie.private@example.org", count=2)
    assert portal.get(links(first)[0]).status_code == 410
    assert portal.get(links(second)[0]).status_code == 200


def test_cancel_link_removes_the_unactivated_account(monespace):
    portal, _, message = signed_up(monespace)
    activate, cancel = links(message)
    assert "La création de votre compte a été annulée." in text(portal.get(cancel))
    assert portal.get(activate).status_code == 410
    assert follow(portal, portal.get("/espaces")).request.path == "/inscription"


def test_expired_link_refused(monespace):
    portal, _, message = signed_up(monespace)
    monespace[2].advance(hours=25)
    assert portal.get(links(message)[0]).status_code == 410


def test_activation_link_clicked_many_times_at_once_works_once(monespace):
    portal_app = monespace[0]
    _, _, message = signed_up(monespace)
    activate = links(message)[0]
    codes = in_parallel(8, lambda i: portal_app.test_client().get(activate).status_code)
    assert sorted(codes) == [200] + [410] * 7


def test_change_mail_needs_the_new_address_validated(monespace):
    portal, _, message = signed_up(monespace)
    portal.get(links(message)[0])
    page = text(portal.post("/compte", data={"action": "change_mail", "mail": "marie@new.example",
                                        "mail_confirm": "marie@new.example"}))
    assert "marie@new.example" in page
    assert 'id="current-mail">marie.private@example.org<' in page  # not yet
    typo = portal.post("/compte", data={"action": "change_mail", "mail": "marie@new.example",
                                        "mail_confirm": "marie@neww.example"})
    assert typo.status_code == 400 and 'id="mail_confirm-error"' in text(typo)
    assert 'value="marie@neww.example"' in text(typo)  # what was typed stays in the form
    portal.get(links(monespace[3].wait_for("marie@new.example"))[0])
    assert 'id="current-mail">marie@new.example<' in text(portal.get("/compte"))


def test_deletion_waits_30_days_and_can_be_withdrawn(monespace):
    _, _, clock, _ = monespace
    portal, _, message = signed_up(monespace)
    portal.get(links(message)[0])
    page = text(portal.post("/compte", data={"action": "delete"}))
    assert "Annuler la suppression de mon compte" in page
    clock.advance(days=29)
    page = text(portal.post("/compte", data={"action": "withdraw"}))
    assert "La suppression de votre compte est annulée." in page
    clock.advance(days=31)
    assert portal.get("/espaces").status_code == 200  # withdrawn: still there
    portal.post("/compte", data={"action": "delete"})
    clock.advance(days=30, seconds=1)
    assert follow(portal, portal.get("/espaces")).request.path == "/inscription"  # gone for good


def test_purge_removes_only_expired_deletions(monespace):
    portal_app, _, clock, _ = monespace
    portal, _, message = signed_up(monespace)
    portal.get(links(message)[0])
    portal.post("/compte", data={"action": "delete"})
    purge = portal_app.extensions["monespace"]["purge"]
    clock.advance(days=29, hours=23)
    assert purge() == 0
    clock.advance(hours=2)
    assert purge() == 1


def test_logout_asks_first_then_goes_through_sesame(monespace):
    portal, idp_browser, message = signed_up(monespace)
    portal.get(links(message)[0])
    confirm = text(portal.get("/deconnexion"))
    assert "Oui, me déconnecter" in confirm and 'action="/logout"' in confirm
    to_idp = portal.post("/logout")
    assert to_idp.status_code == 303 and "/saml/slo" in to_idp.headers["Location"]
    # The portal's session ends at once; Sésame's part is tests/test_saml_logout.py's.
    assert follow(portal, portal.get("/espaces")).request.path == "/"


def test_without_a_mail_server_the_demo_outbox_shows_the_link(idp, tmp_path):
    """The demo has no SMTP server: the portal keeps its e-mails and shows them at /outbox."""
    app, services = idp
    config = register_portal(services, MON_ESPACE, tmp_path / "sp")
    portal_app = create_monespace_app(MON_ESPACE, config, idp_entity_id=services.settings.entity_id,
                                      data_dir=tmp_path / "demo-monespace")
    portal = portal_app.test_client()
    saml_login(portal, app.test_client(), username="jan.peeters", next_path="/espaces")
    portal.post("/inscription", data={"mail": "jan@example.org", "mail_confirm": "jan@example.org"})
    page = text(portal.get("/outbox"))
    assert "Validation de votre compte Mon Espace" in page and "/activer/" in page
    assert (tmp_path / "demo-monespace" / "monespace.sqlite").exists()


def test_the_portals_migrations_run_once_each_in_order(tmp_path):
    """sp_examples.common.migrate: numbered steps, the version in SQLite's user_version."""
    import sqlalchemy as sa

    from sp_examples.common import migrate

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'portal.sqlite'}")
    ran: list[int] = []
    steps = [lambda conn: (ran.append(1), conn.exec_driver_sql("CREATE TABLE accounts (subject TEXT)")),
             lambda conn: (ran.append(2), conn.exec_driver_sql("ALTER TABLE accounts ADD COLUMN mail TEXT"))]
    assert migrate(engine, steps[:1]) == 1 and ran == [1]
    assert migrate(engine, steps) == 2 and ran == [1, 2]  # only the new step
    assert migrate(engine, steps) == 2 and ran == [1, 2]  # nothing left to do
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA user_version").scalar() == 2
        conn.exec_driver_sql("INSERT INTO accounts (subject, mail) VALUES ('s', 'm')")
    engine.dispose()

"""FSE 21-27, the example portal (sp_examples/fse), with Flask test clients: real
SAML (HTTP-POST binding, transient NameID) through an in-process Sésame, real
e-mails through aiosmtpd."""
from __future__ import annotations

from dataclasses import replace

import pytest

from idp.app.demo import DEMO_PORTALS, register_portal
from sp_examples.fse import create_fse_app
from tests.test_portal_monespace import links, saml_login, text

FSE = replace(DEMO_PORTALS[1], base_url="http://localhost:18082")


@pytest.fixture
def fse(idp, tmp_path, smtp_server):
    """(portal app, Sésame app, inbox)."""
    app, services = idp
    config = register_portal(services, FSE, tmp_path / "sp")
    portal = create_fse_app(FSE, config, idp_entity_id=services.settings.entity_id, data_dir=tmp_path / "fse",
                            mail={"host": smtp_server.host, "port": smtp_server.port})
    return portal, app, smtp_server.inbox


def verified(fse, username, mail):
    """``username`` logged in at FSE 21-27 and validated ``mail`` (part D); the portal client."""
    portal_app, idp_app, inbox = fse
    portal = portal_app.test_client()
    arrived = saml_login(portal, idp_app.test_client(), username=username, next_path="/bienvenue")
    assert arrived.headers["Location"] == "/bienvenue"
    before = len(inbox.to(mail))
    page = text(portal.post("/bienvenue", data={"mail": mail}))
    assert f"Ouvrez le lien reçu à l'adresse {mail}" in page and "Demander un nouveau courriel de validation" in page
    message = inbox.wait_for(mail, count=before + 1)
    assert message.subject == "Validation de l'adresse e-mail"
    assert portal.get(links(message)[0]).headers["Location"] == "/application"
    return portal


def test_login_uses_the_portals_own_french_post_page(fse):
    portal = fse[0].test_client()
    page = text(portal.get("/login"))
    assert "JavaScript est désactivé" in page and 'name="SAMLRequest"' in page
    assert "Since your browser" not in page


def test_names_only_and_the_email_step_comes_first(fse):
    portal_app, idp_app, inbox = fse
    portal = portal_app.test_client()
    saml_login(portal, idp_app.test_client(), username="marie.dupont", next_path="/bienvenue")
    assert portal.get("/application").headers["Location"] == "/bienvenue"
    page = text(portal.get("/bienvenue"))
    assert "Bienvenue, Marie Dupont" in page
    assert text(portal.post("/bienvenue", data={"mail": "not-an-address"})).count("n'est pas valable") == 1


def test_validation_link_works_once_and_only_in_the_login_browser(fse):
    portal_app, idp_app, inbox = fse
    portal = portal_app.test_client()
    saml_login(portal, idp_app.test_client(), username="marie.dupont", next_path="/bienvenue")
    portal.post("/bienvenue", data={"mail": "marie@asbl.example"})
    link = links(inbox.wait_for("marie@asbl.example"))[0]
    assert portal_app.test_client().get(link).status_code == 403   # another browser: refused, link kept
    assert portal.get(link).status_code == 303
    assert portal.get(link).status_code == 410                      # single use
    other = portal_app.test_client()
    saml_login(other, idp_app.test_client(), username="jan.peeters", next_path="/bienvenue")
    assert other.get(link).status_code == 403


def test_resend_gives_a_new_link_and_kills_the_old(fse):
    portal_app, idp_app, inbox = fse
    portal = portal_app.test_client()
    saml_login(portal, idp_app.test_client(), username="marie.dupont", next_path="/bienvenue")
    portal.post("/bienvenue", data={"mail": "marie@asbl.example"})
    first = links(inbox.wait_for("marie@asbl.example"))[0]
    assert "Un nouveau courriel vous a été envoyé." in text(portal.post("/bienvenue", data={"resend": "1"}))
    second = links(inbox.wait_for("marie@asbl.example", count=2))[0]
    assert portal.get(first).status_code == 410
    assert portal.get(second).status_code == 303


def test_first_user_creates_the_organisation_and_manages_roles(fse):
    marie = verified(fse, "marie.dupont", "marie@asbl.example")
    assert "Créer votre organisation" in text(marie.get("/application"))
    marie.post("/application", data={"organisation": "ASBL Horizon"})
    page = text(marie.get("/application"))
    assert 'id="organisation-name">ASBL Horizon<' in page and "Vos rôles : Gestionnaire du compte" in page
    # Jan named by his address, two roles at once, before he ever logs in
    marie.post("/roles", data={"mail": "jan@asbl.example", "encoder": "on", "legal": "on"})
    jan = verified(fse, "jan.peeters", "jan@asbl.example")
    page = text(jan.get("/application"))
    assert "Vos rôles : Encodeur, Personne juridiquement responsable" in page
    assert "Seul le gestionnaire du compte attribue et supprime les rôles." in page
    assert jan.post("/roles", data={"mail": "jan@asbl.example", "manager": "on"}).status_code == 403
    # Marie removes one role, then the last one: Jan leaves the organisation
    marie.post("/roles", data={"mail": "jan@asbl.example", "legal": "on"})
    assert "Vos rôles : Personne juridiquement responsable" in text(jan.get("/application"))
    marie.post("/roles", data={"mail": "jan@asbl.example"})
    assert "Créer votre organisation" in text(jan.get("/application"))


def test_the_last_manager_stays(fse):
    marie = verified(fse, "marie.dupont", "marie@asbl.example")
    marie.post("/application", data={"organisation": "ASBL Horizon"})
    answer = marie.post("/roles", data={"mail": "marie@asbl.example", "encoder": "on"})
    page = text(marie.get(answer.headers["Location"]))
    assert "L'organisation doit garder au moins un gestionnaire du compte." in page
    assert "Vos rôles : Gestionnaire du compte" in page


def test_a_new_login_asks_for_the_address_again(fse):
    """Transient NameID: a new login is a stranger until part D is done again."""
    portal_app, idp_app, _ = fse
    marie = verified(fse, "marie.dupont", "marie@asbl.example")
    marie.post("/logout")
    saml_login(marie, idp_app.test_client(), username="marie.dupont", next_path="/bienvenue")
    assert marie.get("/application").headers["Location"] == "/bienvenue"

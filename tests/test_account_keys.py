""""Mes clés numériques" (idp/views/account.py), driven as a browser does through
Sésame's real endpoints: the keys and their statuses, activation only after a
strong login (tests/strong_login.py), Supprimer, Modifier (password, username),
"Mon profil", and the password key asking for a new password when it has
expired.  Notices arrive at a real SMTP server (tests/messaging.py).

Negative answers are asserted by error code (``data-code``), HTTP status and
audit rows, never by wording.
"""
from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import urlsplit

import pytest

from idp import create_app
from idp.app.demo import DEMO_PASSWORD, create_citizens, make_nrn
from idp.app.services import Services
from idp.persistence.models import AuditEvent
from tests.conftest import idp_settings
from tests.messaging import mail_settings
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import audit_events, error_code, follow, form_action, form_fields
from tests.standin_keys import KEY_TYPES
from tests.strong_login import login_strong, strong_keys

ACTIVATION_CODE = "ACT-24680"
MARIE_NRN = make_nrn(dt.date(1985, 3, 14), 123)
MARIE_MAIL = "marie.dupont@example.be"
NEW_PASSWORD = "Nouveau-Sesame-2027!"


class World:
    def __init__(self, app, services, clock, inbox):
        self.app, self.services, self.clock, self.inbox = app, services, clock, inbox

    def audit(self, event: str) -> list[AuditEvent]:
        return audit_events(self.services, event)

    def fedid(self, username: str = "marie.dupont") -> str:
        return self.services.credentials.find(key="password", username=username).person_fedid


def build_world(tmp_path, clock, smtp_server, **sections) -> World:
    sections.setdefault("keys", strong_keys("password", "standin_activation",
                                            standin_activation={"activation_code": ACTIVATION_CODE}))
    # Enough Argon2 slots that parallel posts are checked, not answered "busy".
    sections.setdefault("limits", {"max_concurrent_hashes": 32, "hash_wait_seconds": 10.0})
    settings = idp_settings(tmp_path, mail=mail_settings(smtp_server), **sections)
    services = Services.build(settings, clock=clock, key_types=KEY_TYPES)
    create_citizens(services)
    return World(create_app(services=services), services, clock, smtp_server.inbox)


@pytest.fixture
def world(tmp_path, clock, smtp_server):
    made = build_world(tmp_path, clock, smtp_server)
    yield made
    made.services.database.dispose()



def csrf(client) -> str:
    return form_fields(client.get("/").get_data(as_text=True))["csrf_token"]


def password_login(client, username="marie.dupont", password=DEMO_PASSWORD, *, next_url="/account/keys"):
    """Log in to Sésame's own pages with the username + password; the last response."""
    start = client.post("/journeys/login", data={"csrf_token": csrf(client), "next": next_url})
    choose = follow(client, start).get_data(as_text=True)
    link = re.search(r'href="(/login/password/\?tx=[^"]+)"', choose)
    assert link, choose[:600]
    page = client.get(html.unescape(link[1])).get_data(as_text=True)
    return client.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"],
                                                 "username": username, "password": password})


def logged_in(world, username="marie.dupont", password=DEMO_PASSWORD):
    client = world.app.test_client()
    done = password_login(client, username, password)
    assert done.status_code == 303 and done.headers["Location"] == "/account/keys", done.get_data(as_text=True)
    return client


def key_item(page: str, key: str) -> str:
    found = re.search(rf'<li id="key-{key}" data-active="(yes|no)">(.*?)</li>', page, re.S)
    assert found, f"{key} not listed"
    return found[0]


def post(client, path: str, **fields):
    return client.post(path, data={"csrf_token": csrf(client), **fields})


# --- the page and who may see it -----------------------------------------------------
@pytest.mark.parametrize("path", ["/account/keys", "/account/password", "/account/username", "/account/profile",
                                  "/account/keys/standin_activation/remove"])
def test_without_a_session_the_pages_offer_to_log_in(world, path):
    page = world.app.test_client().get(path)
    text = page.get_data(as_text=True)
    assert page.status_code == 401 and error_code(page) == "login_required"
    assert 'id="login-strong"' in text and 'id="login"' in text
    assert f'name="next" value="{path}"' in text  # the login ends back here


def test_a_login_from_the_offer_ends_on_the_keys_page(world):
    client = world.app.test_client()
    assert client.get("/account/keys").status_code == 401
    done = password_login(client)
    assert done.headers["Location"] == "/account/keys"
    assert client.get("/account/keys").status_code == 200


def test_keys_page_lists_the_keys_with_their_statuses(world):
    client = logged_in(world)
    page = client.get("/account/keys").get_data(as_text=True)
    created = world.services.credentials.of_person(key="password", person_fedid=world.fedid())
    password = key_item(page, "password")
    assert 'data-active="yes"' in password and "ACTIVE" in password
    assert f"Depuis le {created.activated_at:%d/%m/%Y}" in password
    assert f"Expire le {created.expires_at:%d/%m/%Y}" in password
    assert 'id="modify-password"' in password and 'id="modify-username"' in password
    assert 'id="remove-password"' in password
    strong = key_item(page, "standin_strong")  # no activation of its own: ACTIVE by default
    assert 'data-active="yes"' in strong and "Depuis" not in strong and "remove-" not in strong
    activation = key_item(page, "standin_activation")
    assert 'data-active="no"' in activation and "remove-" not in activation
    # The groups in the login page's order: eID first, then the code keys, then the password.
    assert page.index("key-standin_strong") < page.index("key-standin_activation") < page.index("key-password")


def test_a_password_session_cannot_activate_and_is_offered_the_strong_login(world):
    client = logged_in(world)
    page = client.get("/account/keys").get_data(as_text=True)
    assert 'id="activate-standin_activation"' not in page
    assert 'id="login-strong"' in page and 'name="level" value="500"' in page
    # Forging the button's post anyway: the engine refuses it, audited.
    refused = follow(client, post(client, "/journeys/activate/standin_activation",
                                  next="/account/keys?activated=standin_activation"))
    assert refused.status_code == 403 and error_code(refused) == "activation_level"
    assert [(e.result, e.key, e.level) for e in world.audit("key.activation_refused")] == \
        [("level_too_low", "standin_activation", 100)]
    assert world.audit("key.activated") == []


def test_after_the_strong_login_a_key_is_activated_and_confirmed(world):
    client = world.app.test_client()
    login_strong(client, MARIE_NRN, next_url="/account/keys")
    page = client.get("/account/keys").get_data(as_text=True)
    assert 'id="login-strong"' not in page
    assert 'id="activate-standin_activation"' in page
    assert 'value="/account/keys?activated=standin_activation"' in page
    start = post(client, "/journeys/activate/standin_activation", next="/account/keys?activated=standin_activation")
    form = follow(client, start).get_data(as_text=True)
    wrong = client.post(form_action(form), data={"csrf_token": form_fields(form)["csrf_token"], "code": "nope"})
    assert wrong.status_code == 401 and error_code(wrong) == "bad_code"
    done = client.post(form_action(form), data={"csrf_token": form_fields(form)["csrf_token"],
                                                "code": ACTIVATION_CODE})
    assert done.status_code == 303 and done.headers["Location"] == "/account/keys?activated=standin_activation"
    page = follow(client, done).get_data(as_text=True)
    assert 'id="activated" data-key="standin_activation"' in page
    assert "Retour à l&#39;application" not in page and "Retour à l'application" not in page  # no portal to go back to
    item = key_item(page, "standin_activation")
    assert 'data-active="yes"' in item and 'id="remove-standin_activation"' in item
    assert "activate-standin_activation" not in item
    assert [e.key for e in world.audit("key.activated")] == ["standin_activation"]
    assert "activée" in world.inbox.wait_for(MARIE_MAIL).subject  # the engine's notice


def test_activated_names_only_an_active_key(world):
    client = logged_in(world)
    for key in ("standin_activation", "nope", "<script>"):
        assert 'id="activated"' not in client.get("/account/keys", query_string={"activated": key}) \
            .get_data(as_text=True)


# --- Supprimer ------------------------------------------------------------------------
def test_remove_a_key_after_its_confirmation(world):
    fedid = world.fedid()
    world.services.credentials.activate(key="standin_activation", person_fedid=fedid)
    client = logged_in(world)
    confirm = client.get("/account/keys/standin_activation/remove")
    assert confirm.status_code == 200 and 'id="confirm-remove"' in confirm.get_data(as_text=True)
    assert world.services.credentials.has_active(key="standin_activation", person_fedid=fedid)  # not yet
    done = post(client, "/account/keys/standin_activation/remove")
    assert done.status_code == 303 and done.headers["Location"] == "/account/keys?done=removed"
    assert not world.services.credentials.has_active(key="standin_activation", person_fedid=fedid)
    assert [(e.key, e.person_fedid) for e in world.audit("key.removed")] == [("standin_activation", fedid)]
    assert "supprimée" in world.inbox.wait_for(MARIE_MAIL).subject
    again = post(client, "/account/keys/standin_activation/remove")
    assert again.status_code == 404 and error_code(again) == "no_such_key"
    assert world.audit("key.remove_refused")[-1].result == "no_such_key"


@pytest.mark.parametrize("key", ["standin_strong", "unknown", "standin_activation"])
def test_keys_that_cannot_be_removed(world, key):
    client = logged_in(world)  # standin_activation: not activated by Marie
    answer = post(client, f"/account/keys/{key}/remove")
    assert answer.status_code == 404 and error_code(answer) == "no_such_key"
    assert world.audit("key.removed") == []


def test_removing_the_password_warns_of_the_code_keys_that_need_it(world):
    world.services.credentials.activate(key="standin_activation", person_fedid=world.fedid())
    client = logged_in(world)
    assert 'id="dependent"' in client.get("/account/keys/password/remove").get_data(as_text=True)


def test_post_without_the_csrf_token_is_refused(world):
    world.services.credentials.activate(key="standin_activation", person_fedid=world.fedid())
    client = logged_in(world)
    answer = client.post("/account/keys/standin_activation/remove", data={})
    assert answer.status_code == 400 and error_code(answer) == "csrf_failed"
    assert world.services.credentials.has_active(key="standin_activation", person_fedid=world.fedid())


# --- Modifier: the password and the username ---------------------------------------------
@pytest.mark.parametrize("current,new,confirm,code,status", [
    ("Wrong-Guess-Q3z#", NEW_PASSWORD, NEW_PASSWORD, "wrong_current_password", 401),
    (DEMO_PASSWORD, "short", "short", "password_too_short", 400),
    (DEMO_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "passwords_differ", 400),
    (DEMO_PASSWORD, "", "", "missing_fields", 400),
])
def test_bad_password_changes_are_refused(world, current, new, confirm, code, status):
    client = logged_in(world)
    answer = post(client, "/account/password", current=current, password=new, confirm=confirm)
    assert answer.status_code == status and error_code(answer) == code
    assert world.audit("account.password_change_refused")[-1].result == code
    assert password_login(world.app.test_client()).status_code == 303  # the old password still works


def test_change_the_password(world):
    client = logged_in(world)
    done = post(client, "/account/password", current=DEMO_PASSWORD, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert done.status_code == 303 and done.headers["Location"] == "/account/keys?done=password"
    assert world.audit("account.password_changed")[-1].person_fedid == world.fedid()
    assert "modifiée" in world.inbox.wait_for(MARIE_MAIL).subject
    old = password_login(world.app.test_client())
    assert old.status_code == 401 and error_code(old) == "bad_credentials"
    assert password_login(world.app.test_client(), password=NEW_PASSWORD).status_code == 303


def test_two_parallel_password_changes_one_wins(world):
    client = logged_in(world)
    token = csrf(client)
    connections = [same_browser(world.app, client) for _ in range(4)]
    results = in_parallel(4, lambda i: connections[i].post("/account/password", data={
        "csrf_token": token, "current": DEMO_PASSWORD, "password": f"{NEW_PASSWORD}{i}",
        "confirm": f"{NEW_PASSWORD}{i}"}).status_code)
    assert sorted(results).count(303) == 1, results
    assert set(results) <= {303, 409, 401}
    assert len(world.audit("account.password_changed")) == 1


def test_a_wrong_current_password_counts_towards_the_lockout(world):
    client = logged_in(world)
    for _ in range(5):
        post(client, "/account/password", current="Wrong-Guess-Q3z#", password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    blocked = post(client, "/account/password", current=DEMO_PASSWORD, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert blocked.status_code == 403 and error_code(blocked) == "account_blocked"


def test_change_the_username(world):
    client = logged_in(world)
    assert 'value="marie.dupont"' in client.get("/account/username").get_data(as_text=True)
    taken = post(client, "/account/username", username="Jan.Peeters")
    assert taken.status_code == 400 and error_code(taken) == "username_taken"
    empty = post(client, "/account/username", username="   ")
    assert empty.status_code == 400 and error_code(empty) == "username_empty"
    assert [e.result for e in world.audit("account.username_change_refused")] == ["username_taken", "username_empty"]
    done = post(client, "/account/username", username="marie.d")
    assert done.status_code == 303 and done.headers["Location"] == "/account/keys?done=username"
    assert world.audit("account.username_changed")[-1].person_fedid == world.fedid("marie.d")
    assert "modifiée" in world.inbox.wait_for(MARIE_MAIL).subject
    assert password_login(world.app.test_client(), "marie.d").status_code == 303
    assert password_login(world.app.test_client(), "marie.dupont").status_code == 401


def test_changes_need_the_manage_level(tmp_path, clock, smtp_server):
    world = build_world(tmp_path, clock, smtp_server, account={"manage_level": 500})
    client = logged_in(world)
    assert client.get("/account/keys").status_code == 200  # looking is fine
    answer = client.get("/account/password")
    assert answer.status_code == 403 and error_code(answer) == "manage_level"
    assert 'id="login-strong"' in answer.get_data(as_text=True)
    refused = post(client, "/account/password", current=DEMO_PASSWORD, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert refused.status_code == 403 and world.audit("account.password_changed") == []


# --- "Mon profil" ----------------------------------------------------------------------------
def test_profile_shows_the_name_and_saves_address_and_language(world):
    client = logged_in(world)
    page = client.get("/account/profile").get_data(as_text=True)
    assert "Marie Dupont" in page and f'value="{MARIE_MAIL}"' in page
    bad = post(client, "/account/profile", mail="not-an-address", lang="fr")
    assert bad.status_code == 400 and error_code(bad) == "bad_email"
    foreign = post(client, "/account/profile", mail="marie@example.be", lang="xx")
    assert foreign.status_code == 400 and error_code(foreign) == "bad_language"
    assert [e.result for e in world.audit("account.profile_refused")] == ["bad_email", "bad_language"]
    done = post(client, "/account/profile", mail=" Marie@Example.BE ", lang="nl")
    assert done.status_code == 303
    contact = world.services.contacts.get(world.fedid())
    assert (contact.mail, contact.lang) == ("Marie@example.be", "nl")
    assert world.audit("account.profile_changed")[-1].detail["changed"] == "mail,lang"
    assert '<html lang="nl">' in follow(client, done).get_data(as_text=True)  # the session follows


# --- the password key asks for a new password when it has expired ----------------------------------
def test_an_expired_password_is_renewed_at_login(world):
    record = world.services.credentials.of_person(key="password", person_fedid=world.fedid())
    world.clock.advance(record.expires_at.timestamp() - world.clock.now() + 60)
    client = world.app.test_client()
    renew = password_login(client)
    assert renew.status_code == 303 and urlsplit(renew.headers["Location"]).path == "/login/password/renew"
    page = follow(client, renew)
    assert page.status_code == 200 and 'name="confirm"' in page.get_data(as_text=True)
    action, token = form_action(page.get_data(as_text=True)), csrf(client)
    differ = client.post(action, data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": "other"})
    assert differ.status_code == 400 and error_code(differ) == "passwords_differ"
    weak = client.post(action, data={"csrf_token": token, "password": "marie.dupont-1234", "confirm":
                                     "marie.dupont-1234"})
    assert weak.status_code == 400 and error_code(weak) == "password_contains_username"
    assert world.audit("login.success") == []  # no session before the new password
    done = client.post(action, data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"] == "/account/keys"
    assert [e.key for e in world.audit("password.renewed")] == ["password"]
    assert world.audit("login.success")[-1].key == "password"
    renewed = world.services.credentials.of_person(key="password", person_fedid=world.fedid())
    assert not renewed.expired(world.clock.now())
    assert password_login(world.app.test_client(), password=NEW_PASSWORD).status_code == 303


def test_the_renew_step_needs_a_right_expired_password_first(world):
    client = world.app.test_client()
    start = client.post("/journeys/login", data={"csrf_token": csrf(client), "next": "/account/keys"})
    tx = re.search(r"tx=([^&]+)", start.headers["Location"])[1]
    answer = client.post(f"/login/password/renew?tx={tx}", data={"csrf_token": csrf(client),
                                                                  "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert answer.status_code in (303, 400) and world.audit("password.renewed") == []
    assert password_login(world.app.test_client()).status_code == 303  # the password is unchanged


def test_dates_are_shown_in_belgian_time():
    """Stored moments are UTC; "ACTIVE depuis le ..." is read in Brussels."""
    import datetime as dt

    from idp.views.account import day

    assert day(dt.datetime(2026, 11, 26, 23, 30, tzinfo=dt.timezone.utc)) == "27/11/2026"
    assert day(dt.datetime(2026, 7, 1, 21, 59, tzinfo=dt.timezone.utc)) == "01/07/2026"  # summer time, +2
    assert day(None) is None

""""Nom d'utilisateur et/ou mot de passe oublié(s)?" (idp/views/account.py): a
recovery code sent to the address an e-mail code key (or the number an SMS code
key) proved, read from a real SMTP server (or SMS gateway) as a citizen reads
it, then a new password.

The code keys' credentials are created directly (``credentials.activate``):
what is tested is the recovery, over those rows and the [mail] / [sms] servers.
"""
from __future__ import annotations

import re

import pytest

from idp.app.demo import DEMO_PASSWORD
from tests.messaging import sms_settings
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import error_code
from tests.test_account_keys import NEW_PASSWORD, build_world, csrf, password_login

CODES_TO = "marie.codes@example.be"       # where Marie's e-mail code key sends (not her profile address)
MARIE_MAIL = "marie.dupont@example.be"
PHONE = "+32470000123"


@pytest.fixture
def world(tmp_path, clock, smtp_server, sms_gateway):
    made = build_world(tmp_path, clock, smtp_server, keys={"enabled": ["password"]}, sms=sms_settings(sms_gateway),
                       limits={"max_concurrent_hashes": 32, "hash_wait_seconds": 10.0})
    made.gateway = sms_gateway
    made.services.credentials.activate(key="email_code", person_fedid=made.fedid(), data={"to": CODES_TO})
    yield made
    made.services.database.dispose()


def ask(client, identifier: str):
    return client.post("/account/forgot", data={"csrf_token": csrf(client), "identifier": identifier})


def send_code(client, code: str):
    return client.post("/account/forgot/code", data={"csrf_token": csrf(client), "code": code})


def new_password(client, password: str, confirm: str | None = None):
    return client.post("/account/forgot/password", data={"csrf_token": csrf(client), "password": password,
                                                         "confirm": password if confirm is None else confirm})


def code_page(client) -> str:
    """The code page, without what differs at every request (the CSRF token)."""
    return re.sub(r'name="csrf_token" value="[^"]+"', "", client.get("/account/forgot/code").get_data(as_text=True))


# --- the way through ------------------------------------------------------------------
@pytest.mark.parametrize("identifier", ["marie.dupont", " Marie.Dupont ", MARIE_MAIL])
def test_recovery_through_the_email_code_key(world, identifier):
    client = world.app.test_client()
    asked = ask(client, identifier)
    assert asked.status_code == 303 and asked.headers["Location"] == "/account/forgot/code"
    message = world.inbox.wait_for(CODES_TO)
    assert world.inbox.to(MARIE_MAIL) == []  # the key's proven address, not the profile's
    verified = send_code(client, world.inbox.last_code(CODES_TO))
    assert verified.status_code == 303 and verified.headers["Location"] == "/account/forgot/password"
    page = client.get("/account/forgot/password").get_data(as_text=True)
    assert 'id="username">marie.dupont<' in page  # the forgotten username, shown once the code is right
    weak = new_password(client, "short")
    assert weak.status_code == 400 and error_code(weak) == "password_too_short"
    differ = new_password(client, NEW_PASSWORD, "other")
    assert differ.status_code == 400 and error_code(differ) == "passwords_differ"
    done = new_password(client, NEW_PASSWORD)
    assert done.status_code == 200 and 'id="done"' in done.get_data(as_text=True)
    assert [e.person_fedid for e in world.audit("account.recovered")] == [world.fedid()]
    assert "modifiée" in world.inbox.wait_for(MARIE_MAIL).subject  # the notice, to the profile's address
    assert password_login(world.app.test_client(), password=DEMO_PASSWORD).status_code == 401
    assert password_login(world.app.test_client(), password=NEW_PASSWORD).status_code == 303
    assert "Sésame" in message.subject


def test_recovery_through_the_sms_code_key(world):
    fedid = world.fedid("lea.schmitz")
    world.services.credentials.activate(key="sms_code", person_fedid=fedid, data={"to": PHONE})
    client = world.app.test_client()
    assert ask(client, "lea.schmitz").status_code == 303
    world.gateway.inbox.wait_for(PHONE)
    assert send_code(client, world.gateway.inbox.last_code(PHONE)).status_code == 303
    assert new_password(client, NEW_PASSWORD).status_code == 200
    assert password_login(world.app.test_client(), "lea.schmitz", NEW_PASSWORD).status_code == 303


# --- no account enumeration -------------------------------------------------------------
@pytest.mark.parametrize("identifier", ["nobody.here", "jan.peeters", "nobody@example.be"])
def test_an_unknown_or_unreachable_account_gets_the_same_answer_and_no_message(world, identifier):
    known, other = world.app.test_client(), world.app.test_client()
    first, second = ask(known, "marie.dupont"), ask(other, identifier)  # jan.peeters: no code key to send to
    assert (first.status_code, first.headers["Location"]) == (second.status_code, second.headers["Location"])
    assert code_page(known) == code_page(other)
    world.inbox.wait_for(CODES_TO)
    assert [m.to for m in world.inbox.messages] == [CODES_TO]
    assert world.gateway.inbox.messages == []
    # A guess answers alike too: the engine counts attempts for a code nobody received.
    a, b = send_code(known, "000000"), send_code(other, "000000")
    if world.inbox.last_code(CODES_TO) != "000000":
        assert (a.status_code, error_code(a)) == (b.status_code, error_code(b)) == (401, "bad_code")
    assert [e.result for e in world.audit("account.recovery_requested")] == ["sent", "no_match"]


# --- wrong, expired, replayed codes ---------------------------------------------------------
def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_five_wrong_codes_end_the_challenge(world):
    client = world.app.test_client()
    ask(client, "marie.dupont")
    world.inbox.wait_for(CODES_TO)
    code = world.inbox.last_code(CODES_TO)
    for left in (4, 3, 2, 1):
        answer = send_code(client, wrong(code))
        assert answer.status_code == 401 and error_code(answer) == "bad_code"
        assert f"{left} essai" in answer.get_data(as_text=True)
    assert error_code(send_code(client, wrong(code))) == "too_many_code_attempts"
    late = send_code(client, code)
    assert late.status_code == 410 and error_code(late) == "code_expired"
    assert client.get("/account/forgot/password").status_code == 410
    assert len(world.audit("account.recovery_refused")) == 7  # 5 wrong, 1 late, 1 early new password


def test_an_expired_code_is_refused(world):
    client = world.app.test_client()
    ask(client, "marie.dupont")
    world.inbox.wait_for(CODES_TO)
    world.clock.advance(601)
    answer = send_code(client, world.inbox.last_code(CODES_TO))
    assert answer.status_code == 410 and error_code(answer) in ("code_expired", "recovery_expired")
    assert world.audit("account.recovered") == []


def test_a_code_is_used_once_and_the_new_password_set_once(world):
    client = world.app.test_client()
    ask(client, "marie.dupont")
    world.inbox.wait_for(CODES_TO)
    code = world.inbox.last_code(CODES_TO)
    assert send_code(client, code).status_code == 303
    replayed = send_code(client, code)
    assert replayed.status_code == 410 and error_code(replayed) == "code_expired"
    assert new_password(client, NEW_PASSWORD).status_code == 200
    again = new_password(client, "Encore-Un-Autre-2028!")
    assert again.status_code == 410 and error_code(again) == "recovery_expired"
    assert password_login(world.app.test_client(), password=NEW_PASSWORD).status_code == 303


def test_the_new_password_needs_the_code_of_this_browser(world):
    client = world.app.test_client()
    forged = new_password(client, NEW_PASSWORD)  # no recovery at all
    assert forged.status_code == 410 and error_code(forged) == "recovery_expired"
    ask(client, "marie.dupont")
    world.inbox.wait_for(CODES_TO)
    early = new_password(client, NEW_PASSWORD)  # before the code
    assert early.status_code == 410 and error_code(early) == "recovery_expired"
    other = world.app.test_client()  # another browser cannot use this browser's code
    assert send_code(other, world.inbox.last_code(CODES_TO)).status_code == 410
    assert password_login(world.app.test_client()).status_code == 303


def test_parallel_right_codes_one_wins(world):
    client = world.app.test_client()
    ask(client, "marie.dupont")
    world.inbox.wait_for(CODES_TO)
    code, token = world.inbox.last_code(CODES_TO), csrf(client)
    connections = [same_browser(world.app, client) for _ in range(6)]
    results = in_parallel(6, lambda i: connections[i].post("/account/forgot/code", data={
        "csrf_token": token, "code": code}).status_code)
    assert sorted(results).count(303) == 1, results


def test_parallel_new_passwords_one_wins(world):
    client = world.app.test_client()
    ask(client, "marie.dupont")
    world.inbox.wait_for(CODES_TO)
    assert send_code(client, world.inbox.last_code(CODES_TO)).status_code == 303
    token = csrf(client)
    connections = [same_browser(world.app, client) for _ in range(4)]
    results = in_parallel(4, lambda i: connections[i].post("/account/forgot/password", data={
        "csrf_token": token, "password": f"{NEW_PASSWORD}{i}", "confirm": f"{NEW_PASSWORD}{i}"}).status_code)
    assert sorted(results).count(200) == 1, results
    assert len(world.audit("account.recovered")) == 1


def test_an_empty_identifier_is_refused(world):
    answer = ask(world.app.test_client(), "   ")
    assert answer.status_code == 400 and error_code(answer) == "missing_identifier"

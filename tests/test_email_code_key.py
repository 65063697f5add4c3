"""The "security code by e-mail" key (adapters/email_code, adapters/sent_code.py),
end to end through Sésame's HTTP endpoints, with a real SMTP server (aiosmtpd,
tests/messaging.py) and pysaml2 portals: activation after a level-500 login
(tests/strong_login.py), then logins at a portal with the code read from the
mail, as the citizen reads it.  The world and the walks: tests/code_keys.py.
"""
from __future__ import annotations

import re

import pytest

from tests.code_keys import (  # noqa: F401 (keys: the fixture)
    CODE_SETTINGS, COOLDOWN, DEMO_PASSWORD, MARIE_MAIL, MARIE_NRN, MAX_CODES, STRONG, TTL, activated_browser,
    choose, code_of, code_page, count, csrf, keys, offered, password_step, post_form, resend,
    start_activation, step_url, strong_browser,
)
from tests.messaging import CODE
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import autopost_fields, error_code, follow, form_action


# --- the e-mail key ----------------------------------------------------------------------
def test_activation_then_login_at_a_portal_with_the_mailed_code(keys):
    inbox, new_mail = keys.smtp.inbox, "marie.perso@example.org"
    browser = strong_browser(keys)
    step1 = start_activation(keys, browser, "email_code")
    html = step1.get_data(as_text=True)
    assert f'value="{MARIE_MAIL}"' in html  # prefilled with her address on record
    assert 'aria-current="step"' in html and html.count('class="todo"') == 2  # step 1 of 3
    step2 = follow(browser, post_form(browser, step1, address=f"  {new_mail} "))
    assert new_mail in step2.get_data(as_text=True) and not keys.active("email_code")
    registration = inbox.wait_for(new_mail)
    assert "enregistrement" in registration.subject and CODE.search(registration.text)
    step3 = follow(browser, post_form(browser, step2, code=code_of(inbox, new_mail, 1)))
    assert step3.get_data(as_text=True).count('class="done"') == 2
    assert not keys.active("email_code")  # active only at the last step
    done = post_form(browser, step3)
    assert done.status_code == 303 and done.headers["Location"] == "/"
    record = keys.services.credentials.of_person(key="email_code", person_fedid=keys.fedid())
    assert record.active and record.data == {"to": new_mail}
    assert keys.services.contacts.get(keys.fedid()).mail == new_mail
    assert [e.key for e in keys.audit("key.activated")] == ["email_code"]
    assert 'id="activate-email_code"' not in browser.get("/").get_data(as_text=True)

    # A portal login in another browser: password, then the code of the new mail.
    other = keys.app.test_client()
    sent_before = count(inbox, new_mail)
    page = code_page(keys, other, "email_code")
    html = page.get_data(as_text=True)
    assert "m*****@example.org" in html and new_mail not in html
    assert 'id="resend"' in html and f"{TTL // 60} minutes" in html
    mail = inbox.wait_for(new_mail, sent_before + 1)
    assert mail.subject == "Votre code de sécurité Sésame"
    assert len(CODE.findall(mail.text)) == 1  # the code, six digits, and no other six-digit number
    response = keys.portal().parse(autopost_fields(post_form(other, page, code=CODE.search(mail.text)[1]))[1]
                                   ["SAMLResponse"])
    assert response.ava["egovNRN"] == [MARIE_NRN] and response.ava["surname"] == ["Dupont"]
    assert response.authn_info()[0][0] == "urn:be:fedict:iam:fas:citizen:Level200"
    assert [e.key for e in keys.audit("login.success")][-1] == "email_code"
    assert keys.smtp.inbox.to(MARIE_MAIL) == []  # nothing went to the old address


@pytest.mark.parametrize("min_level, shown", [(200, True), (300, False), (400, False)])
def test_offered_only_to_portals_accepting_its_level(keys, min_level, shown):
    page = choose(keys, keys.app.test_client(), min_level)
    assert ("email_code" in offered(page)) is shown
    assert STRONG in offered(page)


def test_activation_from_a_level_100_session_is_refused(keys):
    browser = keys.app.test_client()
    home = browser.get("/")
    start = follow(browser, browser.post("/journeys/login", data={"csrf_token": csrf(home), "next": "/"}))
    form = browser.get(re.search(r'href="(/login/password/\?tx=[^"]+)"',
                                 start.get_data(as_text=True))[1].replace("&amp;", "&"))
    assert post_form(browser, form, username="marie.dupont", password=DEMO_PASSWORD).status_code == 303
    home = browser.get("/")
    refused = browser.post("/journeys/activate/email_code", data={"csrf_token": csrf(home), "next": "/"})
    assert refused.status_code == 403 and error_code(refused) == "activation_level"
    assert keys.smtp.inbox.messages == [] and not keys.active("email_code")


@pytest.mark.parametrize("typed", ["marie", "marie@", "@example.be", "marie@example", "ma rie@example.be",
                                   "marie..d@example.be", "m@-x.be", "x" * 300 + "@example.be"])
def test_a_malformed_address_is_refused_and_nothing_is_sent(keys, typed):
    browser = strong_browser(keys)
    step1 = start_activation(keys, browser, "email_code")
    refused = post_form(browser, step1, address=typed)
    assert refused.status_code == 400 and error_code(refused) == "bad_email"
    assert keys.smtp.inbox.messages == []
    # and step 2 stays closed
    forged = browser.post(step_url(step1, "email_code", "code"), data={"csrf_token": csrf(step1), "code": "123456"})
    assert forged.status_code == 400 and error_code(forged) == "step_order"


def test_steps_posted_out_of_order_are_refused(keys):
    inbox = keys.smtp.inbox
    browser = strong_browser(keys)
    step1 = start_activation(keys, browser, "email_code")
    for step in ("code", "resend", "confirm"):
        forged = browser.post(step_url(step1, "email_code", step), data={"csrf_token": csrf(step1), "code": "1"})
        assert forged.status_code == 400 and error_code(forged) == "step_order", step
    step2 = follow(browser, post_form(browser, step1, address=MARIE_MAIL))
    confirm = browser.post(step_url(step2, "email_code", "confirm"), data={"csrf_token": csrf(step2)})
    assert confirm.status_code == 400 and error_code(confirm) == "step_order"
    assert browser.get(step_url(step2, "email_code", "nowhere")).status_code == 400
    assert not keys.active("email_code") and keys.audit("key.activated") == []
    # The right code still opens step 3 afterwards: a forged post did not end the wizard.
    assert post_form(browser, step2, code=code_of(inbox, MARIE_MAIL, 1)).status_code == 303


def test_wrong_expired_and_replaced_registration_codes(keys, clock):
    inbox = keys.smtp.inbox
    browser = strong_browser(keys)
    step2 = follow(browser, post_form(browser, start_activation(keys, browser, "email_code"), address=MARIE_MAIL))
    first = code_of(inbox, MARIE_MAIL, 1)
    wrong = post_form(browser, step2, code="000000" if first != "000000" else "111111")
    assert wrong.status_code == 401 and error_code(wrong) == "bad_code"
    assert f"{MAX_CODES - 1} essai" in wrong.get_data(as_text=True)  # attempts left
    missing = post_form(browser, step2, code="  ")
    assert missing.status_code == 400 and error_code(missing) == "missing_code"
    clock.advance(TTL + 1)
    expired = post_form(browser, step2, code=first)
    assert expired.status_code == 401 and error_code(expired) == "code_expired"
    again = resend(browser, step2, "email_code")  # the cooldown is long over
    assert again.status_code == 200 and 'id="notice"' in again.get_data(as_text=True)
    second = code_of(inbox, MARIE_MAIL, 2)
    if second != first:  # the replaced code no longer works (one in a million they are equal)
        stale = post_form(browser, step2, code=first)
        assert stale.status_code == 401 and error_code(stale) in ("bad_code", "too_many_code_attempts")
    assert not keys.active("email_code")


def test_too_many_wrong_registration_codes_end_the_challenge(keys):
    inbox = keys.smtp.inbox
    browser = strong_browser(keys)
    step2 = follow(browser, post_form(browser, start_activation(keys, browser, "email_code"), address=MARIE_MAIL))
    right = code_of(inbox, MARIE_MAIL, 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert [error_code(post_form(browser, step2, code=wrong)) for _ in range(MAX_CODES - 1)] == \
        ["bad_code"] * (MAX_CODES - 1)
    final = post_form(browser, step2, code=wrong)
    assert final.status_code == 429 and error_code(final) == "too_many_code_attempts"
    late = post_form(browser, step2, code=right)  # the right one, too late: no code waits any more
    assert late.status_code == 401 and error_code(late) == "code_expired"
    confirm = browser.post(step_url(step2, "email_code", "confirm"), data={"csrf_token": csrf(step2)})
    assert error_code(confirm) == "step_order" and not keys.active("email_code")
    assert [e.result for e in keys.audit("key.activation_failed")] == \
        ["bad_code"] * (MAX_CODES - 1) + ["too_many_code_attempts", "code_expired"]


def test_login_code_wrong_then_too_many_then_even_the_right_one_fails(keys):
    inbox = keys.smtp.inbox
    browser = activated_browser(keys, "email_code", MARIE_MAIL, MARIE_MAIL, inbox)
    sent = count(inbox, MARIE_MAIL)
    page = code_page(keys, browser, "email_code")
    right = code_of(inbox, MARIE_MAIL, sent + 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(MAX_CODES - 1):
        wrong_answer = post_form(browser, page, code=wrong)
        assert wrong_answer.status_code == 401 and error_code(wrong_answer) == "bad_code"
    final = post_form(browser, page, code=wrong)
    assert final.status_code == 303 and "error=too_many_code_attempts" in final.headers["Location"]
    late = post_form(browser, page, code=right)
    assert late.status_code != 200 or 'id="autopost"' not in late.get_data(as_text=True)
    assert error_code(follow(browser, late)) in ("code_expired", "too_many_code_attempts")
    assert [e.key for e in keys.audit("login.success")] == [STRONG]


def test_login_code_expires_then_a_new_one_logs_in(keys, clock):
    inbox = keys.smtp.inbox
    browser = activated_browser(keys, "email_code", MARIE_MAIL, MARIE_MAIL, inbox)
    sent = count(inbox, MARIE_MAIL)
    page = code_page(keys, browser, "email_code")
    old = code_of(inbox, MARIE_MAIL, sent + 1)
    clock.advance(TTL + 1)
    expired = post_form(browser, page, code=old)
    assert expired.status_code == 401 and error_code(expired) == "code_expired"
    assert resend(browser, page, "email_code").status_code == 200
    fresh = code_of(inbox, MARIE_MAIL, sent + 2)
    assert 'id="autopost"' in post_form(browser, page, code=fresh).get_data(as_text=True)


def test_a_used_code_does_not_log_in_again(keys):
    inbox = keys.smtp.inbox
    browser = activated_browser(keys, "email_code", MARIE_MAIL, MARIE_MAIL, inbox)
    sent = count(inbox, MARIE_MAIL)
    page = code_page(keys, browser, "email_code")
    used = code_of(inbox, MARIE_MAIL, sent + 1)
    assert 'id="autopost"' in post_form(browser, page, code=used).get_data(as_text=True)
    # Replayed in the same journey: finished.  In a new login (another browser): not its code.
    assert post_form(browser, page, code=used).status_code in (400, 410)
    other = keys.app.test_client()
    page = code_page(keys, other, "email_code")
    replayed = post_form(other, page, code=used)
    if code_of(inbox, MARIE_MAIL, sent + 2) != used:  # one in a million, the new code is the same
        assert replayed.status_code == 401 and error_code(replayed) == "bad_code"
    assert [e.key for e in keys.audit("login.success")].count("email_code") == 1


def test_resend_too_soon_then_allowed_then_too_many_sends(keys, clock):
    inbox = keys.smtp.inbox
    browser = activated_browser(keys, "email_code", MARIE_MAIL, MARIE_MAIL, inbox)
    # Sends of the login scope so far: none (the registration code is another scope).
    sent = count(inbox, MARIE_MAIL)
    page = code_page(keys, browser, "email_code")
    inbox.wait_for(MARIE_MAIL, sent + 1)
    clock.advance(10)
    soon = resend(browser, page, "email_code")
    assert soon.status_code == 429 and error_code(soon) == "resend_too_soon"
    assert re.search(r"\b50\b", soon.get_data(as_text=True))  # seconds left of the cooldown
    assert count(inbox, MARIE_MAIL) == sent + 1
    # GET never sends.
    assert browser.get(step_url(page, "email_code", "resend")).status_code == 200
    for n in range(2, CODE_SETTINGS["sends_per_account"] + 1):
        clock.advance(COOLDOWN)
        assert resend(browser, page, "email_code").status_code == 200
        inbox.wait_for(MARIE_MAIL, sent + n)
    clock.advance(COOLDOWN)
    flood = resend(browser, page, "email_code")
    assert flood.status_code == 429 and error_code(flood) == "too_many_sends"
    assert count(inbox, MARIE_MAIL) == sent + CODE_SETTINGS["sends_per_account"]


def test_parallel_posts_of_the_right_code_log_in_once(keys):
    inbox = keys.smtp.inbox
    browser = activated_browser(keys, "email_code", MARIE_MAIL, MARIE_MAIL, inbox)
    sent = count(inbox, MARIE_MAIL)
    page = code_page(keys, browser, "email_code")
    code, action, token = code_of(inbox, MARIE_MAIL, sent + 1), form_action(page.get_data(as_text=True)), csrf(page)
    # As many posts as checks allowed: beyond, the engine ends the challenge (too many).
    clients = [same_browser(keys.app, browser) for _ in range(MAX_CODES)]
    answers = in_parallel(MAX_CODES, lambda i: clients[i].post(action, data={"csrf_token": token, "code": code}))
    won = [a for a in answers if 'id="autopost"' in a.get_data(as_text=True)]
    assert len(won) == 1, [a.status_code for a in answers]
    assert [e.key for e in keys.audit("login.success")].count("email_code") == 1


def test_parallel_wrong_codes_get_at_most_the_allowed_checks(keys):
    inbox = keys.smtp.inbox
    browser = activated_browser(keys, "email_code", MARIE_MAIL, MARIE_MAIL, inbox)
    sent = count(inbox, MARIE_MAIL)
    page = code_page(keys, browser, "email_code")
    right = code_of(inbox, MARIE_MAIL, sent + 1)
    action, token = form_action(page.get_data(as_text=True)), csrf(page)
    wrongs = [f"{(int(right) + 1 + i) % 1_000_000:06d}" for i in range(12)]
    clients = [same_browser(keys.app, browser) for _ in range(12)]
    answers = in_parallel(12, lambda i: clients[i].post(action, data={"csrf_token": token, "code": wrongs[i]}))
    # A code compared and found wrong says bad_code, but the last allowed one: too many.
    # Never more than max_code_attempts comparisons, whatever the interleaving.
    assert any(a.status_code == 303 and "too_many_code_attempts" in a.headers["Location"] for a in answers)
    assert sum(error_code(a) == "bad_code" for a in answers) <= MAX_CODES - 1
    late = post_form(browser, page, code=right)
    assert 'id="autopost"' not in late.get_data(as_text=True)
    assert "email_code" not in [e.key for e in keys.audit("login.success")]


def test_parallel_resends_send_one_message(keys, clock):
    inbox = keys.smtp.inbox
    browser = activated_browser(keys, "email_code", MARIE_MAIL, MARIE_MAIL, inbox)
    sent = count(inbox, MARIE_MAIL)
    page = code_page(keys, browser, "email_code")
    inbox.wait_for(MARIE_MAIL, sent + 1)
    clock.advance(COOLDOWN)
    url, token = step_url(page, "email_code", "resend"), csrf(page)
    clients = [same_browser(keys.app, browser) for _ in range(8)]
    statuses = in_parallel(8, lambda i: clients[i].post(url, data={"csrf_token": token}).status_code)
    assert statuses.count(200) == 1 and all(s in (200, 429) for s in statuses), statuses
    inbox.wait_for(MARIE_MAIL, sent + 2)
    assert count(inbox, MARIE_MAIL) == sent + 2


def test_not_activated_yet_is_told_after_the_password(keys):
    answer = password_step(keys, keys.app.test_client(), "email_code")
    assert answer.status_code == 403 and 'data-code="key_not_active"' in answer.get_data(as_text=True)
    assert keys.smtp.inbox.messages == []

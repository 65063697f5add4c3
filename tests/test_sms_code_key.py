"""The "security code by SMS" key (adapters/sms_code, adapters/sent_code.py), end
to end with a real HTTP server standing in for the SMS gateway
(tests/messaging.py): what it received (basic authentication, the JSON body)
is what a real gateway would.  The walks and the world are the e-mail key's
(tests/test_email_code_key.py): the two keys share one base.
"""
from __future__ import annotations

import base64
import json
import re

import pytest

from tests.messaging import CODE
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import autopost_fields, error_code, follow, form_action
from tests.code_keys import (  # noqa: F401 (keys: the fixture)
    CODE_SETTINGS, COOLDOWN, DEMO_PASSWORD, MARIE_MAIL, MARIE_NRN, TTL, activated_browser, choose, code_of, code_page,
    csrf, keys, offered, password_step, post_form, resend, start_activation, step_url, strong_browser,
)

NUMBER = "+32470123456"


def test_activation_then_login_at_a_portal_with_the_texted_code(keys):
    sms = keys.gateway.inbox
    keys.services.contacts.set_phone(keys.fedid(), "0470/12.34.56")  # on record, typed any way
    browser = strong_browser(keys)
    step1 = start_activation(keys, browser, "sms_code")
    assert f'value="{NUMBER}"' in step1.get_data(as_text=True)  # prefilled, in E.164
    step2 = follow(browser, post_form(browser, step1, address="0470 12 34 56"))  # national form: +32
    assert NUMBER in step2.get_data(as_text=True)
    texted = sms.wait_for(NUMBER)
    assert "enregistrement" in texted.text and texted.subject == "Sesame"  # the gateway's "from"
    step3 = follow(browser, post_form(browser, step2, code=code_of(sms, NUMBER, 1)))
    assert not keys.active("sms_code")
    done = post_form(browser, step3)
    assert done.status_code == 303 and done.headers["Location"] == "/"
    record = keys.services.credentials.of_person(key="sms_code", person_fedid=keys.fedid())
    assert record.active and record.data == {"to": NUMBER}
    assert keys.services.contacts.get(keys.fedid()).phone == NUMBER
    assert [e.key for e in keys.audit("key.activated")] == ["sms_code"]
    # The gateway was called with basic authentication, every time.
    expected = "Basic " + base64.b64encode(b"sesame:gateway-secret").decode()
    assert keys.gateway.auth and set(keys.gateway.auth) == {expected}

    other = keys.app.test_client()
    page = code_page(keys, other, "sms_code", min_level=300)
    html = page.get_data(as_text=True)
    assert "+32 *** ** ** 56" in html and NUMBER not in html
    message = sms.wait_for(NUMBER, 2)
    assert len(CODE.findall(message.text)) == 1 and "sécurité" in message.text
    answer = post_form(other, page, code=CODE.search(message.text)[1])
    response = keys.portal(300).parse(autopost_fields(answer)[1]["SAMLResponse"])
    assert response.ava["egovNRN"] == [MARIE_NRN]
    assert response.authn_info()[0][0] == "urn:be:fedict:iam:fas:citizen:Level300"


def test_the_gateway_gets_the_configured_json_body(keys):
    """What went over the wire: the JSON of [sms] body_template, values put in, not pasted."""
    gateway = keys.services.sms
    body = gateway.body(to=NUMBER, text='Sésame "quoted" $sender')
    assert json.loads(body) == {"to": NUMBER, "text": 'Sésame "quoted" $sender', "from": "Sesame"}
    browser = strong_browser(keys)
    post_form(browser, start_activation(keys, browser, "sms_code"), address=NUMBER)
    received = keys.gateway.inbox.wait_for(NUMBER)
    assert (received.to, received.subject) == (NUMBER, "Sesame") and CODE.search(received.text)


@pytest.mark.parametrize("min_level, shown", [(200, True), (300, True), (400, False)])
def test_offered_only_to_portals_accepting_its_level(keys, min_level, shown):
    page = choose(keys, keys.app.test_client(), min_level)
    assert ("sms_code" in offered(page)) is shown
    assert ("email_code" in offered(page)) is (min_level <= 200)


@pytest.mark.parametrize("typed", ["12345", "+32 2 123 45 67", "0470 12 34", "+0470123456", "04701234567890123",
                                   "abc", "+32 470 12 34 56 78"])
def test_a_malformed_number_is_refused_and_nothing_is_sent(keys, typed):
    browser = strong_browser(keys)
    step1 = start_activation(keys, browser, "sms_code")
    refused = post_form(browser, step1, address=typed)
    assert refused.status_code == 400 and error_code(refused) == "bad_phone"
    assert keys.gateway.inbox.messages == [] and keys.gateway.auth == []


def test_a_gateway_failure_is_told_and_nothing_is_activated(keys, clock):
    keys.gateway.fail.append(500)
    browser = strong_browser(keys)
    step1 = start_activation(keys, browser, "sms_code")
    failed = post_form(browser, step1, address=NUMBER)
    assert failed.status_code == 503 and error_code(failed) == "delivery_failed"
    assert keys.gateway.inbox.messages == [] and len(keys.gateway.auth) == 1  # it was tried
    assert [e.result for e in keys.audit("code.delivery_failed")] == ["delivery_failed"]
    forged = browser.post(step_url(step1, "sms_code", "code"), data={"csrf_token": csrf(step1), "code": "123456"})
    assert forged.status_code == 400 and error_code(forged) == "step_order"
    assert not keys.active("sms_code") and keys.audit("key.activated") == []
    # Once the gateway is back (and the cooldown over), the citizen goes on.
    clock.advance(COOLDOWN)
    assert post_form(browser, step1, address=NUMBER).status_code == 303
    assert keys.gateway.inbox.wait_for(NUMBER)


def test_a_gateway_failure_at_login_is_told(keys, clock):
    browser = activated_browser(keys, "sms_code", NUMBER, NUMBER, keys.gateway.inbox)
    keys.gateway.fail.append(503)
    failed = follow(browser, password_step(keys, browser, "sms_code", min_level=300))
    assert failed.status_code == 503 and error_code(failed) == "delivery_failed"
    assert 'id="sent-to"' not in failed.get_data(as_text=True) and 'id="resend"' in failed.get_data(as_text=True)
    clock.advance(COOLDOWN)
    again = resend(browser, failed, "sms_code")
    assert again.status_code == 200 and 'id="notice"' in again.get_data(as_text=True)
    code = code_of(keys.gateway.inbox, NUMBER, 2)
    assert 'id="autopost"' in post_form(browser, again, code=code).get_data(as_text=True)


def test_activation_from_a_level_100_session_is_refused(keys):
    browser = keys.app.test_client()
    home = browser.get("/")
    start = follow(browser, browser.post("/journeys/login", data={"csrf_token": csrf(home), "next": "/"}))
    form = browser.get(re.search(r'href="(/login/password/\?tx=[^"]+)"',
                                 start.get_data(as_text=True))[1].replace("&amp;", "&"))
    post_form(browser, form, username="marie.dupont", password=DEMO_PASSWORD)
    refused = browser.post("/journeys/activate/sms_code", data={"csrf_token": csrf(browser.get("/")), "next": "/"})
    assert refused.status_code == 403 and error_code(refused) == "activation_level"
    assert keys.gateway.inbox.messages == []


def test_steps_out_of_order_and_too_many_registration_codes(keys):
    sms = keys.gateway.inbox
    browser = strong_browser(keys)
    step1 = start_activation(keys, browser, "sms_code")
    forged = browser.post(step_url(step1, "sms_code", "confirm"), data={"csrf_token": csrf(step1)})
    assert forged.status_code == 400 and error_code(forged) == "step_order"
    step2 = follow(browser, post_form(browser, step1, address=NUMBER))
    right = code_of(sms, NUMBER, 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(CODE_SETTINGS["max_code_attempts"] - 1):
        assert error_code(post_form(browser, step2, code=wrong)) == "bad_code"
    assert error_code(post_form(browser, step2, code=wrong)) == "too_many_code_attempts"
    assert error_code(post_form(browser, step2, code=right)) == "code_expired"
    assert not keys.active("sms_code")


def test_expired_registration_code_and_resend_cooldown(keys, clock):
    sms = keys.gateway.inbox
    browser = strong_browser(keys)
    step2 = follow(browser, post_form(browser, start_activation(keys, browser, "sms_code"), address=NUMBER))
    old = code_of(sms, NUMBER, 1)
    soon = resend(browser, step2, "sms_code")
    assert soon.status_code == 429 and error_code(soon) == "resend_too_soon" and len(sms.to(NUMBER)) == 1
    clock.advance(TTL + 1)
    expired = post_form(browser, step2, code=old)
    assert expired.status_code == 401 and error_code(expired) == "code_expired"
    assert resend(browser, step2, "sms_code").status_code == 200
    assert post_form(browser, step2, code=code_of(sms, NUMBER, 2)).status_code == 303


def test_parallel_right_registration_codes_open_step_3_once(keys):
    sms = keys.gateway.inbox
    browser = strong_browser(keys)
    step2 = follow(browser, post_form(browser, start_activation(keys, browser, "sms_code"), address=NUMBER))
    code, action, token = code_of(sms, NUMBER, 1), form_action(step2.get_data(as_text=True)), csrf(step2)
    n = CODE_SETTINGS["max_code_attempts"]  # beyond, the engine ends the challenge (too many)
    clients = [same_browser(keys.app, browser) for _ in range(n)]
    answers = in_parallel(n, lambda i: clients[i].post(action, data={"csrf_token": token, "code": code}))
    opened = [a for a in answers if a.status_code == 303 and "/confirm" in a.headers["Location"]]
    assert len(opened) == 1, [(a.status_code, error_code(a)) for a in answers]
    assert all(error_code(a) in ("code_expired", "journey_conflict", "step_order") for a in answers if a not in opened), \
        [(a.status_code, error_code(a)) for a in answers]
    done = post_form(browser, follow(browser, opened[0]))
    assert done.status_code == 303 and keys.active("sms_code")


def test_parallel_confirmations_activate_once(keys):
    sms = keys.gateway.inbox
    browser = strong_browser(keys)
    step2 = follow(browser, post_form(browser, start_activation(keys, browser, "sms_code"), address=NUMBER))
    step3 = follow(browser, post_form(browser, step2, code=code_of(sms, NUMBER, 1)))
    action, token = form_action(step3.get_data(as_text=True)), csrf(step3)
    clients = [same_browser(keys.app, browser) for _ in range(6)]
    statuses = in_parallel(6, lambda i: clients[i].post(action, data={"csrf_token": token}).status_code)
    assert statuses.count(303) == 1 and all(s in (303, 400, 409) for s in statuses), statuses
    assert [e.key for e in keys.audit("key.activated")] == ["sms_code"]


def test_parallel_resends_send_one_sms(keys, clock):
    sms = keys.gateway.inbox
    browser = strong_browser(keys)
    step2 = follow(browser, post_form(browser, start_activation(keys, browser, "sms_code"), address=NUMBER))
    sms.wait_for(NUMBER)
    clock.advance(COOLDOWN)
    url, token = step_url(step2, "sms_code", "resend"), csrf(step2)
    clients = [same_browser(keys.app, browser) for _ in range(8)]
    statuses = in_parallel(8, lambda i: clients[i].post(url, data={"csrf_token": token}).status_code)
    assert statuses.count(200) == 1 and all(s in (200, 429) for s in statuses), statuses
    sms.wait_for(NUMBER, 2)
    assert len(sms.to(NUMBER)) == 2 and len(keys.gateway.auth) == 2
    assert keys.smtp.inbox.to(MARIE_MAIL) == []  # a code for the phone goes to the phone only

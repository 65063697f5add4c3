"""The citizen's activation path of the registration office (idp/views/office.py):
every bad input (wrong, missing, malformed, expired, void, replaced, reused
code or link; a grant expired; the choices refused) and the races (parallel
wrong codes never get more than 3 comparisons; a right code posted in parallel
redeems once).  The whole path and the officer's side: tests/test_office.py.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.persistence.models import ActivationCode, Credential, Person, Registration
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import error_code, follow
from tests.test_office import (NAIMA_MAIL, choose, csrf, enter_code, registered, text,
                               totp_wizard, world)  # noqa: F401 (world: the fixture)

MONTH = 31 * 24 * 3600


def stored_code(world) -> ActivationCode:
    with world.services.database.session() as s:
        row = s.scalars(select(ActivationCode).order_by(ActivationCode.id.desc())).first()
        s.expunge(row)
        return row


def wrong(code: str) -> str:
    """Another well-formed code."""
    return ("A" if code[0] != "A" else "B") + code[1:]


def redeemed(world):
    """A citizen's browser past the code: on the key page."""
    code, link = registered(world)
    citizen = world.app.test_client()
    page = follow(citizen, enter_code(citizen, link, code))
    assert 'id="choose"' in text(page), text(page)[:600]
    return citizen, page, link


# --- the code ------------------------------------------------------------------------------------
def test_three_wrong_codes_void_it_with_the_attempts_left_shown(world):
    code, link = registered(world)
    citizen = world.app.test_client()
    first = enter_code(citizen, link, wrong(code))
    assert first.status_code == 401 and error_code(first) == "bad_activation_code"
    assert 'data-left="2"' in text(first) and "2 essai(s)" in text(first)
    second = enter_code(citizen, link, wrong(code))
    assert error_code(second) == "bad_activation_code" and 'data-left="1"' in text(second)
    third = enter_code(citizen, link, wrong(code))
    assert third.status_code == 410 and error_code(third) == "activation_code_void"
    # Void for good: even the right code, and the page says to go back to the office.
    assert error_code(citizen.get(link)) == "activation_code_void"
    assert citizen.post(link, data={"csrf_token": csrf(first), "code": code}).status_code == 410
    assert stored_code(world).attempts == 3
    assert [r.result for r in world.audit("office.activation_refused")][:3] == [
        "bad_activation_code", "bad_activation_code", "activation_code_void"]


@pytest.mark.parametrize("typed, code", [("", "missing_activation_code"), ("   ", "missing_activation_code"),
                                         ("ABCDE", "bad_activation_code_format"),
                                         ("0OOOO 11111 IIIII LLLLL", "bad_activation_code_format")])
def test_empty_or_malformed_codes_are_refused_without_spending_an_attempt(world, typed, code):
    _, link = registered(world)
    citizen = world.app.test_client()
    answer = enter_code(citizen, link, typed)
    assert answer.status_code == 400 and error_code(answer) == code and 'data-left="3"' in text(answer)
    assert stored_code(world).attempts == 0


def test_an_expired_code_and_link_send_back_to_the_office(world):
    code, link = registered(world)
    world.clock.advance(MONTH)
    citizen = world.app.test_client()
    page = citizen.get(link)
    assert page.status_code == 410 and error_code(page) == "activation_expired"
    answer = citizen.post(link, data={"csrf_token": csrf(citizen.get("/")), "code": code})
    assert answer.status_code == 410 and error_code(answer) == "activation_expired"
    assert stored_code(world).status == "pending" and stored_code(world).attempts == 0


def test_an_unknown_link_is_not_found(world):
    registered(world)
    answer = world.app.test_client().get("/office/activation/not-a-link")
    assert answer.status_code == 404 and error_code(answer) == "activation_link_unknown"
    assert world.audit("office.activation_refused")[-1].result == "activation_link_unknown"


def test_a_redeemed_link_cannot_be_used_from_another_browser(world):
    _, _, link = redeemed(world)
    other = world.app.test_client()
    answer = other.get(link)
    assert answer.status_code == 410 and error_code(answer) == "activation_used"
    # And that browser holds no grant: the key page is closed to it.
    closed = other.get("/office/activation/key")
    assert closed.status_code == 410 and error_code(closed) == "activation_grant_expired"


def test_the_key_page_needs_a_grant_that_has_not_expired(world):
    citizen, page, _ = redeemed(world)
    world.clock.advance(61 * 60)  # [office] grant_minutes = 60: the state store forgets it
    answer = choose(citizen, page)
    assert answer.status_code == 410 and error_code(answer) == "activation_grant_expired"


def test_a_reissued_code_ends_a_grant_in_progress(world):
    citizen, page, _ = redeemed(world)
    with world.services.database.session() as s:
        rid = s.scalar(select(Registration.id))
    from idp.views.office import office

    with world.app.test_request_context():  # the officer re-issues (tests/test_office.py drives the page)
        office().reissue(office_code="BXL-1", registration_id=rid, officer_fedid="x", send=lambda issued: None)
    answer = choose(citizen, page)
    assert answer.status_code == 410 and error_code(answer) == "activation_grant_expired"


# --- the choices -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fields, code", [
    ({"terms": None}, "terms_not_accepted"),
    ({"key": "password"}, "activation_key_choice"),
    ({"key": "standin_strong"}, "activation_key_choice"),
    ({"lang": "xx"}, "bad_language"),
    ({"confirm": "Autre-Chose-2027"}, "passwords_differ"),
    ({"password": "court", "confirm": "court"}, "password_too_short"),
    ({"username": "marie.dupont"}, "username_taken"),
    ({"username": "  "}, "username_empty"),
])
def test_bad_choices_are_refused_and_write_nothing(world, fields, code):
    citizen, page, _ = redeemed(world)
    answer = choose(citizen, page, **fields)
    assert answer.status_code == 400 and error_code(answer) == code
    with world.services.database.session() as s:
        person = s.scalar(select(Person).where(Person.mail == NAIMA_MAIL))
        assert s.scalars(select(Credential).where(Credential.person_id == person.id)).all() == []
        assert s.scalar(select(Registration.terms_accepted_at)) is None
    # The grant holds: the right choices go on.
    assert choose(citizen, page).status_code == 303


def test_the_choices_set_the_language_and_record_the_terms(world):
    citizen, page, _ = redeemed(world)
    start = choose(citizen, page, lang="nl")
    assert start.status_code == 303 and "/login/totp/" in start.headers["Location"]
    with world.services.database.session() as s:
        assert s.scalar(select(Person.pref_language).where(Person.mail == NAIMA_MAIL)) == "nl"
        assert s.scalar(select(Registration.terms_accepted_at)) is not None
    # Back from an abandoned wizard: the key page again, without the password fields (it exists now).
    assert citizen.get("/office/activation/done").headers["Location"] == "/office/activation/key"
    again = citizen.get("/office/activation/key")
    assert 'id="choose"' in text(again) and 'id="username"' not in text(again)
    secret = totp_wizard(world, citizen, choose(citizen, again, username=None, password=None, confirm=None))
    assert secret and 'id="activated"' in text(citizen.get("/office/activation/done"))
    assert stored_code(world).status == "activated"


def test_the_terms_are_a_page_and_a_download(world):
    client = world.app.test_client()
    page = client.get("/office/terms")
    assert page.status_code == 200 and 'id="terms"' in text(page)
    download = client.get("/office/terms.txt")
    assert download.status_code == 200 and download.mimetype == "text/plain"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "Conditions d'usage" in text(download)


def test_there_is_no_way_to_activate_for_an_arbitrary_person(world):
    """The engine's granted activation is reached only through a redeemed code's grant."""
    client = world.app.test_client()
    token = csrf(client.get("/"))
    for path in ("/office/activation/key", "/office/activation/done"):
        answer = client.post(path, data={"csrf_token": token, "key": "totp", "lang": "fr", "terms": "yes",
                                         "person_fedid": "anyone"})
        assert answer.status_code in (404, 405, 410)  # "done" read as a link: none such
    assert world.audit("key.activated") == []


# --- races -----------------------------------------------------------------------------------------
def test_parallel_wrong_codes_never_get_more_than_three_comparisons(world):
    code, link = registered(world)
    citizen = world.app.test_client()
    token = csrf(citizen.get(link))
    browsers = [same_browser(world.app, citizen) for _ in range(8)]
    results = in_parallel(8, lambda i: browsers[i].post(link, data={"csrf_token": token, "code": wrong(code)}))
    codes = sorted(error_code(r) for r in results)
    assert codes.count("bad_activation_code") <= 2 and set(codes) <= {"bad_activation_code", "activation_code_void"}
    assert stored_code(world).attempts == 3
    compared = [r for r in world.audit("office.activation_refused") if r.detail.get("attempts_left") is not None]
    assert sum(1 for r in compared if r.result == "bad_activation_code") == codes.count("bad_activation_code")
    assert error_code(citizen.get(link)) == "activation_code_void"
    right = citizen.post(link, data={"csrf_token": token, "code": code})
    assert right.status_code == 410 and error_code(right) == "activation_code_void"  # void, even for the right code


def test_a_right_code_posted_in_parallel_redeems_once(world):
    code, link = registered(world)
    citizens = [world.app.test_client() for _ in range(5)]
    tokens = [csrf(c.get(link)) for c in citizens]
    results = in_parallel(5, lambda i: citizens[i].post(link, data={"csrf_token": tokens[i], "code": code}))
    assert sorted(r.status_code for r in results) == [303, 410, 410, 410, 410]
    assert {error_code(r) for r in results if r.status_code == 410} <= {"activation_used", "activation_code_void"}
    assert len(world.audit("office.code_redeemed")) == 1
    assert stored_code(world).status == "redeemed"

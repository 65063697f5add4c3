"""The "security code via a mobile app" key (adapters/totp), driven through
Sésame's real HTTP endpoints: the five-screen activation wizard after a
level-500 login, then logins at a pysaml2 portal with username + password and
the code an authenticator app computes (pyotp, on the same frozen clock).

Negative answers are asserted by error code (``data-code``), HTTP status,
audit rows and database rows, never by wording.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import re
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import segno
from sqlalchemy import select

from idp import create_app
from idp.app.demo import DEMO_PASSWORD, create_citizens, make_nrn
from idp.app.services import Services
from idp.persistence.models import AuditEvent, Credential, Person
from tests.conftest import idp_settings
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import (
    FSE, MON_ESPACE, TestPortal, audit_events, autopost_fields, error_code, follow, form_action, form_fields, send,
)
from tests.standin_keys import KEY_TYPES
from tests.strong_login import login_strong, strong_keys

MARIE_NRN = make_nrn(dt.date(1985, 3, 14), 123)
NEW_PASSWORD = "Gentiane-Orageuse-47"
MAX_FAILURES = 5  # [keys.totp] default


@dataclass
class World:
    app: object
    services: Services
    portal: TestPortal
    clock: object

    def audit(self, event: str) -> list[AuditEvent]:
        return audit_events(self.services, event)

    def credentials(self, key: str, fedid: str) -> list[Credential]:
        with self.services.database.session() as s:
            return list(s.scalars(select(Credential).join(Person, Credential.person_id == Person.id)
                                  .where(Credential.key == key, Person.fedid == fedid)))

    def fedid(self, nrn: str) -> str:
        with self.services.database.session() as s:
            return s.scalar(select(Person.fedid).where(Person.nrn == nrn))

    def choose_page(self, browser, portal: TestPortal | None = None):
        page = follow(browser, send(browser, (portal or self.portal).request()))
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        return page

    def code(self, secret: str, offset_steps: int = 0) -> str:
        return pyotp.TOTP(secret).at(self.clock.now() + 30 * offset_steps)


def portal_spec(spec, keys, min_level):
    return replace(spec, policy=(("accepted_keys", keys), ("min_level", min_level),
                                 ("attributes", ["surname", "givenName", "egovNRN"]),
                                 ("nameid_format", "persistent"), ("display_name", spec.title)))


@pytest.fixture
def make_world(tmp_path, clock):
    """A Sésame with the password and totp keys (``totp`` settings given), and a portal accepting both."""
    built = []

    def build(**totp) -> World:
        # Enough Argon2 slots that parallel posts are checked, not answered "busy".
        settings = idp_settings(tmp_path, keys=strong_keys("password", "totp", totp=totp),
                                limits={"max_concurrent_hashes": 32, "hash_wait_seconds": 10.0})
        services = Services.build(settings, clock=clock, key_types=KEY_TYPES)
        built.append(services)
        create_citizens(services)
        portal = TestPortal(services, portal_spec(MON_ESPACE, ["password", "totp"], 100), tmp_path / "sp")
        return World(create_app(services=services), services, portal, clock)

    yield build
    for services in built:
        services.database.dispose()


@pytest.fixture
def world(make_world) -> World:
    return make_world()


# --- helpers ---------------------------------------------------------------------------
def text(response) -> str:
    return response.get_data(as_text=True)



def submit(browser, response, **fields):
    """Post the page's (first) form as a citizen would, with its CSRF token."""
    page = text(response)
    return browser.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"], **fields})


def page_secret(response) -> str:
    """The secret as the citizen reads it on the page (groups of 4), spaces removed."""
    found = re.search(r'<code id="secret">([^<]+)</code>', text(response))
    assert found, text(response)[:600]
    return found[1].replace(" ", "")


def start_activation(browser):
    home = text(browser.get("/"))
    return browser.post("/journeys/activate/totp", data={"csrf_token": form_fields(home)["csrf_token"],
                                                          "next": "/"})


def to_scan_page(browser, *, mail: str | None = None):
    """From the start through Coordonnées and Installer: the page with the QR code."""
    contact = follow(browser, start_activation(browser))
    assert contact.status_code == 200 and 'id="mail"' in text(contact), text(contact)[:600]
    mail = mail if mail is not None else form_fields(text(contact))["mail"]
    install = follow(browser, submit(browser, contact, mail=mail))
    assert 'id="apps"' in text(install), text(install)[:600]
    scan = follow(browser, submit(browser, install))
    assert 'id="qr"' in text(scan), text(scan)[:600]
    return scan


def activate(world, browser, *, mail: str | None = None, account: tuple[str, str] | None = None) -> str:
    """The whole wizard; returns the secret the citizen's app holds."""
    scan = to_scan_page(browser, mail=mail)
    secret = page_secret(scan)
    answer = submit(browser, scan, code=world.code(secret))
    if account is not None:
        page = follow(browser, answer)
        assert 'id="username"' in text(page), text(page)[:600]
        answer = submit(browser, page, username=account[0], password=account[1], confirm=account[1])
    assert answer.status_code == 303 and answer.headers["Location"] == "/", text(answer)[:600]
    return secret


def password_step(world, browser, username: str, password: str = DEMO_PASSWORD, portal=None):
    """At a portal's key choice, pick the totp key and pass the password: the code page."""
    choose = world.choose_page(browser, portal)
    link = re.search(r'href="(/login/totp/\?tx=[^"]+)"', text(choose))
    assert link, "totp not offered"
    form = browser.get(link[1].replace("&amp;", "&"))
    answer = submit(browser, form, username=username, password=password)
    page = follow(browser, answer)
    assert 'id="code"' in text(page), (page.status_code, error_code(page))
    return page


def qr_of(response) -> str:
    return html.unescape(re.search(r'<img id="qr" src="([^"]+)"', text(response))[1])


def expected_qr(secret: str, account: str) -> str:
    uri = pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name="Sésame")
    assert uri.startswith("otpauth://totp/S%C3%A9same:") and f"secret={secret}" in uri
    return segno.make(uri, error="m").png_data_uri(scale=5)


def wrong_code(world, secret: str) -> str:
    near = {world.code(secret, k) for k in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


@pytest.fixture
def marie_with_totp(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    return activate(world, browser)


# --- activation, then login ---------------------------------------------------------------
def test_activation_then_login_at_the_portal_with_password_and_code(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    assert world.credentials("totp", world.fedid(MARIE_NRN)) == []
    secret = activate(world, browser)
    fedid = world.fedid(MARIE_NRN)
    [credential] = world.credentials("totp", fedid)
    assert credential.status == "active"
    assert [e.key for e in world.audit("key.activated")] == ["totp"]

    world.clock.advance(30)  # the next code: the one used for the activation is spent
    citizen = world.app.test_client()  # a fresh browser: no SSO session
    code_page = password_step(world, citizen, "marie.dupont")
    done = submit(citizen, code_page, code=world.code(secret))
    _, fields = autopost_fields(done)
    response = world.portal.parse(fields["SAMLResponse"])
    assert response.ava["egovNRN"] == [MARIE_NRN]
    assert response.authn_info()[0][0] == "urn:be:fedict:iam:fas:citizen:Level400"
    assert world.audit("login.success")[-1].key == "totp"


def test_the_seed_is_not_readable_in_the_database(world, marie_with_totp):
    secret, fedid = marie_with_totp, world.fedid(MARIE_NRN)
    [credential] = world.credentials("totp", fedid)
    stored = json.dumps(credential.data)
    assert secret not in stored and secret.lower() not in stored
    assert credential.data["seed"].startswith("v1.")
    # It is the seed, sealed for this person's totp key only.
    assert world.services.sealer.open(credential.data["seed"], owner=f"{fedid}:totp") == secret


def test_activation_creates_username_and_password_for_a_person_without(world):
    nrn = make_nrn(dt.date(1978, 6, 9), 517)
    world.services.people.create(surname="Lambert", given_name="Sophie", nrn=nrn, mail="sophie@example.be",
                                 birth_date=dt.date(1978, 6, 9))
    browser = world.app.test_client()
    login_strong(browser, nrn)
    scan = to_scan_page(browser)
    secret = page_secret(scan)
    account = follow(browser, submit(browser, scan, code=world.code(secret)))
    assert 'id="username"' in text(account)
    fedid = world.fedid(nrn)
    assert world.credentials("totp", fedid) == []  # nothing half-activated before the last step
    refused = submit(browser, account, username="sophie.lambert", password=NEW_PASSWORD, confirm="Autre-chose-123")
    assert refused.status_code == 400 and error_code(refused) == "passwords_differ"
    refused = submit(browser, account, username="marie.dupont", password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert refused.status_code == 400 and error_code(refused) == "username_taken"
    refused = submit(browser, account, username="sophie.lambert", password="court", confirm="court")
    assert refused.status_code == 400 and error_code(refused) == "password_too_short"
    assert world.credentials("totp", fedid) == [] and world.credentials("password", fedid) == []
    done = submit(browser, account, username="sophie.lambert", password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert done.status_code == 303 and done.headers["Location"] == "/"
    assert len(world.credentials("totp", fedid)) == 1
    assert world.services.credentials.find(key="password", username="sophie.lambert").person_fedid == fedid

    world.clock.advance(30)
    citizen = world.app.test_client()
    code_page = password_step(world, citizen, "sophie.lambert", NEW_PASSWORD)
    _, fields = autopost_fields(submit(citizen, code_page, code=world.code(secret)))
    assert world.portal.parse(fields["SAMLResponse"]).ava["egovNRN"] == [nrn]


def test_the_account_step_is_skipped_for_a_person_with_a_password(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    scan = to_scan_page(browser)
    account_url = form_action(text(scan)).replace("/scan?", "/account?")
    assert error_code(browser.get(account_url)) == "step_order"
    assert submit(browser, scan, code=world.code(page_secret(scan))).headers["Location"] == "/"


def test_the_mail_is_written_only_at_the_last_step(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    scan = to_scan_page(browser, mail="  Marie.Neuve@Example.BE ")
    contact = world.services.contacts.get(world.fedid(MARIE_NRN))
    assert contact.mail == "marie.dupont@example.be"
    # The app names the account by the confirmed address.
    assert qr_of(scan) == expected_qr(page_secret(scan), "Marie.Neuve@example.be")
    submit(browser, scan, code=world.code(page_secret(scan)))
    assert world.services.contacts.get(world.fedid(MARIE_NRN)).mail == "Marie.Neuve@example.be"


# --- the login page -------------------------------------------------------------------------
def test_totp_is_offered_only_to_portals_accepting_level_400(world, tmp_path):
    browser = world.app.test_client()
    assert 'id="key-totp"' in text(world.choose_page(browser))
    strict = TestPortal(world.services, portal_spec(FSE, ["password", "totp", "standin_strong"], 500),
                        tmp_path / "sp")
    page = text(world.choose_page(world.app.test_client(), strict))
    assert 'id="key-standin_strong"' in page and 'id="key-totp"' not in page


def test_a_person_without_the_key_is_told_after_the_password(world):
    browser = world.app.test_client()
    choose = world.choose_page(browser)
    tx = parse_qs(urlsplit(choose.request.url).query)["tx"][0]
    form = browser.get(f"/login/totp/?tx={tx}")
    answer = submit(browser, form, username="jan.peeters", password=DEMO_PASSWORD)
    assert answer.status_code == 403 and error_code(answer) == "key_not_active"


# --- bad input at login -----------------------------------------------------------------------
def test_the_activation_code_and_a_used_code_are_refused_again(world, marie_with_totp):
    secret = marie_with_totp
    first = world.app.test_client()
    code_page = password_step(world, first, "marie.dupont")
    replayed = submit(first, code_page, code=world.code(secret))  # the code the activation accepted
    assert replayed.status_code == 401 and error_code(replayed) == "code_replayed"

    world.clock.advance(30)
    assert autopost_fields(submit(first, code_page, code=world.code(secret)))
    second = world.app.test_client()
    again = submit(second, password_step(world, second, "marie.dupont"), code=world.code(secret))
    assert again.status_code == 401 and error_code(again) == "code_replayed"
    # An older code of the window is refused too: the counter only moves up.
    older = submit(second, password_step(world, second, "marie.dupont"), code=world.code(secret, -1))
    assert error_code(older) == "code_replayed"


def test_codes_of_the_window_are_accepted_and_far_away_ones_refused(world, marie_with_totp):
    secret = marie_with_totp
    world.clock.advance(300)
    browser = world.app.test_client()
    code_page = password_step(world, browser, "marie.dupont")
    near = {world.code(secret, k) for k in (-1, 0, 1)}
    for offset in (-4, 4, 40):
        far = world.code(secret, offset)
        if far in near:  # one chance in a million: another step's code
            continue
        refused = submit(browser, code_page, code=far)
        assert refused.status_code == 401 and error_code(refused) == "wrong_code", refused.headers.get("Location")
    # A phone a step ahead: its code is accepted, with spaces as apps show it.
    ahead = world.code(secret, 1)
    assert autopost_fields(submit(browser, code_page, code=f"{ahead[:3]} {ahead[3:]}"))


def test_wrong_codes_count_towards_the_lockout(world, marie_with_totp):
    secret = marie_with_totp
    world.clock.advance(30)
    browser = world.app.test_client()
    code_page = password_step(world, browser, "marie.dupont")
    bad = wrong_code(world, secret)
    # The right password is one attempt of the window too, until a right code ends it
    # (adapters/security_code.py): knowing the password buys no extra code guesses.
    for _ in range(MAX_FAILURES - 2):
        refused = submit(browser, code_page, code=bad)
        assert refused.status_code == 401 and error_code(refused) == "wrong_code", refused.headers.get("Location")
    blocked = submit(browser, code_page, code=bad)
    assert blocked.status_code == 303 and "error=account_blocked" in blocked.headers["Location"]
    # Blocked: the right code no longer helps, nor does the right password.
    assert "error=account_blocked" in submit(browser, code_page, code=world.code(secret)).headers["Location"]
    other = world.app.test_client()
    choose = world.choose_page(other)
    tx = parse_qs(urlsplit(choose.request.url).query)["tx"][0]
    answer = submit(other, other.get(f"/login/totp/?tx={tx}"), username="marie.dupont", password=DEMO_PASSWORD)
    assert answer.status_code == 403 and error_code(answer) == "account_blocked"
    assert [e for e in world.audit("login.success") if e.key == "totp"] == []


def test_a_seed_that_does_not_open_is_refused(world, marie_with_totp):
    secret, fedid = marie_with_totp, world.fedid(MARIE_NRN)
    jan = world.fedid(make_nrn(dt.date(1990, 7, 2), 45))
    with world.services.database.session() as s:  # the seed moved onto another person's row: does not open
        row = s.scalar(select(Credential).where(Credential.key == "totp"))
        row.data = {"seed": world.services.sealer.seal(secret, owner=f"{jan}:totp")}
    assert fedid != jan
    world.clock.advance(30)
    browser = world.app.test_client()
    answer = submit(browser, password_step(world, browser, "marie.dupont"), code=world.code(secret))
    assert answer.status_code == 303 and "error=totp_unusable" in answer.headers["Location"]
    assert [e for e in world.audit("login.success") if e.key == "totp"] == []


# --- bad input in the wizard ---------------------------------------------------------------------
def test_a_malformed_mail_is_refused_at_the_first_screen(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    contact = follow(browser, start_activation(browser))
    for bad in ("", "marie", "marie@", "marie@@example.be", "marie@example", "ma rie@example.be"):
        refused = submit(browser, contact, mail=bad)
        assert refused.status_code == 400 and error_code(refused) == "bad_email", bad


def test_a_forged_later_step_is_refused(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    contact = follow(browser, start_activation(browser))
    action = form_action(text(contact))
    token = form_fields(text(contact))["csrf_token"]
    for step in ("install", "scan", "account"):
        forged = browser.post(action.replace("/contact?", f"/{step}?"), data={"csrf_token": token, "code": "123456"})
        assert forged.status_code == 400 and error_code(forged) == "step_order", step
    assert error_code(browser.get(action.replace("/contact?", "/nowhere?"))) == "unknown_step"
    assert world.credentials("totp", world.fedid(MARIE_NRN)) == []


def test_posts_without_the_csrf_token_are_refused(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    contact = follow(browser, start_activation(browser))
    refused = browser.post(form_action(text(contact)), data={"mail": "marie@example.be"})
    assert refused.status_code == 400 and error_code(refused) == "csrf_failed"
    scan = to_scan_page(browser)
    refused = browser.post(form_action(text(scan)), data={"code": world.code(page_secret(scan))})
    assert refused.status_code == 400 and error_code(refused) == "csrf_failed"
    assert world.credentials("totp", world.fedid(MARIE_NRN)) == []


def test_activation_needs_a_level_500_session(world):
    browser = world.app.test_client()
    home = text(browser.get("/"))
    start = browser.post("/journeys/login", data={"csrf_token": form_fields(home)["csrf_token"], "next": "/",
                                                  "level": "100"})
    choose = follow(browser, start)
    form = browser.get(re.search(r'href="(/login/password/\?tx=[^"]+)"', text(choose))[1].replace("&amp;", "&"))
    assert submit(browser, form, username="marie.dupont", password=DEMO_PASSWORD).headers["Location"] == "/"
    refused = start_activation(browser)
    assert refused.status_code == 403 and error_code(refused) == "activation_level"
    assert world.audit("key.activation_refused")[-1].result == "level_too_low"


def test_wrong_confirmation_codes_then_too_many(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    scan = to_scan_page(browser)
    secret = page_secret(scan)
    assert error_code(submit(browser, scan, code="")) == "missing_code"  # not counted
    for _ in range(5):
        refused = submit(browser, scan, code=wrong_code(world, secret))
        assert refused.status_code == 401 and error_code(refused) == "wrong_code", refused.headers.get("Location")
        assert page_secret(refused) == secret  # the same seed: the app already holds it
    late = submit(browser, scan, code=world.code(secret))
    assert late.status_code == 400 and error_code(late) == "too_many_confirm_attempts"
    assert world.credentials("totp", world.fedid(MARIE_NRN)) == []


def test_an_active_key_is_not_activated_twice(world, marie_with_totp):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    again = follow(browser, start_activation(browser))
    assert again.status_code == 400 and error_code(again) == "key_already_active"


def test_the_qr_page_allows_inline_images_only_there(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    scan = to_scan_page(browser)
    assert re.search(r'<img id="qr" src="data:image/png;base64,', text(scan))
    assert "img-src 'self' data:" in scan.headers["Content-Security-Policy"]
    assert "data:" not in browser.get("/").headers["Content-Security-Policy"]
    assert re.search(r'<a href="/" id="cancel"', text(scan))  # "Annuler": back to the page that asked
    # The QR code holds the provisioning URI naming the issuer and the account (segno is deterministic).
    assert qr_of(scan) == expected_qr(page_secret(scan), "marie.dupont@example.be")


# --- parallel -------------------------------------------------------------------------------------
def test_the_same_code_posted_in_parallel_logs_in_once(make_world):
    # A lockout wide enough for every password login and code to be checked: replay is what is tested.
    world = make_world(max_failures=20)
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN)
    secret = activate(world, browser)
    world.clock.advance(30)
    browsers = [world.app.test_client() for _ in range(4)]
    pages = [password_step(world, b, "marie.dupont") for b in browsers]
    code = world.code(secret)
    answers = in_parallel(len(browsers), lambda i: submit(browsers[i], pages[i], code=code))
    won = [a for a in answers if 'id="autopost"' in text(a)]
    assert len(won) == 1
    assert sorted(error_code(a) for a in answers if a not in won) == ["code_replayed"] * 3
    assert len([e for e in world.audit("login.success") if e.key == "totp"]) == 1


def test_parallel_wrong_codes_never_exceed_the_lockout(world, marie_with_totp):
    secret = marie_with_totp
    world.clock.advance(30)
    browser = world.app.test_client()
    page = password_step(world, browser, "marie.dupont")  # one attempt of the window
    connections = [browser] + [same_browser(world.app, browser) for _ in range(9)]
    bad = wrong_code(world, secret)
    in_parallel(len(connections), lambda i: submit(connections[i], page, code=bad))
    checked = [e for e in world.audit("login.failure") + world.audit("login.lockout") if e.result == "wrong_code"]
    assert 0 < len(checked) <= MAX_FAILURES - 1
    late = submit(browser, page, code=world.code(secret))
    assert "error=account_blocked" in late.headers["Location"]
    assert [e for e in world.audit("login.success") if e.key == "totp"] == []


def test_two_parallel_final_posts_make_one_credential(world):
    nrn = make_nrn(dt.date(1966, 2, 21), 333)
    world.services.people.create(surname="Martin", given_name="Paul", nrn=nrn, mail="paul@example.be",
                                 birth_date=dt.date(1966, 2, 21))
    browser = world.app.test_client()
    login_strong(browser, nrn)
    scan = to_scan_page(browser)
    account = follow(browser, submit(browser, scan, code=world.code(page_secret(scan))))
    connections = [browser, same_browser(world.app, browser)]
    fields = dict(username="paul.martin", password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    answers = in_parallel(2, lambda i: submit(connections[i], account, **fields))
    assert sorted(a.status_code for a in answers)[0] == 303  # one went through
    fedid = world.fedid(nrn)
    assert len(world.credentials("totp", fedid)) == 1 and len(world.credentials("password", fedid)) == 1
    assert len(world.audit("key.activated")) == 1

"""The "security code via token" key (adapters/token), driven through Sésame's
real HTTP endpoints: the three-screen activation after a level-500 login
(from "Mes clés numériques"), the card read back from the PDF that reached a
real SMTP server (pypdf, as a citizen reads it), then logins at a pysaml2
portal with username + password and the code at the position asked.

Negative answers are asserted by error code (``data-code``), HTTP status,
audit rows and database rows, never by wording.
"""
from __future__ import annotations

import datetime as dt
import html
import io
import json
import math
from pathlib import Path
import re
import time
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from adapters.token.card import ALPHABET, CARD_SIZE
from idp import create_app
from idp.app.demo import DEMO_PASSWORD, create_citizens, make_nrn
from idp.app.services import Services
from idp.journeys.engine import Engine
from idp.messaging.outbox import Outbox, OutboxMailer
from idp.people.sealing import Sealer
from idp.persistence.models import AuditEvent, Credential, Person
from tests.conftest import idp_settings
from tests.messaging import mail_settings
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import (
    MON_ESPACE, TestPortal, audit_events, autopost_fields, error_code, follow, form_action, form_fields, send,
)
from tests.standin_keys import KEY_TYPES
from tests.strong_login import STRONG, login_strong, strong_keys

MARIE_NRN = make_nrn(dt.date(1985, 3, 14), 123)
MARIE_MAIL = "marie.dupont@example.be"
KEY_MAX = 5  # [keys.token] key_max_failures default
CARD_CODE = re.compile(r"(\d{1,2})\.\s*([A-Z2-9]{8})\b")


@dataclass
class World:
    app: object
    services: Services
    clock: object
    smtp: object
    tmp_path: object
    portals: dict

    def portal(self, min_level: int = 300) -> TestPortal:
        if min_level not in self.portals:
            spec = replace(MON_ESPACE, slug=f"portal{min_level}", base_url=f"http://localhost:{18400 + min_level}",
                           policy=(("accepted_keys", ["password", "token", STRONG]), ("min_level", min_level),
                                   ("attributes", ["surname", "givenName", "egovNRN"]),
                                   ("nameid_format", "persistent"), ("display_name", "Mon Espace")))
            self.portals[min_level] = TestPortal(self.services, spec, self.tmp_path / "sp")
        return self.portals[min_level]

    def audit(self, event: str) -> list[AuditEvent]:
        return audit_events(self.services, event)

    def fedid(self, nrn: str = MARIE_NRN) -> str:
        with self.services.database.session() as s:
            return s.scalar(select(Person.fedid).where(Person.nrn == nrn))

    def credentials(self, fedid: str) -> list[Credential]:
        with self.services.database.session() as s:
            return list(s.scalars(select(Credential).join(Person, Credential.person_id == Person.id)
                                  .where(Credential.key == "token", Person.fedid == fedid)))

    def record(self, fedid: str | None = None):
        return self.services.credentials.of_person(key="token", person_fedid=fedid or self.fedid())

    def adapter(self):
        return self.services.adapters["token"]


@pytest.fixture
def make_world(tmp_path, clock, smtp_server):
    built = []

    def build(**token) -> World:
        # Enough Argon2 slots that parallel posts are checked, not answered "busy", and password
        # checks enough for a whole card's logins (24) within the rate limits' window.
        settings = idp_settings(tmp_path, keys=strong_keys("password", "token", token=token),
                                mail=mail_settings(smtp_server),
                                limits={"max_concurrent_hashes": 32, "hash_wait_seconds": 10.0,
                                        "per_username_attempts": 100, "per_address_attempts": 100})
        services = Services.build(settings, clock=clock, key_types=KEY_TYPES)
        built.append(services)
        create_citizens(services)
        return World(create_app(services=services), services, clock, smtp_server, tmp_path, {})

    yield build
    for services in built:
        services.database.dispose()


@pytest.fixture
def world(make_world) -> World:
    return make_world()


# --- helpers ---------------------------------------------------------------------------------
def text(response) -> str:
    return response.get_data(as_text=True)



def submit(browser, response, **fields):
    page = text(response)
    return browser.post(form_action(page), data={"csrf_token": form_fields(page)["csrf_token"], **fields})


def pdf_codes(pdf: bytes) -> dict[int, str]:
    """The codes as printed on the PDF card, by number."""
    found = {int(n): c for page in PdfReader(io.BytesIO(pdf)).pages for n, c in CARD_CODE.findall(page.extract_text())}
    assert sorted(found) == list(range(1, CARD_SIZE + 1)), found
    return found


def card_mails(world: World, number: int) -> list:
    """Marie's mails carrying a card (others are notices), once there are ``number`` of them."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [m for m in world.smtp.inbox.to(MARIE_MAIL) if m.attachments]
        if len(found) >= number:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no card mail #{number}")


def mailed_card(world: World, number: int = 1) -> dict[int, str]:
    """The card of the ``number``-th card mail to Marie: its PDF attachment, read back."""
    message = card_mails(world, number)[number - 1]
    [(filename, mime, content)] = message.attachments
    assert mime == "application/pdf" and filename.endswith(".pdf")
    assert not CARD_CODE.search(message.text)  # the codes travel in the PDF only
    return pdf_codes(content)


def page_codes(response) -> dict[int, str]:
    return {int(n): c for n, c in re.findall(r'<code id="code-(\d+)">([A-Z2-9]{8})</code>', text(response))}


def asked_position(response) -> int:
    found = re.search(r"code de sécurité n° (\d+)", text(response))
    assert found, text(response)[:800]
    return int(found[1])


def start_activation(browser):
    keys_page = text(browser.get("/account/keys"))
    return browser.post("/journeys/activate/token", data={"csrf_token": form_fields(keys_page)["csrf_token"],
                                                           "next": "/account/keys"})


def to_card_page(world, browser):
    order = follow(browser, start_activation(browser))
    assert order.status_code == 200 and 'id="mail-to"' in text(order), text(order)[:800]
    card = follow(browser, submit(browser, order))
    assert card.status_code == 200 and 'id="card"' in text(card), text(card)[:800]
    return card


def activate(world, browser, mail_number: int = 1) -> dict[int, str]:
    """The whole wizard; returns the card as read from the mailed PDF."""
    card = to_card_page(world, browser)
    codes = mailed_card(world, mail_number)
    assert page_codes(card) == codes  # the page shows the same card once
    confirm = follow(browser, submit(browser, card))
    done = submit(browser, confirm, code=codes[asked_position(confirm)])
    assert done.status_code == 303 and done.headers["Location"] == "/account/keys", text(done)[:800]
    return codes


def strong_browser(world):
    browser = world.app.test_client()
    login_strong(browser, MARIE_NRN, next_url="/account/keys")
    return browser


@pytest.fixture
def card(world) -> dict[int, str]:
    return activate(world, strong_browser(world))


def choose_page(world, browser, min_level: int = 300):
    page = follow(browser, send(browser, world.portal(min_level).request()))
    assert page.status_code == 200, text(page)[:400]
    return page


def code_page(world, browser, password: str = DEMO_PASSWORD):
    """Portal request, the token key, username + password: the code page."""
    link = re.search(r'href="(/login/token/\?tx=[^"]+)"', text(choose_page(world, browser)))
    assert link, "token not offered"
    form = browser.get(link[1].replace("&amp;", "&"))
    answer = submit(browser, form, username="marie.dupont", password=password)
    page = follow(browser, answer)
    assert 'id="code"' in text(page), (page.status_code, answer.headers.get("Location"), error_code(page))
    return page


def wrong(codes: dict[int, str], position: int) -> str:
    return next(c for c in ("AAAAAAAA", "BBBBBBBB", "CCCCCCCC") if c != codes[position])


def token_ports(world):
    """The key's ports, as the registration office hands them to ``issue_card``."""
    return Engine(world.services, urls=None).ports_for(world.adapter())


def logged_in(response) -> bool:
    return 'id="autopost"' in text(response)


# --- activation, then login ----------------------------------------------------------------------
def test_activation_then_login_at_the_portal_with_a_code_of_the_pdf(world):
    browser = strong_browser(world)
    assert world.credentials(world.fedid()) == []
    card_page = to_card_page(world, browser)
    assert world.credentials(world.fedid()) == []  # nothing written before the last step
    codes = mailed_card(world)
    assert page_codes(card_page) == codes and all(set(c) <= set(ALPHABET) for c in codes.values())
    assert 'id="print-hint"' in text(card_page) and "<script>" not in text(card_page)
    # Shown ONCE: a reload shows the page without the codes.
    again = browser.get(form_action(text(card_page)))
    assert 'id="card-shown"' in text(again) and page_codes(again) == {}
    confirm = follow(browser, submit(browser, again))
    done = submit(browser, confirm, code=codes[asked_position(confirm)].lower())  # typed in small letters
    assert done.status_code == 303 and done.headers["Location"] == "/account/keys"
    [credential] = world.credentials(world.fedid())
    assert credential.status == "active" and credential.counter == 0
    assert [e.key for e in world.audit("key.activated")] == ["token"]

    citizen = world.app.test_client()  # a fresh browser: no SSO session
    page = code_page(world, citizen)
    position = asked_position(page)
    answer = submit(citizen, page, code=codes[position])
    _, fields = autopost_fields(answer)
    response = world.portal().parse(fields["SAMLResponse"])
    assert response.ava["egovNRN"] == [MARIE_NRN]
    assert response.authn_info()[0][0] == "urn:be:fedict:iam:fas:citizen:Level300"
    assert world.audit("login.success")[-1].key == "token"
    assert world.record().counter == 1


def test_token_is_offered_only_to_portals_accepting_level_300(world):
    assert 'id="key-token"' in text(choose_page(world, world.app.test_client(), 300))
    page = text(choose_page(world, world.app.test_client(), 400))
    assert 'id="key-token"' not in page and 'id="key-standin_strong"' in page


def test_the_codes_are_not_readable_in_the_database_nor_the_state_store(world):
    browser = strong_browser(world)
    card_page = to_card_page(world, browser)
    codes = page_codes(card_page)
    database = world.tmp_path / "idp" / "sesame.db"

    def stored_bytes() -> bytes:
        # The whole SQLite database with its WAL: credentials, audit rows and the state store ([store] url = "sql").
        return b"".join(p.read_bytes() for p in database.parent.glob("sesame.db*"))

    during = stored_bytes()
    assert MARIE_MAIL.encode() in during  # the right file: the person's row is in it
    assert all(code.encode() not in during and code.lower().encode() not in during for code in codes.values())
    confirm = follow(browser, submit(browser, card_page))
    submit(browser, confirm, code=codes[asked_position(confirm)])
    [credential] = world.credentials(world.fedid())
    stored = json.dumps(credential.data)
    assert all(code not in stored for code in codes.values())
    assert set(credential.data["codes"]) == {str(n) for n in range(1, CARD_SIZE + 1)}
    assert all(v.startswith("fp1.") for v in credential.data["codes"].values())
    after = stored_bytes()
    assert all(code.encode() not in after for code in codes.values())


# --- bad input at login ---------------------------------------------------------------------------
def test_wrong_codes_block_the_key_and_the_page_says_until_when(make_world):
    # The password lockout wide enough that the key's own block is what stops the codes; a block
    # short enough for the portal's requests (real time for pysaml2) to stay fresh when it ends.
    world = make_world(max_failures=50, key_block_seconds=240)
    codes = activate(world, strong_browser(world))
    browser = world.app.test_client()
    page = code_page(world, browser)
    position = asked_position(page)
    assert error_code(submit(browser, page, code="")) == "missing_code"
    for _ in range(KEY_MAX - 1):
        refused = submit(browser, page, code=wrong(codes, position))
        assert refused.status_code == 401 and error_code(refused) == "token_wrong_code"
        assert asked_position(refused) == position  # the same position, not another draw
    blocked = submit(browser, page, code=wrong(codes, position))
    assert blocked.status_code == 303 and "error=token_blocked" in blocked.headers["Location"]
    # Until when, in Belgium's time (the block's end, rounded up to the minute).
    end = dt.datetime.fromtimestamp(math.ceil((world.clock.now() + 240) / 60) * 60, ZoneInfo("Europe/Brussels"))
    shown = follow(browser, blocked)
    assert error_code(shown) == "token_blocked"
    assert html.unescape(text(shown)).count(f"jusqu'à {end:%H:%M}") == 1, text(shown)[:1200]
    assert [e.result for e in world.audit("token.blocked")] == ["token_blocked"]
    # Blocked: a new login is told after the password, and the right code no longer helps.
    other = world.app.test_client()
    link = re.search(r'href="(/login/token/\?tx=[^"]+)"', text(choose_page(world, other)))
    answer = submit(other, other.get(link[1].replace("&amp;", "&")), username="marie.dupont", password=DEMO_PASSWORD)
    assert answer.status_code == 303 and "error=token_blocked" in answer.headers["Location"]
    assert [e for e in world.audit("login.success") if e.key == "token"] == []
    # Once the block is over, the right code logs in.
    world.clock.advance(241)
    fresh = world.app.test_client()
    page = code_page(world, fresh)
    assert logged_in(submit(fresh, page, code=codes[asked_position(page)]))


def test_wrong_codes_count_towards_the_password_lockout(world, card):
    browser = world.app.test_client()
    page = code_page(world, browser)
    position = asked_position(page)
    # The right password is one attempt of the password window (adapters/security_code.py).
    for _ in range(3):
        assert error_code(submit(browser, page, code=wrong(card, position))) == "token_wrong_code"
    blocked = submit(browser, page, code=wrong(card, position))
    assert blocked.status_code == 303 and "error=account_blocked" in blocked.headers["Location"]


def test_a_used_position_is_never_asked_again_and_its_code_is_refused(make_world):
    world = make_world(max_failures=50)
    codes = activate(world, strong_browser(world))
    first, late = world.app.test_client(), world.app.test_client()
    page, late_page = code_page(world, first), code_page(world, late)
    position = asked_position(page)
    assert asked_position(late_page) == position  # the card's next position, whoever asks
    assert logged_in(submit(first, page, code=codes[position]))
    replayed = submit(late, late_page, code=codes[position])
    assert replayed.status_code == 303 and "error=token_code_replayed" in replayed.headers["Location"]
    assert error_code(follow(late, replayed)) == "token_code_replayed"
    assert world.audit("login.failure")[-1].result == "token_code_replayed"

    asked = [position]
    for n in range(CARD_SIZE - 1):
        browser = world.app.test_client()
        page = code_page(world, browser)
        now = asked_position(page)
        assert now not in asked
        if n == 0:  # a used code typed for the new position: a wrong code
            refused = submit(browser, page, code=codes[position])
            assert error_code(refused) == "token_wrong_code"
        assert logged_in(submit(browser, page, code=codes[now]))
        asked.append(now)
    assert sorted(asked) == list(range(1, CARD_SIZE + 1))
    # Every code used: the card is over, said after the password.
    browser = world.app.test_client()
    link = re.search(r'href="(/login/token/\?tx=[^"]+)"', text(choose_page(world, browser)))
    answer = submit(browser, browser.get(link[1].replace("&amp;", "&")), username="marie.dupont",
                    password=DEMO_PASSWORD)
    assert "error=token_used_up" in answer.headers["Location"]


def test_status_note_counts_the_codes_left_and_warns_when_few(make_world):
    world = make_world(max_failures=50)
    codes = activate(world, strong_browser(world))
    adapter = world.adapter()
    with world.app.test_request_context():
        assert adapter.status_note(world.record()).startswith("24 codes restants")
        assert adapter.status_note(None) is None
    for _ in range(CARD_SIZE - 5):
        browser = world.app.test_client()
        page = code_page(world, browser)
        assert logged_in(submit(browser, page, code=codes[asked_position(page)]))
    with world.app.test_request_context():
        assert adapter.status_note(world.record()).startswith("Attention : il ne reste que 5 code(s)")


def test_a_fingerprint_moved_to_another_person_does_not_verify(world, card):
    fedid = world.fedid()
    jan = world.fedid(make_nrn(dt.date(1990, 7, 2), 45))
    record = world.record()
    serial = record.data["serial"]
    sealer = world.services.sealer
    # Marie's card, fingerprinted for Jan (as if copied onto his row): nothing matches for Marie.
    moved = {str(n): sealer.fingerprint(code, owner=f"{jan}:token:{serial}:{n}") for n, code in card.items()}
    with world.services.database.session() as s:
        row = s.get(Credential, record.id)
        row.data = {**record.data, "codes": moved}
    browser = world.app.test_client()
    page = code_page(world, browser)
    refused = submit(browser, page, code=card[asked_position(page)])
    assert error_code(refused) == "token_wrong_code" and fedid != jan


# --- the registration office's card ---------------------------------------------------------------
def test_issue_card_replaces_the_old_card(make_world):
    world = make_world(max_failures=50)
    old = activate(world, strong_browser(world))
    adapter = world.adapter()
    fedid = world.fedid()
    old_serial = world.record().data["serial"]
    ports = token_ports(world)
    with world.app.test_request_context():
        codes = adapter.issue_card(ports, fedid, lang="nl")
        record = world.record()
        page = world.app.jinja_env.get_template("token/card.html").render(codes=codes, serial=record.data["serial"])
    assert record.active and record.data["serial"] != old_serial and len(world.credentials(fedid)) == 1
    assert all(f'<code id="code-{n}">{c}</code>' in page for n, c in enumerate(codes, start=1))
    assert mailed_card(world, 2) == dict(enumerate(codes, start=1))
    first, second = card_mails(world, 2)
    assert first.text.startswith("Bonjour") and second.text.startswith("Goeddag")  # in the language asked for
    assert world.audit("token.card_issued")[-1].person_fedid == fedid
    # The old card no longer works; the new one does.
    browser = world.app.test_client()
    page = code_page(world, browser)
    position = asked_position(page)
    if old[position] != codes[position - 1]:
        assert error_code(submit(browser, page, code=old[position])) == "token_wrong_code"
    assert logged_in(submit(browser, page, code=codes[position - 1]))
    with pytest.raises(LookupError):
        with world.app.test_request_context():
            adapter.issue_card(ports, "no-such-person", lang="fr")


def test_a_card_reissued_during_a_login_ends_that_login(world, card):
    browser = world.app.test_client()
    page = code_page(world, browser)
    with world.app.test_request_context():
        world.adapter().issue_card(token_ports(world), world.fedid(), lang="fr")
    answer = submit(browser, page, code=card[asked_position(page)])
    assert answer.status_code == 303 and "error=token_card_replaced" in answer.headers["Location"]


def test_a_citizen_orders_a_new_card_and_the_old_one_works_until_it_is_confirmed(make_world):
    world = make_world(max_failures=50)
    old = activate(world, strong_browser(world))
    browser = strong_browser(world)
    order = follow(browser, start_activation(browser))
    assert 'id="replaces"' in text(order)
    card_page = follow(browser, submit(browser, order))
    new = mailed_card(world, 2)
    citizen = world.app.test_client()
    page = code_page(world, citizen)
    assert logged_in(submit(citizen, page, code=old[asked_position(page)]))  # not confirmed yet: old card
    confirm = follow(browser, submit(browser, card_page))
    assert submit(browser, confirm, code=new[asked_position(confirm)]).status_code == 303
    assert len(world.credentials(world.fedid())) == 1 and world.record().counter == 0
    citizen = world.app.test_client()
    page = code_page(world, citizen)
    position = asked_position(page)
    if old[position] != new[position]:
        assert error_code(submit(citizen, page, code=old[position])) == "token_wrong_code"
    assert logged_in(submit(citizen, page, code=new[position]))


# --- bad input in the wizard ------------------------------------------------------------------------
def test_a_forged_later_step_is_refused(world):
    browser = strong_browser(world)
    order = follow(browser, start_activation(browser))
    action = form_action(text(order))
    token = form_fields(text(order))["csrf_token"]
    for step in ("card", "confirm"):
        forged = browser.post(action.replace("/order?", f"/{step}?"), data={"csrf_token": token, "code": "AAAAAAAA"})
        assert forged.status_code == 400 and error_code(forged) == "step_order", step
    assert world.credentials(world.fedid()) == []


def test_wrong_confirmation_codes_then_too_many(world):
    browser = strong_browser(world)
    card_page = to_card_page(world, browser)
    codes = page_codes(card_page)
    confirm = follow(browser, submit(browser, card_page))
    position = asked_position(confirm)
    for _ in range(5):
        refused = submit(browser, confirm, code=wrong(codes, position))
        assert refused.status_code == 401 and error_code(refused) == "token_wrong_code"
    late = submit(browser, confirm, code=codes[position])
    assert late.status_code == 400 and error_code(late) == "token_too_many_confirm"
    assert world.credentials(world.fedid()) == []


def test_activation_needs_a_level_500_session(world):
    browser = world.app.test_client()
    refused = start_activation(browser)
    assert refused.status_code in (401, 403) and world.credentials(world.fedid()) == []


def test_a_person_without_password_chooses_one_at_the_last_step(world):
    nrn = make_nrn(dt.date(1978, 6, 9), 517)
    world.services.people.create(surname="Lambert", given_name="Sophie", nrn=nrn, mail="sophie@example.be",
                                 birth_date=dt.date(1978, 6, 9))
    browser = world.app.test_client()
    login_strong(browser, nrn, next_url="/account/keys")
    card_page = to_card_page(world, browser)
    codes = page_codes(card_page)
    confirm = follow(browser, submit(browser, card_page))
    assert 'id="username"' in text(confirm)
    position = asked_position(confirm)
    refused = submit(browser, confirm, code=codes[position], username="marie.dupont", password="Gentiane-Orageuse-47",
                     confirm="Gentiane-Orageuse-47")
    assert refused.status_code == 400 and error_code(refused) == "username_taken"
    assert 'id="code"' not in text(refused)  # the code was right: not asked again
    done = submit(browser, refused, username="sophie.lambert", password="Gentiane-Orageuse-47",
                  confirm="Gentiane-Orageuse-47")
    assert done.status_code == 303
    fedid = world.fedid(nrn)
    assert len(world.credentials(fedid)) == 1
    assert world.services.credentials.find(key="password", username="sophie.lambert").person_fedid == fedid


# --- parallel ----------------------------------------------------------------------------------------
def test_the_right_code_posted_in_parallel_logs_in_once(make_world):
    world = make_world(max_failures=50)
    codes = activate(world, strong_browser(world))
    browsers = [world.app.test_client() for _ in range(4)]
    pages = [code_page(world, b) for b in browsers]
    position = asked_position(pages[0])
    answers = in_parallel(len(browsers), lambda i: submit(browsers[i], pages[i], code=codes[position]))
    won = [a for a in answers if logged_in(a)]
    assert len(won) == 1
    assert all("error=token_code_replayed" in a.headers["Location"] for a in answers if a not in won)
    assert len([e for e in world.audit("login.success") if e.key == "token"]) == 1
    assert world.record().counter == 1


def test_parallel_wrong_codes_never_exceed_the_key_limit(make_world):
    world = make_world(max_failures=50)
    codes = activate(world, strong_browser(world))
    browser = world.app.test_client()
    page = code_page(world, browser)
    position = asked_position(page)
    connections = [browser] + [same_browser(world.app, browser) for _ in range(11)]
    in_parallel(len(connections), lambda i: submit(connections[i], page, code=wrong(codes, position)))
    checked = [e for e in world.audit("login.failure") + world.audit("login.lockout")
               if e.result == "token_wrong_code"]
    assert 0 < len(checked) <= KEY_MAX - 1
    assert len(world.audit("token.blocked")) <= 1
    late = submit(same_browser(world.app, browser), page, code=codes[position])
    assert "error=token_blocked" in late.headers["Location"]
    assert [e for e in world.audit("login.success") if e.key == "token"] == []


# --- the parts ------------------------------------------------------------------------------------------
def test_sealer_fingerprint_is_keyed_and_bound_to_its_owner():
    sealer = Sealer(b"a" * 32)
    one = sealer.fingerprint("ABCDEFGH", owner="p1:token:1234-5678:3")
    assert one == sealer.fingerprint("ABCDEFGH", owner="p1:token:1234-5678:3") and one.startswith("fp1.")
    assert one != sealer.fingerprint("ABCDEFGH", owner="p2:token:1234-5678:3")
    assert one != sealer.fingerprint("ABCDEFGJ", owner="p1:token:1234-5678:3")
    assert one != Sealer(b"b" * 32).fingerprint("ABCDEFGH", owner="p1:token:1234-5678:3")
    # Owner and value cannot be shifted into one another.
    assert sealer.fingerprint("BC", owner="A") != sealer.fingerprint("C", owner="AB")
    assert "ABCDEFGH" not in one


def test_the_outbox_names_attachments(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    OutboxMailer(outbox).send(to="a@example.be", subject="s", text="t",
                              attachments=[("carte.pdf", "application/pdf", b"%PDF-")])
    OutboxMailer(outbox).send(to="a@example.be", subject="s", text="plain")
    texts = [m.text for m in outbox.messages()]
    assert "[carte.pdf]" in texts[1] and texts[0] == "plain"


def test_my_keys_shows_the_codes_left_and_offers_a_new_card(world):
    browser = strong_browser(world)
    activate(world, browser)
    page = browser.get("/account/keys")
    html = text(page)
    assert page.status_code == 200
    note = re.search(r'id="note-token">([^<]+)<', html)
    assert note and "24" in note[1]
    assert 'id="renew-token"' in html and 'id="activate-token"' not in html


def test_the_card_pdf_is_made_in_every_language_and_for_any_name():
    """The core fonts' Latin-1 lacks the translations' typographic quotes and
    letters such as Ł: they are made plain instead of failing the card."""
    from flask import Flask
    from flask_babel import Babel, force_locale

    from adapters.token.card import card_pdf, new_codes, new_serial, printable

    assert printable("„Mijn” — Łukasz…") == '"Mijn" - Lukasz...'
    app = Flask(__name__)
    Babel(app, default_translation_directories=str(Path(__file__).parents[1] / "idp" / "translations"))
    codes = new_codes()
    with app.app_context():
        for lang in ("fr", "nl", "de", "en"):
            with force_locale(lang):
                pdf = card_pdf(codes, new_serial(), holder="Łukasz Wójcik-Ørsted")
            assert pdf.startswith(b"%PDF") and pdf_codes(pdf) == dict(enumerate(codes, start=1))

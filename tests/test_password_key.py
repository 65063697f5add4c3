"""The username + password key (adapters/password.py), reached the way a citizen does:
a portal's AuthnRequest, the key choice, the password form posted with its CSRF token.

Negative answers are asserted by their error code (``data-code`` on the page) and
HTTP status, never by wording.  Lockout runs on the SQL store and on a real Redis.
"""
from __future__ import annotations

import html
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from adapters.password import PasswordAdapter
from adapters.rate_limit import Limits
from idp import create_app
from idp.clock import FrozenClock
from idp.app.config import load_settings
from idp.persistence.models import AuditEvent, Credential, Person
from idp.people.credentials import Credentials
from idp.people.hashing import SecretHasher
from idp.app.services import Services
from tests.conftest import idp_settings
from tests.parallel import in_parallel, same_browser
from tests.saml_sp import MON_ESPACE, TestPortal, follow, form_action, form_fields, send

PASSWORD = "Sesame-Secret-7x9!"
WRONG = "Wrong-Guess-Q3z#"
_HASH = SecretHasher().hash(PASSWORD)  # one Argon2 hash for every citizen of this module (it is the slow part)

# A request may be up to an hour old: the IdP clock is moved past the 15-minute block
# while pysaml2 stamps requests with the wall clock.
TEST_SAML = {"request_max_age_seconds": 3600, "clock_skew_seconds": 300}


# --- a world: one Sésame and one portal ---------------------------------------------
@dataclass
class World:
    app: object
    services: Services
    portal: TestPortal
    clock: FrozenClock


def _settings(data_dir, *, store: str, prefix: str = "sesame:", database: str = ""):
    base = idp_settings(data_dir, store=store, database=database, saml=TEST_SAML)
    return load_settings(None, overrides={**base.data, "store": {"url": store, "prefix": prefix}}, environ={})


# The tests of this module meet the lockout, not the rate limits (tests/test_rate_limits.py): every
# request comes from 127.0.0.1 to one Sésame per module, and 16 posts at once must all get a slot.
WIDE_LIMITS = Limits(per_address_attempts=100_000, per_username_attempts=100_000, max_concurrent_hashes=32,
                     hash_wait_seconds=10)


def use_limits(services: Services, limits: Limits, credentials_type: type = Credentials) -> Credentials:
    """Give ``services`` these ``[limits]``: the credentials port is rebuilt with them (Services.build
    builds it with the built-in defaults).  Returns the new port."""
    port = credentials_type(services.database, services.credentials.hasher, limits=limits)
    services.credentials = services.ports["credentials"] = port
    return port


def _world(tmp_path_factory, store: str, *, database: str = "") -> World:
    directory = tmp_path_factory.mktemp("pwkey")
    clock = FrozenClock()
    services = Services.build(_settings(directory, store=store, prefix=f"t{secrets.token_hex(4)}:",
                                        database=database), clock=clock)
    use_limits(services, WIDE_LIMITS)
    return World(create_app(services=services), services, TestPortal(services, MON_ESPACE, directory / "sp"), clock)


@pytest.fixture(scope="module")
def sql_world(tmp_path_factory) -> World:
    return _world(tmp_path_factory, "sql")


@pytest.fixture(scope="module")
def redis_world(tmp_path_factory, redis_url) -> World:
    return _world(tmp_path_factory, redis_url)


@pytest.fixture(params=["sql", "redis"])
def any_world(request) -> World:
    return request.getfixturevalue(f"{request.param}_world")


@pytest.fixture
def world(sql_world) -> World:
    return sql_world


def add_citizen(services: Services) -> str:
    """A fresh person with an active password key (password ``PASSWORD``); returns the username."""
    username = f"citizen-{uuid.uuid4().hex[:12]}"
    with services.database.session() as s:
        person = Person(surname="Test", given_name="Citizen")
        person.credentials.append(Credential(key="password", username=username, secret_hash=_HASH, status="active"))
        s.add(person)
    return username


# --- driving the browser ----------------------------------------------------------
@dataclass
class PasswordForm:
    action: str
    csrf_token: str
    tx: str


def open_password_form(browser, portal: TestPortal, **request_kwargs) -> PasswordForm:
    """AuthnRequest -> login page -> the password key's form."""
    choose = follow(browser, send(browser, portal.request(**request_kwargs)))
    assert choose.status_code == 200, choose.get_data(as_text=True)[:500]
    link = re.search(r'href="(/login/password/\?tx=[^"]+)"', choose.get_data(as_text=True))
    assert link, "password key not offered"
    page = browser.get(html.unescape(link[1]))
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    action = form_action(body)
    return PasswordForm(action, form_fields(body)["csrf_token"], parse_qs(urlsplit(action).query)["tx"][0])


def submit(browser, form: PasswordForm, username: str, password: str):
    return browser.post(form.action, data={"csrf_token": form.csrf_token, "username": username,
                                           "password": password})


def attempt(browser, world: World, username: str, password: str):
    """One try on a fresh login transaction."""
    return submit(browser, open_password_form(browser, world.portal), username, password)


def code(response) -> str | None:
    found = re.search(r'data-code="([^"]*)"', response.get_data(as_text=True))
    return found[1] if found else None


def error_text(response) -> str:
    found = re.search(r'id="error"[^>]*>([^<]*)<', response.get_data(as_text=True))
    return html.unescape(found[1]) if found else ""


def logged_in(response, portal: TestPortal) -> bool:
    page = response.get_data(as_text=True)
    return (response.status_code == 200 and 'id="autopost"' in page
            and form_action(page) == f"{portal.spec.base_url}/acs" and "SAMLResponse" in form_fields(page))


def sid(browser) -> str | None:
    with browser.session_transaction() as sess:
        return sess.get("sid")


def last_audit_id(services: Services) -> int:
    with services.database.session() as s:
        return s.scalar(select(func.max(AuditEvent.id))) or 0


def audit_since(services: Services, after: int) -> list[AuditEvent]:
    with services.database.session() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id)))
        s.expunge_all()
        return rows


# --- credentials ------------------------------------------------------------------
def test_right_password_logs_in(world):
    username = add_citizen(world.services)
    browser = world.app.test_client()
    done = attempt(browser, world, username, PASSWORD)
    assert logged_in(done, world.portal)
    session = world.services.sessions.get(sid(browser))
    assert session is not None and session.key == "password" and session.level == 100


def test_wrong_password_and_unknown_username_answer_alike(world):
    username = add_citizen(world.services)
    browser = world.app.test_client()
    wrong_password = attempt(browser, world, username, WRONG)
    unknown_user = attempt(browser, world, f"nobody-{uuid.uuid4().hex[:8]}", WRONG)
    assert code(wrong_password) == code(unknown_user) == "bad_credentials"
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert error_text(wrong_password) == error_text(unknown_user) != ""
    assert sid(browser) is None


@pytest.mark.parametrize("username,password", [("", ""), ("someone", ""), ("", PASSWORD), ("   ", PASSWORD)])
def test_empty_fields_answer_missing_credentials(world, username, password):
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    answer = submit(browser, form, username, password)
    assert code(answer) == "missing_credentials" and answer.status_code == 400
    assert sid(browser) is None


def test_missing_credentials_do_not_count_towards_the_lockout(world):
    username = add_citizen(world.services)
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    for _ in range(6):
        assert code(submit(browser, form, username, "")) == "missing_credentials"
    assert logged_in(submit(browser, form, username, PASSWORD), world.portal)


# --- lockout ----------------------------------------------------------------------
def test_five_failures_block_then_time_unblocks(any_world):
    world = any_world
    username = add_citizen(world.services)
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    for _ in range(4):
        answer = submit(browser, form, username, WRONG)
        assert code(answer) == "bad_credentials" and answer.status_code == 401
    fifth = submit(browser, form, username, WRONG)
    assert code(fifth) == "account_blocked" and fifth.status_code == 403
    assert re.search(r"\b15\b", error_text(fifth)), error_text(fifth)

    right_but_blocked = submit(browser, form, username, PASSWORD)
    assert code(right_but_blocked) == "account_blocked" and right_but_blocked.status_code == 403
    assert sid(browser) is None

    world.clock.advance(301)  # 599 s left: "10 minutes"
    later = submit(browser, form, username, PASSWORD)
    assert code(later) == "account_blocked"
    assert re.search(r"\b10\b", error_text(later)), error_text(later)

    world.clock.advance(600)  # 901 s after the block
    done = attempt(browser, world, username, PASSWORD)  # the first transaction has expired meanwhile
    assert logged_in(done, world.portal), code(done)
    assert world.services.sessions.get(sid(browser)).key == "password"


def test_a_blocked_username_does_not_block_another(any_world):
    world = any_world
    victim, other = add_citizen(world.services), add_citizen(world.services)
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    answers = [code(submit(browser, form, victim, WRONG)) for _ in range(5)]
    assert answers[-1] == "account_blocked"
    assert logged_in(submit(browser, form, other, PASSWORD), world.portal)


def test_lockout_ignores_case_and_surrounding_spaces_of_the_username(world):
    username = add_citizen(world.services)
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    for variant in (username.upper(), f" {username} ", username.title(), username.upper()):
        assert code(submit(browser, form, variant, WRONG)) == "bad_credentials"
    assert code(submit(browser, form, username, WRONG)) == "account_blocked"


def test_success_resets_the_failure_count(world):
    username = add_citizen(world.services)
    first = world.app.test_client()
    form = open_password_form(first, world.portal)
    for _ in range(4):
        assert code(submit(first, form, username, WRONG)) == "bad_credentials"
    assert logged_in(submit(first, form, username, PASSWORD), world.portal)

    second = world.app.test_client()  # the first browser now has an SSO session
    form = open_password_form(second, world.portal)
    for _ in range(4):
        assert code(submit(second, form, username, WRONG)) == "bad_credentials"  # 5th-9th failures overall
    assert logged_in(submit(second, form, username, PASSWORD), world.portal)


@pytest.fixture(params=["sql", "redis"])
def two_processes(request, tmp_path, clock):
    """Two Sésame instances on one data folder (database, keys, secret) and one state store."""
    store = "sql" if request.param == "sql" else request.getfixturevalue("redis_url")
    settings = _settings(tmp_path, store=store, prefix=f"t{secrets.token_hex(4)}:")
    first = Services.build(settings, clock=clock)
    second = Services.build(settings, clock=clock, migrate=False)
    use_limits(first, WIDE_LIMITS)
    use_limits(second, WIDE_LIMITS)
    portal = TestPortal(first, MON_ESPACE, tmp_path / "sp")
    return (World(create_app(services=first), first, portal, clock),
            World(create_app(services=second), second, portal, clock))


def test_failures_are_counted_across_processes(two_processes):
    one, two = two_processes
    username = add_citizen(one.services)
    browser_one, browser_two = one.app.test_client(), two.app.test_client()
    form_one = open_password_form(browser_one, one.portal)
    form_two = open_password_form(browser_two, two.portal)
    for _ in range(2):
        assert code(submit(browser_one, form_one, username, WRONG)) == "bad_credentials"
        assert code(submit(browser_two, form_two, username, WRONG)) == "bad_credentials"
    fifth = submit(browser_one, form_one, username, WRONG)
    assert code(fifth) == "account_blocked"
    blocked_elsewhere = submit(browser_two, form_two, username, PASSWORD)
    assert code(blocked_elsewhere) == "account_blocked" and blocked_elsewhere.status_code == 403


# --- CSRF, transactions, keys -----------------------------------------------------
@pytest.mark.parametrize("token", [None, "", "forged"])
def test_post_without_a_valid_csrf_token_is_refused(world, token):
    username = add_citizen(world.services)
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    before = last_audit_id(world.services)
    data = {"username": username, "password": PASSWORD}
    if token is not None:
        data["csrf_token"] = token
    answer = browser.post(form.action, data=data)
    assert code(answer) == "csrf_failed" and answer.status_code == 400
    assert sid(browser) is None
    assert not [e for e in audit_since(world.services, before) if e.event == "login.success"]
    assert logged_in(submit(browser, form, username, PASSWORD), world.portal)  # the transaction is still good


def test_csrf_token_of_another_browser_is_refused(world):
    username = add_citizen(world.services)
    mine, theirs = world.app.test_client(), world.app.test_client()
    form = open_password_form(mine, world.portal)
    their_form = open_password_form(theirs, world.portal)
    answer = mine.post(form.action, data={"csrf_token": their_form.csrf_token, "username": username,
                                          "password": PASSWORD})
    assert code(answer) == "csrf_failed"
    assert sid(mine) is None


def test_unknown_transaction_is_expired(world):
    browser = world.app.test_client()
    open_password_form(browser, world.portal)  # the browser has a browser id and a real transaction
    for query in ("?tx=does-not-exist", "", "?tx=" + "x" * 65):
        answer = browser.get(f"/login/password/{query}")
        assert code(answer) == "login_expired" and answer.status_code == 400


def test_transaction_of_another_browser_is_expired(world):
    username = add_citizen(world.services)
    owner = world.app.test_client()
    form = open_password_form(owner, world.portal)

    stranger = world.app.test_client()  # no cookie at all
    assert code(stranger.get(f"/login/password/?tx={form.tx}")) == "login_expired"
    assert code(stranger.get(f"/login/?tx={form.tx}")) == "login_expired"

    other = world.app.test_client()  # a browser with its own id, its own transaction and CSRF token
    other_form = open_password_form(other, world.portal)
    assert code(other.get(f"/login/password/?tx={form.tx}")) == "login_expired"
    answer = other.post(form.action, data={"csrf_token": other_form.csrf_token, "username": username,
                                           "password": PASSWORD})
    assert code(answer) == "login_expired"
    assert sid(other) is None

    assert logged_in(submit(owner, form, username, PASSWORD), world.portal)  # still the owner's


def test_a_finished_transaction_cannot_be_replayed(world):
    username = add_citizen(world.services)
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    assert logged_in(submit(browser, form, username, PASSWORD), world.portal)
    again = submit(browser, form, username, PASSWORD)
    assert code(again) == "login_expired"


def test_unknown_key_id(world):
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    answer = browser.get(f"/login/unknownkey/?tx={form.tx}")
    assert code(answer) == "unknown_key" and answer.status_code == 404
    assert code(browser.post(f"/login/unknownkey/submit?tx={form.tx}",
                             data={"csrf_token": form.csrf_token})) == "unknown_key"


class _OtherKey(PasswordAdapter):
    id = "otherkey"


def test_key_not_accepted_by_the_portal(world, monkeypatch):
    """An enabled key outside the portal's accepted_keys (Mon Espace: ["password"]) is refused."""
    monkeypatch.setitem(world.services.adapters, "otherkey", _OtherKey())
    username = add_citizen(world.services)
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    assert "/login/otherkey/" not in browser.get(f"/login/?tx={form.tx}").get_data(as_text=True)
    answer = browser.get(f"/login/otherkey/?tx={form.tx}")
    assert code(answer) == "key_not_allowed" and answer.status_code == 403
    posted = browser.post(f"/login/otherkey/submit?tx={form.tx}",
                          data={"csrf_token": form.csrf_token, "username": username, "password": PASSWORD})
    assert code(posted) == "key_not_allowed"
    assert sid(browser) is None


# --- audit and session ------------------------------------------------------------
def test_audit_rows_never_hold_the_password(world, caplog):
    services = world.services
    blocked, other = add_citizen(services), add_citizen(services)
    fedid = _fedid(services, other)
    before = last_audit_id(services)
    sesame_log = logging.getLogger("sesame")
    sesame_log.addHandler(caplog.handler)  # "sesame" may not propagate once logging is configured
    try:
        with caplog.at_level(logging.DEBUG, logger="sesame"):
            browser = world.app.test_client()
            form = open_password_form(browser, world.portal)
            for _ in range(5):
                submit(browser, form, blocked, WRONG)
            submit(browser, form, blocked, PASSWORD)  # refused: blocked
            assert logged_in(submit(browser, form, other, PASSWORD), world.portal)
    finally:
        sesame_log.removeHandler(caplog.handler)

    rows = audit_since(services, before)
    logins = [(e.event, e.result) for e in rows if e.event.startswith("login.")]
    assert logins == [("login.failure", "bad_credentials")] * 4 + [
        ("login.lockout", "account_blocked"), ("login.failure", "account_blocked"), ("login.success", "ok")]
    success = next(e for e in rows if e.event == "login.success")
    assert (success.person_fedid, success.key, success.level, success.portal) == (
        fedid, "password", 100, world.portal.entity_id)
    assert all(e.key == "password" for e in rows if e.event.startswith("login."))

    columns = [c.name for c in AuditEvent.__table__.columns]
    for row in rows:
        for column in columns:
            value = getattr(row, column)
            text = json.dumps(value, default=str) if column == "detail" else str(value)
            assert PASSWORD not in text and WRONG not in text, (row.event, column)
    assert caplog.records, "no log line captured"
    for record in caplog.records:
        text = record.getMessage() + json.dumps(record.__dict__, default=str)
        assert PASSWORD not in text and WRONG not in text, record.getMessage()


def _fedid(services: Services, username: str) -> str:
    with services.database.session() as s:
        return s.scalar(select(Person.fedid).join(Credential).where(Credential.username == username))


def test_session_id_changes_at_every_login(world):
    username = add_citizen(world.services)
    browser = world.app.test_client()
    with browser.session_transaction() as sess:
        sess["sid"] = "planted-by-an-attacker"
    assert logged_in(attempt(browser, world, username, PASSWORD), world.portal)
    first = sid(browser)
    assert first and first != "planted-by-an-attacker"

    # a second login in the same browser (ForceAuthn): a new id, the old one is worthless
    form = open_password_form(browser, world.portal, force_authn="true")
    assert logged_in(submit(browser, form, username, PASSWORD), world.portal)
    second = sid(browser)
    assert second and second != first
    assert world.services.sessions.get(first) is None
    current = world.services.sessions.get(second)
    assert current.fedid == _fedid(world.services, username)
    assert world.portal.entity_id in current.portals  # kept across the new id, for logout


def test_hash_is_renewed_at_login_when_the_cost_parameters_change(tmp_path):
    """An operator raises or lowers [hashing]: each account's hash follows at its next login."""
    from tests.saml_sp import autopost_fields, login_with_password

    cheap = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}
    services = Services.build(idp_settings(tmp_path, hashing=cheap), clock=FrozenClock())
    services.people.create(surname="Dupont", given_name="Marie", username="marie", password=PASSWORD)
    before = services.credentials.find(key="password", username="marie").secret_hash
    assert "m=8192,t=1,p=1" in before
    stronger = Services.build(idp_settings(tmp_path, hashing={**cheap, "argon2_time_cost": 2}), clock=FrozenClock())
    app = create_app(services=stronger)
    portal = TestPortal(stronger, MON_ESPACE, tmp_path / "sp")
    browser = app.test_client()
    page = follow(browser, send(browser, portal.request()))
    autopost_fields(login_with_password(browser, page, username="marie", password=PASSWORD))
    after = stronger.credentials.find(key="password", username="marie").secret_hash
    assert "m=8192,t=2,p=1" in after and after != before


# --- attackers send requests in parallel ------------------------------------------------
@pytest.mark.parametrize("store_kind", ["sql", "redis"])
def test_sixteen_parallel_wrong_passwords_get_at_most_five_checks(store_kind, request):
    """Reserve before verifying: 16 guesses at once, over HTTP, verify at most 5
    passwords; then even the right password is refused until the block ends."""
    world = request.getfixturevalue(f"{store_kind}_world")
    username = add_citizen(world.services)
    browser = world.app.test_client()
    form = open_password_form(browser, world.portal)
    clients = [same_browser(world.app, browser) for _ in range(16)]
    before = last_audit_id(world.services)
    statuses = in_parallel(16, lambda i: submit(clients[i], form, username, f"{WRONG}-{i}").status_code)
    events = audit_since(world.services, before)
    verified = [e for e in events if e.result == "bad_credentials" or e.event == "login.lockout"]
    assert len(verified) == 5, [(e.event, e.result) for e in events]
    assert statuses.count(401) + statuses.count(403) + statuses.count(409) == 16, statuses
    assert statuses.count(401) <= 4
    right = attempt(browser, world, username, PASSWORD)
    assert code(right) == "account_blocked" and right.status_code == 403
    assert sid(browser) is None


# --- the cost of a check does not tell which usernames exist -------------------------------
def test_unknown_usernames_and_older_hashes_cost_a_verification_at_the_current_parameters(tmp_path):
    """An account hashed before [hashing] was raised answered in ~20 ms, an unknown
    username in ~190 ms.  Now the dummy hash of unknown usernames (and of inactive
    credentials) is at the current parameters, and an older, cheaper hash is padded
    up to their cost; the hash is renewed at the account's next login."""
    from argon2 import extract_parameters

    cheap = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}
    older = Services.build(idp_settings(tmp_path, hashing=cheap), clock=FrozenClock())
    older.people.create(surname="Dupont", given_name="Marie", username="marie", password=PASSWORD)
    older.people.create(surname="Peeters", given_name="Jan", username="jan", password=PASSWORD)
    with older.database.session() as s:
        s.query(Credential).filter(Credential.username == "jan").update({"status": "revoked"})
    current = Services.build(idp_settings(tmp_path, hashing={**cheap, "argon2_time_cost": 3}), clock=FrozenClock())
    hasher = current.credentials.hasher
    assert (hasher.parameters.time_cost, hasher.parameters.memory_cost) == (3, 8192)
    assert extract_parameters(hasher.dummy_hash) == hasher.parameters  # the dummy is made at the current cost

    verified: list = []
    real_check = hasher._check
    hasher._check = lambda secret_hash, secret: verified.append(extract_parameters(secret_hash)) or real_check(
        secret_hash, secret)
    app = create_app(services=current)
    portal = TestPortal(current, MON_ESPACE, tmp_path / "sp")

    def cost_of_a_try(username: str, password: str = WRONG) -> float:
        verified.clear()
        browser = app.test_client()
        submit(browser, open_password_form(browser, portal), username, password)
        return sum(hasher.cost(p) for p in verified)

    unknown = cost_of_a_try("nobody")
    assert verified == [hasher.parameters]
    assert cost_of_a_try("jan") == unknown and verified == [hasher.parameters]  # revoked: the dummy too
    assert cost_of_a_try("marie") == unknown  # t=1 hash + a pad make up the t=3 cost
    assert [p.time_cost for p in verified] == [1, 1] and verified[1].memory_cost == 2 * 8192

    assert cost_of_a_try("marie", PASSWORD) == unknown  # logs in, and renews the hash
    assert cost_of_a_try("marie") == unknown and verified == [hasher.parameters]  # no pad any more


# --- audit rows and JSON log lines ---------------------------------------------------------
def test_failure_rows_name_the_username_by_a_hash_and_json_lines_keep_severity_and_level(world, caplog):
    """A failure row carries the start of the SHA-256 of the username's normal form
    (``username_hash``, one for every variant typed), never the username; in a JSON
    log line ``severity`` is the line's and ``level`` the login's level of assurance."""
    import hashlib

    from idp.app.logs import JsonFormatter

    services = world.services
    username, ghost = add_citizen(services), f"ghost-{uuid.uuid4().hex[:8]}"
    before = last_audit_id(services)
    sesame_log = logging.getLogger("sesame")
    sesame_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="sesame"):
            browser = world.app.test_client()
            form = open_password_form(browser, world.portal)
            journey = services.journeys.load(form.tx, browser=_browser_id(world, browser))
            form_request_id = journey.portal.request.request_id
            for typed in (username.upper(), f" {username} ", ghost):
                assert code(submit(browser, form, typed, WRONG)) == "bad_credentials"
            assert logged_in(submit(browser, form, username, PASSWORD), world.portal)
    finally:
        sesame_log.removeHandler(caplog.handler)

    failures = [e for e in audit_since(services, before) if e.event == "login.failure"]
    expected = [hashlib.sha256(name.encode()).hexdigest()[:16] for name in (username, username, ghost)]
    assert [e.detail.get("username_hash") for e in failures] == expected
    for row in failures:
        assert username not in json.dumps(row.detail) and ghost not in json.dumps(row.detail)
        assert (row.key, row.remote_addr) == ("password", "127.0.0.1")
        # support can tell which portal and which request the failure belongs to
        assert row.portal == world.portal.entity_id and row.request_id == form_request_id

    lines = {r.getMessage(): json.loads(JsonFormatter().format(r)) for r in caplog.records
             if getattr(r, "audit", None)}
    success, failure = lines["login.success"], lines["login.failure"]
    assert (success["severity"], success["level"], success["event"]) == ("info", 100, "login.success")
    assert success["portal"] == world.portal.entity_id and success["logger"] == "sesame.audit"
    assert failure["severity"] == "info" and failure["username_hash"] == expected[-1] and "level" not in failure


def _browser_id(world, browser) -> str:
    from flask.sessions import SecureCookieSessionInterface

    serializer = SecureCookieSessionInterface().get_signing_serializer(world.app)
    return serializer.loads(browser.get_cookie("sesame").value)["b"]

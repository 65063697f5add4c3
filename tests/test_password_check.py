"""The shared password check (adapters/password_check.py), its lockout
(adapters/lockout.py) and the ``credentials`` port (idp/people/credentials.py).

Every check test runs on the three state stores (``store``: SQL on SQLite, SQL
on PostgreSQL, Redis) with real Argon2 at a test-suite cost; the credentials
port runs on SQLite and PostgreSQL databases built by the migrations.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from adapters.base import Challenge, Subject, SubjectKind, Success
from adapters.password import PasswordAdapter
from adapters.password_check import PasswordCheck, PasswordCheckResult
from adapters.settings import SettingsError
from idp.people.credentials import CredentialRecord, Credentials
from idp.people.directory import People
from idp.people.hashing import SecretHasher
from idp.persistence.db import Database
from idp.persistence.models import Credential

PASSWORD = "Sesame-Secret-7x9!"
WRONG = "Wrong-Guess-Q3z#"
MAX_FAILURES = 5
BLOCK_SECONDS = 900
CHEAP = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}  # real Argon2id, test-suite cost


class CountingCredentials(Credentials):
    """The real port, counting (and optionally slowing down) every verification."""

    def __init__(self, database: Database, hasher: SecretHasher, delay: float = 0.0) -> None:
        super().__init__(database, hasher)
        self.delay = delay
        self.verified = 0
        self._lock = threading.Lock()

    def verify_secret(self, record: CredentialRecord | None, secret: str) -> bool:
        with self._lock:
            self.verified += 1
        time.sleep(self.delay)  # a production Argon2 costs ~150 ms: make the race window as wide
        return super().verify_secret(record, secret)


@pytest.fixture(scope="module")
def hasher() -> SecretHasher:
    return SecretHasher(**CHEAP)


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('pwcheck') / 'people.db'}")
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def credentials(database: Database, hasher: SecretHasher) -> CountingCredentials:
    return CountingCredentials(database, hasher)


def new_person(database: Database, hasher: SecretHasher, password: str = PASSWORD) -> tuple[str, str]:
    """A person with a password credential: (username, fedid)."""
    username = f"user-{uuid.uuid4().hex[:12]}"
    person = People(database, hasher).create(surname="Peeters", given_name="Marie", username=username,
                                             password=password)
    return username, person.fedid


def make_check(credentials, store, scope: str = "password") -> PasswordCheck:
    return PasswordCheck(credentials=credentials, store=store, scope=scope, max_failures=MAX_FAILURES,
                         block_seconds=BLOCK_SECONDS)


def stored_hash(database: Database, username: str) -> str:
    with database.session() as s:
        return s.scalar(select(Credential.secret_hash).where(Credential.username == username))


# --- concurrency ----------------------------------------------------------------------
def test_parallel_wrong_passwords_get_at_most_max_failures_verifications(store, database, hasher):
    username, _ = new_person(database, hasher)
    credentials = CountingCredentials(database, hasher, delay=0.05)
    check = make_check(credentials, store)
    posts = 16
    barrier = threading.Barrier(posts)

    def post(_: int) -> PasswordCheckResult:
        barrier.wait()
        return check.check(username, WRONG)

    with ThreadPoolExecutor(max_workers=posts) as pool:
        results = list(pool.map(post, range(posts)))

    assert credentials.verified == MAX_FAILURES
    assert not any(r.ok for r in results)
    errors = [r.error for r in results]
    assert errors.count("bad_credentials") == MAX_FAILURES - 1
    assert errors.count("account_blocked") == posts - MAX_FAILURES + 1
    assert sum(r.blocked_now for r in results) == 1
    assert all(r.minutes == 15 for r in results if r.error == "account_blocked")

    afterwards = check.check(username, WRONG)
    assert afterwards.error == "account_blocked"
    assert credentials.verified == MAX_FAILURES


def test_parallel_right_password_racing_with_the_limit_is_refused(store, database, hasher):
    """The 5th wrong guess is still being verified when the right password arrives."""
    username, _ = new_person(database, hasher)
    slow = CountingCredentials(database, hasher, delay=0.3)
    check = make_check(slow, store)
    for _ in range(MAX_FAILURES - 1):
        assert check.check(username, WRONG).error == "bad_credentials"
    with ThreadPoolExecutor(max_workers=1) as pool:
        fifth = pool.submit(check.check, username, WRONG)
        time.sleep(0.08)  # the 5th attempt is reserved and inside its verification
        right = check.check(username, PASSWORD)
        assert fifth.result().blocked_now
    assert not right.ok and right.error == "account_blocked"
    assert slow.verified == MAX_FAILURES


# --- lockout ------------------------------------------------------------------------
def test_right_password_after_the_limit_is_refused_unverified(store, credentials, database, hasher):
    username, _ = new_person(database, hasher)
    check = make_check(credentials, store)
    results = [check.check(username, WRONG) for _ in range(MAX_FAILURES)]
    assert [r.error for r in results] == ["bad_credentials"] * (MAX_FAILURES - 1) + ["account_blocked"]
    assert [r.blocked_now for r in results] == [False] * (MAX_FAILURES - 1) + [True]
    assert results[-1].minutes == 15
    verified = credentials.verified

    right = check.check(username, PASSWORD)
    assert (right.ok, right.error, right.credential, right.blocked_now) == (False, "account_blocked", None, False)
    assert credentials.verified == verified


def test_right_password_before_the_limit_succeeds_and_resets_the_count(store, credentials, database, hasher):
    username, fedid = new_person(database, hasher)
    check = make_check(credentials, store)
    for _ in range(MAX_FAILURES - 1):
        assert check.check(username, WRONG).error == "bad_credentials"
    right = check.check(username, PASSWORD)
    assert right.ok and right.error is None
    assert (right.credential.username, right.credential.person_fedid, right.credential.key) == (
        username, fedid, "password")

    for _ in range(MAX_FAILURES - 1):  # a fresh count: 4 more failures do not block
        assert check.check(username, WRONG).error == "bad_credentials"
    assert check.check(username, WRONG).error == "account_blocked"


def test_unknown_username_is_verified_counted_and_blocked_like_a_known_one(store, credentials, database, hasher):
    ghost = f"ghost-{uuid.uuid4().hex[:12]}"
    known, _ = new_person(database, hasher)
    check = make_check(credentials, store)
    variants = [ghost.upper(), f" {ghost} ", ghost.title(), ghost, ghost.upper()]
    errors = [check.check(v, WRONG).error for v in variants]
    assert errors == ["bad_credentials"] * (MAX_FAILURES - 1) + ["account_blocked"]
    assert credentials.verified == MAX_FAILURES  # each one cost a verification, as for a known username
    assert check.check(ghost, PASSWORD).error == "account_blocked"
    assert credentials.verified == MAX_FAILURES
    assert check.check(known, PASSWORD).ok  # another username is not affected


def test_block_expires_after_block_seconds(store, credentials, database, hasher, clock):
    username, _ = new_person(database, hasher)
    check = make_check(credentials, store)
    for _ in range(MAX_FAILURES):
        check.check(username, WRONG)

    clock.advance(301)  # 599 s left
    later = check.check(username, PASSWORD)
    assert (later.error, later.minutes) == ("account_blocked", 10)
    clock.advance(BLOCK_SECONDS - 301 - 1)  # 1 s left
    last = check.check(username, PASSWORD)
    assert (last.error, last.minutes) == ("account_blocked", 1)

    clock.advance(1)
    assert check.check(username, PASSWORD).ok
    for _ in range(MAX_FAILURES - 1):  # and the count starts from zero
        assert check.check(username, WRONG).error == "bad_credentials"


def test_failures_are_counted_in_a_fixed_window(store, credentials, database, hasher, clock):
    username, _ = new_person(database, hasher)
    check = make_check(credentials, store)
    for _ in range(MAX_FAILURES - 1):
        assert check.check(username, WRONG).error == "bad_credentials"
    clock.advance(BLOCK_SECONDS)  # the window of the first failure is over
    for _ in range(MAX_FAILURES - 1):
        assert check.check(username, WRONG).error == "bad_credentials"
    assert check.check(username, WRONG).error == "account_blocked"


def test_scopes_count_apart(store, credentials, database, hasher):
    username, _ = new_person(database, hasher)
    first, other = make_check(credentials, store, "password"), make_check(credentials, store, "totp")
    for _ in range(MAX_FAILURES):
        first.check(username, WRONG)
    assert first.check(username, PASSWORD).error == "account_blocked"
    assert other.check(username, PASSWORD).ok


@pytest.mark.parametrize("status", ["pending", "revoked"])
def test_inactive_credential_is_refused_and_counted(store, credentials, database, hasher, status):
    username, _ = new_person(database, hasher)
    with database.session() as s:
        s.execute(update(Credential).where(Credential.username == username).values(status=status))
    check = make_check(credentials, store)
    results = [check.check(username, PASSWORD) for _ in range(MAX_FAILURES)]
    assert [r.error for r in results] == ["bad_credentials"] * (MAX_FAILURES - 1) + ["account_blocked"]
    assert credentials.verified == MAX_FAILURES


def test_empty_input_is_neither_counted_nor_verified(store, credentials, database, hasher):
    username, _ = new_person(database, hasher)
    check = make_check(credentials, store)
    for _ in range(MAX_FAILURES + 1):
        assert check.check(username, "").error == "bad_credentials"
        assert check.check("  ", PASSWORD).error == "bad_credentials"
    assert credentials.verified == 0
    assert check.check(username, PASSWORD).ok


# --- rehash ------------------------------------------------------------------------
def test_hash_is_renewed_when_the_cost_changes(store, database, hasher):
    username, _ = new_person(database, hasher)
    before = stored_hash(database, username)
    assert "t=1," in before
    stronger = Credentials(database, SecretHasher(**{**CHEAP, "time_cost": 2}))
    check = make_check(stronger, store)

    assert not check.check(username, WRONG).ok
    assert stored_hash(database, username) == before  # never after a failure

    assert check.check(username, PASSWORD).ok
    after = stored_hash(database, username)
    assert "t=2," in after and after != before
    assert check.check(username, PASSWORD).ok  # the renewed hash checks
    assert stored_hash(database, username) == after  # and is not renewed again


def test_hash_is_kept_when_the_cost_is_unchanged(store, credentials, database, hasher):
    username, _ = new_person(database, hasher)
    before = stored_hash(database, username)
    assert make_check(credentials, store).check(username, PASSWORD).ok
    assert stored_hash(database, username) == before


# --- the credentials port, on SQLite and PostgreSQL ----------------------------------
@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


def test_credentials_port(db, hasher):
    port = Credentials(db, hasher)
    username, fedid = new_person(db, hasher)
    record = port.find(key="password", username=username)
    assert (record.person_fedid, record.key, record.username, record.status) == (fedid, "password", username, "active")
    assert PASSWORD not in repr(record) and record.secret_hash not in repr(record)
    assert port.find(key="password", username=username.upper()) is None
    assert port.find(key="totp", username=username) is None

    assert port.verify_secret(record, PASSWORD)
    assert not port.verify_secret(record, WRONG)
    assert not port.verify_secret(None, PASSWORD)

    assert port.has_active(key="password", person_fedid=fedid)
    assert not port.has_active(key="totp", person_fedid=fedid)
    assert not port.has_active(key="password", person_fedid=str(uuid.uuid4()))
    with db.session() as s:
        s.execute(update(Credential).where(Credential.username == username).values(status="revoked"))
    assert not port.has_active(key="password", person_fedid=fedid)
    revoked = port.find(key="password", username=username)
    assert revoked.status == "revoked" and not port.verify_secret(revoked, PASSWORD)


def test_renew_keeps_a_secret_changed_meanwhile(db, hasher):
    username, _ = new_person(db, hasher)
    port = Credentials(db, SecretHasher(**{**CHEAP, "time_cost": 2}))
    record = port.find(key="password", username=username)
    changed = hasher.hash("A-New-Secret-1!")
    with db.session() as s:
        s.execute(update(Credential).where(Credential.id == record.id).values(secret_hash=changed))
    port.renew_if_needed(record, PASSWORD)
    assert stored_hash(db, username) == changed


# --- the password key on the new contract ---------------------------------------------
class Audit:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None, str | None]] = []

    def record(self, event: str, *, result: str = "ok", key: str | None = None,
               remote_addr: str | None = None, **_: object) -> None:
        self.events.append((event, result, key, remote_addr))


def post(adapter: PasswordAdapter, ports, username: str, password: str):
    ctx = SimpleNamespace(method="POST", form={"username": username, "password": password}, args={},
                          json=None, state={}, ports=ports, remote_addr="192.0.2.7")
    return adapter.action(ctx, "submit")


def test_password_key_outcomes_and_audit(store, database, hasher, clock):
    username, fedid = new_person(database, hasher)
    ports = SimpleNamespace(credentials=Credentials(database, hasher), store=store, clock=clock, audit=Audit())
    adapter = PasswordAdapter({"max_failures": 3, "lockout_seconds": 600})
    assert (adapter.max_failures, adapter.block_minutes) == (3, 10)
    assert adapter.configured_for(fedid, ports)
    assert not adapter.configured_for(str(uuid.uuid4()), ports)

    missing = post(adapter, ports, username, "")
    assert isinstance(missing, Challenge) and (missing.error, missing.status) == ("missing_credentials", 400)
    wrong = post(adapter, ports, f" {username} ", WRONG)
    assert (wrong.error, wrong.status, wrong.values["username"]) == ("bad_credentials", 401, username)

    ok = post(adapter, ports, username.upper(), PASSWORD)  # the username is case-sensitive; its lockout is not
    assert isinstance(ok, Challenge) and ok.error == "bad_credentials"
    done = post(adapter, ports, username, PASSWORD)
    assert isinstance(done, Success)
    assert done.result.subject == Subject(SubjectKind.USERNAME, username, issuer="password")
    assert (done.result.key, done.result.level, done.result.authn_instant) == ("password", 100, clock.now())

    for _ in range(2):
        post(adapter, ports, username, WRONG)
    blocked = post(adapter, ports, username, WRONG)
    assert (blocked.error, blocked.status, blocked.params) == ("account_blocked", 403, {"minutes": 10})
    assert blocked.values["username"] == username
    again = post(adapter, ports, username, PASSWORD)
    assert (again.error, again.status) == ("account_blocked", 403)

    assert ports.audit.events == [
        ("login.failure", "bad_credentials", "password", "192.0.2.7"),
        ("login.failure", "bad_credentials", "password", "192.0.2.7"),
        ("login.failure", "bad_credentials", "password", "192.0.2.7"),
        ("login.failure", "bad_credentials", "password", "192.0.2.7"),
        ("login.lockout", "account_blocked", "password", "192.0.2.7"),
        ("login.failure", "account_blocked", "password", "192.0.2.7"),
    ]


@pytest.mark.parametrize("settings", [{"max_failures": 0}, {"lockout_seconds": 0}, {"max_failures": "5"},
                                      {"lockout": 900}])
def test_password_key_refuses_bad_settings(settings):
    with pytest.raises(SettingsError):
        PasswordAdapter(settings)


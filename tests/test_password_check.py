"""The shared password check (adapters/password_check.py), its lockout
(adapters/lockout.py), rate limits and hash gate (adapters/rate_limit.py), the
``credentials`` port (idp/people/credentials.py) and the cost of a verification
(idp/people/hashing.py).

Every check test runs on the three state stores (``store``: SQL on SQLite, SQL
on PostgreSQL, Redis) with real Argon2 at a test-suite cost; the credentials
port runs on SQLite and PostgreSQL databases built by the migrations.
"""
from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from argon2 import extract_parameters
from sqlalchemy import select, update

from adapters.base import Challenge, Subject, SubjectKind, Success
from adapters.password import PasswordAdapter
from adapters.password_check import PasswordCheck, PasswordCheckResult
from adapters.rate_limit import Limits
from adapters.settings import SettingsError
from idp.people import usernames
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

    def __init__(self, database: Database, hasher: SecretHasher, delay: float = 0.0,
                 limits: Limits | None = None) -> None:
        super().__init__(database, hasher, limits)
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


# --- rate limits, the hash gate, usernames ---------------------------------------------
def test_rate_limits_are_reserved_before_verifying(store, database, hasher):
    """16 checks at once from one address, each on another username: exactly the
    address's allowance is verified; another address is not affected."""
    credentials = CountingCredentials(database, hasher, delay=0.05,
                                      limits=Limits(per_address_attempts=4, max_concurrent_hashes=16))
    check = make_check(credentials, store)
    barrier = threading.Barrier(16)

    def post(i: int) -> PasswordCheckResult:
        barrier.wait()
        return check.check(f"victim-{i}", WRONG, remote_addr="203.0.113.9")

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, range(16)))
    assert credentials.verified == 4
    assert sorted(r.error for r in results) == ["bad_credentials"] * 4 + ["rate_limited"] * 12
    assert {r.minutes for r in results if r.error == "rate_limited"} == {5}
    username, _ = new_person(database, hasher)
    assert check.check(username, PASSWORD, remote_addr="198.51.100.1").ok


def test_a_check_without_a_slot_is_busy_and_keeps_the_citizens_tries(store, database, hasher):
    credentials = CountingCredentials(database, hasher, limits=Limits(max_concurrent_hashes=1,
                                                                      hash_wait_seconds=0.01))
    check = make_check(credentials, store)
    username, _ = new_person(database, hasher)
    with credentials.gate.slot() as held:  # a verification of another request holds the only slot
        assert held
        for _ in range(MAX_FAILURES + 1):
            assert check.check(username, WRONG).error == "busy"
    assert credentials.verified == 0
    for _ in range(MAX_FAILURES - 1):  # the lockout did not count the busy answers
        assert check.check(username, WRONG).error == "bad_credentials"
    assert check.check(username, PASSWORD).ok


@pytest.mark.parametrize("typed", ["ﬃ" * 171, "\x00", "a\x00b", "\x1b[2J", "x" * 201, "a" * 60_000])
def test_a_name_that_cannot_be_a_username_is_refused_unverified(store, credentials, typed):
    """On every store: no error (the ﬃ key passed the SQL store's 512-character limit
    once case-folded, a NUL byte made PostgreSQL refuse the query), not verified."""
    result = make_check(credentials, store).check(typed, WRONG, remote_addr="192.0.2.1")
    assert (result.ok, result.error) == (False, "bad_credentials")
    assert credentials.verified == 0


def test_lockout_and_limits_count_the_normal_form_under_a_digest(store, credentials, database, hasher):
    typed = "ﬃ" * 60 + uuid.uuid4().hex[:6]
    People(database, hasher).create(surname="Peeters", given_name="Marie", username=typed, password=PASSWORD)
    username = usernames.canonical(typed)  # "ffi" × 60 + 6 characters
    check = make_check(credentials, store)
    variants = [typed, username.upper(), f" {username} ", typed.upper(), username]
    assert [check.check(v, WRONG).error for v in variants] == ["bad_credentials"] * 4 + ["account_blocked"]
    subject = hashlib.sha256(username.encode()).hexdigest()
    assert store.get(f"lock:password:failures:{subject}") == MAX_FAILURES
    assert store.get(f"rate:username:{subject}") == MAX_FAILURES
    assert check.check(username, WRONG).username_hash == subject[:16]


# --- hashing costs ---------------------------------------------------------------------
def test_the_dummy_hash_is_at_the_current_parameters(hasher):
    assert extract_parameters(hasher.dummy_hash) == hasher.parameters
    stronger = SecretHasher(**{**CHEAP, "time_cost": 2, "memory_kib": 16384})
    assert (stronger.parameters.time_cost, stronger.parameters.memory_cost) == (2, 16384)
    assert extract_parameters(stronger.dummy_hash) == stronger.parameters


@pytest.mark.parametrize("older", [{"time_cost": 1}, {"memory_kib": 8192}, {"time_cost": 1, "memory_kib": 8192}])
def test_an_older_cheaper_hash_is_padded_to_the_current_cost(older):
    current = SecretHasher(**{**CHEAP, "time_cost": 3, "memory_kib": 16384})
    old_hash = SecretHasher(**{**CHEAP, "time_cost": 3, "memory_kib": 16384, **older}).hash(PASSWORD)
    seen: list = []
    real = current._check
    current._check = lambda h, s: seen.append(extract_parameters(h)) or real(h, s)
    assert current.verify(old_hash, PASSWORD) and not current.verify(old_hash, WRONG)
    assert sum(current.cost(p) for p in seen[:2]) == current.cost(current.parameters)
    seen.clear()
    assert not current.verify(None, PASSWORD) and seen == [current.parameters]
    seen.clear()
    assert not current.verify("not a hash", PASSWORD) and seen == [current.parameters]


def test_a_dearer_hash_is_not_padded():
    current = SecretHasher(**CHEAP)
    dearer = SecretHasher(**{**CHEAP, "time_cost": 2}).hash(PASSWORD)
    seen: list = []
    real = current._check
    current._check = lambda h, s: seen.append(h) or real(h, s)
    assert current.verify(dearer, PASSWORD) and seen == [dearer]


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
def test_credentials_port(db, hasher):
    port = Credentials(db, hasher)
    username, fedid = new_person(db, hasher)
    record = port.find(key="password", username=username)
    assert (record.person_fedid, record.key, record.username, record.status) == (fedid, "password", username, "active")
    assert PASSWORD not in repr(record) and record.secret_hash not in repr(record)
    for variant in (username.upper(), f"  {username}\t", username.replace("u", "\uff55", 1)):  # ｕ: full width
        assert port.find(key="password", username=variant) == record
    for no_username in ("\x00", f"{username}\x00", "ﬃ" * 171, "\u202e" + username, ""):
        assert port.find(key="password", username=no_username) is None  # no query: PostgreSQL refuses NUL
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
        self.hashes: list[str | None] = []
        self.lines: list[tuple[str, str]] = []

    def record(self, event: str, *, result: str = "ok", key: str | None = None,
               remote_addr: str | None = None, username_hash: str | None = None, **_: object) -> None:
        self.events.append((event, result, key, remote_addr))
        self.hashes.append(username_hash)

    def log(self, event: str, **fields: object) -> None:
        self.lines.append((event, str(fields.get("result"))))


def post(adapter: PasswordAdapter, ports, username: str, password: str):
    ctx = SimpleNamespace(method="POST", form={"username": username, "password": password}, args={},
                          json=None, state={}, ports=ports, remote_addr="192.0.2.7", portal=None, request_id=None)
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

    for variant in (username.upper(), username):  # one username whatever its case: the stored form is proved
        done = post(adapter, ports, variant, PASSWORD)
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
        ("login.lockout", "account_blocked", "password", "192.0.2.7"),
        ("login.failure", "account_blocked", "password", "192.0.2.7"),
    ]
    # Each row names the username by the start of its digest, the same for every variant; never in clear.
    assert {h for h in ports.audit.hashes} == {hashlib.sha256(username.encode()).hexdigest()[:16]}


@pytest.mark.parametrize("settings", [{"max_failures": 0}, {"lockout_seconds": 0}, {"max_failures": "5"},
                                      {"lockout": 900}])
def test_password_key_refuses_bad_settings(settings):
    with pytest.raises(SettingsError):
        PasswordAdapter(settings)



def test_a_right_password_before_a_code_does_not_start_the_count_again(tmp_path, clock):
    """Whoever knows the password must not get new code guesses by logging in again:
    with ``second_factor`` a right password is one more attempt, and only the
    code's success (``Lockout.record_success``) starts the count again."""
    from adapters.password_check import PasswordCheck
    from idp.app.demo import DEMO_PASSWORD, create_citizens
    from idp.app.services import Services
    from tests.conftest import idp_settings

    services = Services.build(idp_settings(tmp_path), clock=clock)
    create_citizens(services)
    check = PasswordCheck(credentials=services.credentials, store=services.store, scope="password",
                          max_failures=3, block_seconds=900, second_factor=True)
    results = [check.check("marie.dupont", DEMO_PASSWORD).ok for _ in range(4)]
    assert results == [True, True, True, False]  # the fourth login is refused: blocked
    assert check.check("marie.dupont", DEMO_PASSWORD).error == "account_blocked"

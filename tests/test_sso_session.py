"""SSO sessions (idp/sessions/sso_session.py) and login transactions (idp/transactions.py)
on every real state store (SQL on SQLite, SQL on PostgreSQL, Redis), with a frozen
clock (DESIGN.md §1 steps 3, 4, 7; §5)."""
from __future__ import annotations

import pytest

from idp.errors import LoginExpired
from idp.sessions.levels import requirement_from
from idp.saml.authn_request import AuthnRequestData
from idp.sessions.sso_session import SsoSession, SsoSessions
from idp.journeys.transactions import LoginTransaction, Transactions

LIFETIME = 8 * 3600
TX_TTL = 900
FAS = "urn:be:fedict:iam:fas:citizen:Level"
MON_ESPACE = "http://localhost:18081/metadata"
FSE = "http://localhost:18082/metadata"


@pytest.fixture
def sessions(store, clock) -> SsoSessions:
    return SsoSessions(store, lifetime=LIFETIME, clock=clock)


@pytest.fixture
def transactions(store) -> Transactions:
    return Transactions(store, ttl=TX_TTL)


def start(sessions: SsoSessions, *, previous=None, person_id=1, key="password", level=100) -> SsoSession:
    return sessions.start(previous=previous, person_id=person_id, fedid=f"fedid-{person_id}", key=key,
                          level=level, authn_instant=sessions.clock.now())


# --- SSO sessions -----------------------------------------------------------------
def test_start_stores_a_session_readable_by_id(sessions, clock):
    session = start(sessions, person_id=7, level=300)
    again = sessions.get(session.id)
    assert again == session
    assert (again.person_id, again.fedid, again.key, again.level) == (7, "fedid-7", "password", 300)
    assert again.created == clock.now() and again.portals == []
    assert len(session.id) >= 32


def test_every_start_gives_a_new_id_and_ends_the_previous_session(sessions):
    first = start(sessions)
    second = start(sessions, previous=first.id)
    third = start(sessions, previous=second.id)
    assert len({first.id, second.id, third.id}) == 3
    assert sessions.get(first.id) is None and sessions.get(second.id) is None
    assert sessions.get(third.id) is not None


def test_start_without_previous_leaves_other_sessions_alone(sessions):
    someone = start(sessions, person_id=1)
    other = start(sessions, person_id=2)
    assert sessions.get(someone.id) is not None and sessions.get(other.id) is not None


def test_same_person_keeps_the_portals_for_logout(sessions):
    first = start(sessions, person_id=1)
    sessions.add_portal(first, MON_ESPACE)
    sessions.add_portal(first, FSE)
    stepped_up = start(sessions, previous=first.id, person_id=1, level=500)
    assert stepped_up.portals == [MON_ESPACE, FSE]
    assert sessions.get(stepped_up.id).portals == [MON_ESPACE, FSE]
    assert sessions.get(stepped_up.id).level == 500


def test_another_person_does_not_inherit_the_portals(sessions):
    first = start(sessions, person_id=1)
    sessions.add_portal(first, MON_ESPACE)
    other = start(sessions, previous=first.id, person_id=2)
    assert other.portals == [] and sessions.get(other.id).portals == []
    assert sessions.get(first.id) is None


def test_add_portal_is_stored_once(sessions):
    session = start(sessions)
    for _ in range(3):
        sessions.add_portal(session, MON_ESPACE)
    assert sessions.get(session.id).portals == [MON_ESPACE]


def test_session_expires_after_its_lifetime(sessions, clock):
    session = start(sessions)
    clock.advance(LIFETIME - 1)
    assert sessions.get(session.id) is not None
    clock.advance(1)
    assert sessions.get(session.id) is None


def test_adding_a_portal_does_not_extend_the_lifetime(sessions, clock):
    session = start(sessions)
    clock.advance(LIFETIME - 100)
    sessions.add_portal(session, FSE)
    assert sessions.get(session.id).portals == [FSE]
    clock.advance(100)
    assert sessions.get(session.id) is None


def test_an_expired_previous_session_is_simply_replaced(sessions, clock):
    first = start(sessions)
    sessions.add_portal(first, MON_ESPACE)
    clock.advance(LIFETIME)
    second = start(sessions, previous=first.id)
    assert second.portals == [] and sessions.get(second.id) is not None


def test_end_removes_and_returns_the_session(sessions):
    session = start(sessions)
    ended = sessions.end(session.id)
    assert ended is not None and ended.id == session.id
    assert sessions.get(session.id) is None
    assert sessions.end(session.id) is None


@pytest.mark.parametrize("sid", [None, "", "unknown", "x" * 65])
def test_unknown_ids_give_no_session(sessions, sid):
    start(sessions)
    assert sessions.get(sid) is None
    assert sessions.end(sid) is None


def test_concurrent_add_portal_keeps_both_portals(sessions):
    session = start(sessions)
    tab_one, tab_two = sessions.get(session.id), sessions.get(session.id)  # each request reads the session
    sessions.add_portal(tab_one, MON_ESPACE)
    sessions.add_portal(tab_two, FSE)
    assert sorted(sessions.get(session.id).portals) == sorted([MON_ESPACE, FSE])


# --- SsoSession.satisfies ---------------------------------------------------------
def _session(key="password", level=100) -> SsoSession:
    return SsoSession(id="s", person_id=1, fedid="f", key=key, level=level, authn_instant=0.0, created=0.0)


@pytest.mark.parametrize("key,level,keys,min_level,refs,comparison,expected", [
    ("password", 100, ["password"], 100, [], None, True),
    ("password", 100, ["totp"], 100, [], None, False),             # key not acceptable for the portal
    ("password", 100, ["password", "totp"], 200, [], None, False),  # below the portal's minimum
    ("eid", 500, ["eid", "password"], 100, [], None, True),
    ("eid", 500, ["eid"], 100, [f"{FAS}400"], "minimum", True),
    ("totp", 400, ["totp"], 100, [f"{FAS}500"], "minimum", False),
    ("eid", 500, ["eid"], 100, [f"{FAS}100"], "exact", False),     # too strong for "exact"
    ("eid", 500, ["eid"], 100, [f"{FAS}300"], "maximum", False),
    ("totp", 400, ["totp"], 100, [f"{FAS}300"], "better", True),
])
def test_satisfies_by_key_and_level(key, level, keys, min_level, refs, comparison, expected):
    requirement = requirement_from(refs, comparison)
    assert _session(key, level).satisfies(keys=keys, min_level=min_level, requirement=requirement) is expected


def test_satisfies_without_requirement_checks_key_and_minimum_only():
    assert _session("totp", 400).satisfies(keys=["totp"], min_level=400, requirement=None)
    assert not _session("totp", 400).satisfies(keys=["totp"], min_level=500, requirement=None)


# --- login transactions -----------------------------------------------------------
def _request(request_id="_req1") -> AuthnRequestData:
    return AuthnRequestData(request_id=request_id, issuer=MON_ESPACE, acs_url="http://localhost:18081/acs",
                            destination="http://idp.test/saml/sso", issue_instant=1.0, force_authn=False,
                            is_passive=False, nameid_format=None, context_refs=(f"{FAS}100",),
                            comparison="minimum", signed=True)


def create(transactions: Transactions, browser="browser-a", **kwargs) -> LoginTransaction:
    return transactions.create(browser=browser, request=_request(), relay_state="/forms", keys=["password"],
                               min_level=100, lang="nl", **kwargs)


def test_transaction_loads_back_for_its_browser(transactions):
    tx = create(transactions)
    loaded = transactions.load(tx.id, browser="browser-a")
    assert loaded.to_mapping() == tx.to_mapping()
    assert loaded.request == _request()
    assert (loaded.relay_state, loaded.keys, loaded.min_level, loaded.lang) == ("/forms", ["password"], 100, "nl")


def test_transaction_ids_are_unique(transactions):
    assert len({create(transactions).id for _ in range(20)}) == 20


@pytest.mark.parametrize("browser", ["browser-b", "", None, "browser-a "])
def test_transaction_from_another_browser_is_expired(transactions, browser):
    tx = create(transactions)
    with pytest.raises(LoginExpired):
        transactions.load(tx.id, browser=browser)
    assert transactions.load(tx.id, browser="browser-a").id == tx.id  # still the owner's


@pytest.mark.parametrize("tx_id", [None, "", "unknown", "x" * 65])
def test_unknown_transaction_is_expired(transactions, tx_id):
    create(transactions)
    with pytest.raises(LoginExpired) as raised:
        transactions.load(tx_id, browser="browser-a")
    assert raised.value.code == "login_expired"


def test_transaction_expires_after_its_ttl(transactions, clock):
    tx = create(transactions)
    clock.advance(TX_TTL - 1)
    transactions.load(tx.id, browser="browser-a")
    clock.advance(1)
    with pytest.raises(LoginExpired):
        transactions.load(tx.id, browser="browser-a")


def test_adapter_state_is_saved_without_extending_the_ttl(transactions, clock):
    tx = create(transactions)
    clock.advance(TX_TTL - 60)
    tx.state_for("password")["tries"] = 2
    tx.state_for("totp")["sent"] = True
    transactions.save(tx)
    loaded = transactions.load(tx.id, browser="browser-a")
    assert loaded.adapters == {"password": {"tries": 2}, "totp": {"sent": True}}
    clock.advance(60)
    with pytest.raises(LoginExpired):
        transactions.load(tx.id, browser="browser-a")


def test_finish_is_single_use(transactions):
    tx = create(transactions)
    assert transactions.finish(tx) is True
    assert transactions.finish(tx) is False
    with pytest.raises(LoginExpired):
        transactions.load(tx.id, browser="browser-a")


def test_finish_of_an_expired_transaction_fails(transactions, clock):
    tx = create(transactions)
    clock.advance(TX_TTL)
    assert transactions.finish(tx) is False


def test_save_does_not_resurrect_a_finished_transaction(transactions):
    tx = create(transactions)
    stale_copy = transactions.load(tx.id, browser="browser-a")
    assert transactions.finish(tx) is True       # request 1: login succeeded, response sent
    with pytest.raises(LoginExpired):            # request 2 (same tx, wrong password): told it is over
        transactions.save(stale_copy)
    with pytest.raises(LoginExpired):
        transactions.load(tx.id, browser="browser-a")


def test_claim_binds_an_unbound_transaction_once(transactions):
    parked = create(transactions, browser="")  # a cross-site POST without the session cookie
    with pytest.raises(LoginExpired):
        transactions.load(parked.id, browser="browser-a")  # not anyone's until claimed
    claimed = transactions.claim(parked.id, browser="browser-a")
    assert claimed.browser == "browser-a" and claimed.request == _request()
    assert transactions.load(parked.id, browser="browser-a").browser == "browser-a"
    with pytest.raises(LoginExpired):
        transactions.claim(parked.id, browser="browser-b")  # already bound
    assert transactions.claim(parked.id, browser="browser-a").id == parked.id  # the owner may again


def test_claim_of_a_bound_transaction_checks_the_browser(transactions):
    tx = create(transactions, browser="browser-a")
    with pytest.raises(LoginExpired):
        transactions.claim(tx.id, browser="browser-b")
    assert transactions.load(tx.id, browser="browser-a").browser == "browser-a"


@pytest.mark.parametrize("tx_id", [None, "", "unknown", "x" * 65])
def test_claim_of_an_unknown_transaction_is_expired(transactions, tx_id):
    with pytest.raises(LoginExpired):
        transactions.claim(tx_id, browser="browser-a")


def test_claim_keeps_the_original_ttl(transactions, clock):
    parked = create(transactions, browser="")
    clock.advance(TX_TTL - 10)
    transactions.claim(parked.id, browser="browser-a")
    clock.advance(10)
    with pytest.raises(LoginExpired):
        transactions.load(parked.id, browser="browser-a")

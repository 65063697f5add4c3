"""Journeys in the state store (idp/journeys/journey.py) on every real store (SQL on
SQLite, SQL on PostgreSQL, Redis), with a frozen clock: bound to one browser,
expiring, saved by compare-and-set, bound once (DESIGN.md §6)."""
from __future__ import annotations

import threading

import pytest

from adapters.base import Purpose
from idp.errors import JourneyConflict, LoginExpired
from idp.journeys.journey import Journey, Journeys, PortalRequest, Requirement
from idp.saml.authn_request import AuthnRequestData

TX_TTL = 900
FAS = "urn:be:fedict:iam:fas:citizen:Level"
MON_ESPACE = "http://localhost:18081/metadata"


@pytest.fixture
def journeys(store) -> Journeys:
    return Journeys(store, ttl=TX_TTL)


def _request(request_id="_req1") -> AuthnRequestData:
    return AuthnRequestData(request_id=request_id, issuer=MON_ESPACE, acs_url="http://localhost:18081/acs",
                            destination="http://idp.test/saml/sso", issue_instant=1.0, force_authn=False,
                            is_passive=False, nameid_format=None, context_refs=(f"{FAS}100",),
                            comparison="minimum", signed=True)


def create(journeys: Journeys, browser="browser-a") -> Journey:
    return journeys.create(dict(
        browser=browser, purpose=Purpose.PORTAL, keys=["password"], lang="nl",
        requirement=Requirement(min_level=100, context_refs=(f"{FAS}100",), comparison="minimum"),
        portal=PortalRequest(entity_id=MON_ESPACE, display_name="Mon Espace", request=_request(),
                             relay_state="/forms")))


def test_journey_loads_back_for_its_browser(journeys):
    tx = create(journeys)
    loaded = journeys.load(tx.id, browser="browser-a")
    assert loaded.to_mapping() == tx.to_mapping()
    assert loaded.portal.request == _request()
    assert (loaded.portal.relay_state, loaded.keys, loaded.requirement.min_level, loaded.lang) == (
        "/forms", ["password"], 100, "nl")


def test_journey_ids_are_unique(journeys):
    assert len({create(journeys).id for _ in range(20)}) == 20


@pytest.mark.parametrize("browser", ["browser-b", "", None, "browser-a "])
def test_journey_from_another_browser_is_expired(journeys, browser):
    tx = create(journeys)
    with pytest.raises(LoginExpired):
        journeys.load(tx.id, browser=browser)
    assert journeys.load(tx.id, browser="browser-a").id == tx.id  # still the owner's


@pytest.mark.parametrize("tx_id", [None, "", "unknown", "x" * 65])
def test_unknown_journey_is_expired(journeys, tx_id):
    create(journeys)
    with pytest.raises(LoginExpired) as raised:
        journeys.load(tx_id, browser="browser-a")
    assert raised.value.code == "login_expired"


def test_journey_expires_after_its_ttl(journeys, clock):
    tx = create(journeys)
    clock.advance(TX_TTL - 1)
    journeys.load(tx.id, browser="browser-a")
    clock.advance(1)
    with pytest.raises(LoginExpired):
        journeys.load(tx.id, browser="browser-a")


def test_key_state_is_saved_without_extending_the_ttl(journeys, clock):
    tx = create(journeys)
    clock.advance(TX_TTL - 60)
    tx.state_for("password")["tries"] = 2
    tx.state_for("totp")["sent"] = True
    journeys.save(tx)
    loaded = journeys.load(tx.id, browser="browser-a")
    assert loaded.steps == {"password": {"tries": 2}, "totp": {"sent": True}}
    clock.advance(60)
    with pytest.raises(LoginExpired):
        journeys.load(tx.id, browser="browser-a")


def test_finish_is_single_use(journeys):
    tx = create(journeys)
    assert journeys.finish(tx) is True
    assert journeys.finish(tx) is False
    with pytest.raises(LoginExpired):
        journeys.load(tx.id, browser="browser-a")


def test_finish_of_an_expired_journey_fails(journeys, clock):
    tx = create(journeys)
    clock.advance(TX_TTL)
    assert journeys.finish(tx) is False


def test_save_does_not_resurrect_a_finished_journey(journeys):
    tx = create(journeys)
    stale_copy = journeys.load(tx.id, browser="browser-a")
    assert journeys.finish(tx) is True       # request 1: login succeeded, response sent
    with pytest.raises(LoginExpired):            # request 2 (same tx, wrong password): told it is over
        journeys.save(stale_copy)
    with pytest.raises(LoginExpired):
        journeys.load(tx.id, browser="browser-a")


def test_bind_binds_an_unbound_journey_once(journeys):
    parked = create(journeys, browser="")  # a cross-site POST without the session cookie
    with pytest.raises(LoginExpired):
        journeys.load(parked.id, browser="browser-a")  # not anyone's until bound
    bound = journeys.bind(parked.id, browser="browser-a")
    assert bound.browser == "browser-a" and bound.portal.request == _request()
    assert journeys.load(parked.id, browser="browser-a").browser == "browser-a"
    with pytest.raises(LoginExpired):
        journeys.bind(parked.id, browser="browser-b")  # already bound
    assert journeys.bind(parked.id, browser="browser-a").id == parked.id  # the owner may again


def test_bind_of_a_bound_journey_checks_the_browser(journeys):
    tx = create(journeys, browser="browser-a")
    with pytest.raises(LoginExpired):
        journeys.bind(tx.id, browser="browser-b")
    assert journeys.load(tx.id, browser="browser-a").browser == "browser-a"


@pytest.mark.parametrize("tx_id", [None, "", "unknown", "x" * 65])
def test_bind_of_an_unknown_journey_is_expired(journeys, tx_id):
    with pytest.raises(LoginExpired):
        journeys.bind(tx_id, browser="browser-a")


def test_bind_keeps_the_original_ttl(journeys, clock):
    parked = create(journeys, browser="")
    clock.advance(TX_TTL - 10)
    journeys.bind(parked.id, browser="browser-a")
    clock.advance(10)
    with pytest.raises(LoginExpired):
        journeys.load(parked.id, browser="browser-a")


def test_a_finished_journey_cannot_come_back(journeys):
    journey = create(journeys)
    stale = journeys.load(journey.id, browser="browser-a")
    assert journeys.finish(journey) is True
    stale.state_for("password")["tries"] = 1
    with pytest.raises(LoginExpired):
        journeys.save(stale)
    with pytest.raises(LoginExpired) as raised:
        journeys.load(journey.id, browser="browser-a")
    assert "finished" in raised.value.detail


def test_a_stale_copy_cannot_overwrite_a_newer_one(journeys):
    """Two posts of one journey read the same record; the second write is refused,
    so a counter kept in a key's namespace cannot be reset by a parallel post."""
    journey = create(journeys)
    first, second = (journeys.load(journey.id, browser="browser-a") for _ in range(2))
    first.state_for("code")["tries"] = 1
    journeys.save(first)
    second.state_for("code")["tries"] = 1
    with pytest.raises(JourneyConflict):
        journeys.save(second)
    assert journeys.load(journey.id, browser="browser-a").steps == {"code": {"tries": 1}}


def test_a_journey_changed_meanwhile_cannot_be_claimed(journeys):
    journey = create(journeys)
    writer = journeys.load(journey.id, browser="browser-a")
    writer.state_for("password")["seen"] = True
    journeys.save(writer)
    assert journeys.finish(journey) is False  # claimed on what it read, not on what is there now
    assert journeys.finish(journeys.load(journey.id, browser="browser-a")) is True


def test_claim_once_under_concurrency(journeys):
    journey = create(journeys)
    copies = [journeys.load(journey.id, browser="browser-a") for _ in range(12)]
    barrier, wins = threading.Barrier(len(copies)), []

    def claim(copy):
        barrier.wait()
        wins.append(journeys.finish(copy))

    threads = [threading.Thread(target=claim, args=(c,)) for c in copies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and wins.count(False) == 11

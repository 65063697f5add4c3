"""Rate limits on credential checks (adapters/rate_limit.py, applied by the shared
adapters/password_check.py), reached as an attacker does: a portal's AuthnRequest,
the key choice, the password form posted with its CSRF token, from one address or
many (the test client's ``REMOTE_ADDR``), one at a time and in parallel threads,
on the SQL store and on Redis.

Verifications are counted by a credentials port that counts them (the real port,
subclassed); refusals are asserted by their error code and HTTP status.
"""
from __future__ import annotations

import re
import secrets
import time
import uuid

import pytest

from adapters.rate_limit import Limits, address_digest, limits_from
from idp import create_app
from idp.app.services import Services
from idp.clock import FrozenClock
from tests.conftest import idp_settings
from tests.parallel import in_parallel
from tests.saml_sp import MON_ESPACE, TestPortal
from tests.test_password_check import CountingCredentials
from tests.test_password_key import (
    PASSWORD, WRONG, World, _settings, add_citizen, audit_since, code, error_text, last_audit_id, logged_in,
    open_password_form, sid, submit, use_limits,
)

ATTACKER, CITIZEN = "203.0.113.66", "198.51.100.20"


@pytest.fixture(params=["sql", "redis"])
def make_world(request, tmp_path_factory):
    """A fresh Sésame with these ``[limits]`` (and ``[keys.password]``), on each store; its
    credentials port counts verifications (``world.services.credentials.verified``)."""
    store = "sql" if request.param == "sql" else request.getfixturevalue("redis_url")

    def build(*, password: dict | None = None, delay: float = 0.0, **limits) -> World:
        directory = tmp_path_factory.mktemp("limits")
        settings = _settings(directory, store=store, prefix=f"t{secrets.token_hex(4)}:")
        if password:
            settings.data["keys"]["password"].update(password)
        clock = FrozenClock()
        services = Services.build(settings, clock=clock)
        port = use_limits(services, Limits(**limits), CountingCredentials)
        port.delay = delay
        return World(create_app(services=services), services, TestPortal(services, MON_ESPACE, directory / "sp"),
                     clock)

    return build


def browser_at(world: World, address: str):
    browser = world.app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def same_browser(world: World, browser):
    """Another connection of the same browser (its cookie and address), for parallel posts."""
    other = browser_at(world, browser.environ_base["REMOTE_ADDR"])
    cookie = browser.get_cookie("sesame")
    other.set_cookie("sesame", cookie.value, domain=cookie.domain)
    return other


# --- one address, many usernames ------------------------------------------------------
def test_61_usernames_from_one_address_get_at_most_the_configured_checks(make_world):
    world = make_world(per_address_attempts=10, per_address_window_seconds=300)
    attacker = browser_at(world, ATTACKER)
    form = open_password_form(attacker, world.portal)
    answers = [submit(attacker, form, f"victim-{i}-{uuid.uuid4().hex[:6]}", "Summer-2026!") for i in range(61)]

    assert world.services.credentials.verified == 10
    assert [(a.status_code, code(a)) for a in answers] == [(401, "bad_credentials")] * 10 + [(429, "rate_limited")] * 51
    assert re.search(r"\b5\b", error_text(answers[-1])), error_text(answers[-1])  # when to retry, in minutes

    citizen = browser_at(world, CITIZEN)  # another address is not affected
    assert logged_in(submit(citizen, open_password_form(citizen, world.portal), add_citizen(world.services),
                            PASSWORD), world.portal)

    world.clock.advance(300)  # the window ends
    again = submit(attacker, open_password_form(attacker, world.portal), "victim-again", "Summer-2026!")
    assert (again.status_code, code(again)) == (401, "bad_credentials")


def test_parallel_posts_from_one_address_never_exceed_the_limit(make_world):
    """Reserved before verifying: 24 posts at once verify exactly the 6 allowed."""
    world = make_world(per_address_attempts=6, max_concurrent_hashes=24, hash_wait_seconds=10, delay=0.05)
    attacker = browser_at(world, ATTACKER)
    form = open_password_form(attacker, world.portal)
    clients = [same_browser(world, attacker) for _ in range(24)]
    statuses = in_parallel(24, lambda i: submit(clients[i], form, f"victim-{i}", WRONG).status_code)

    assert world.services.credentials.verified == 6
    # Each answer is written back to the journey by compare-and-set: some of them are 409 instead.
    assert statuses.count(401) <= 6 and statuses.count(401) + statuses.count(429) + statuses.count(409) == 24, \
        statuses
    citizen = browser_at(world, CITIZEN)
    assert logged_in(submit(citizen, open_password_form(citizen, world.portal), add_citizen(world.services),
                            PASSWORD), world.portal)


def test_ipv6_addresses_are_counted_by_their_64_network():
    assert address_digest("2001:db8:1:2::1") == address_digest("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert address_digest("2001:db8:1:2::1") != address_digest("2001:db8:1:3::1")
    assert address_digest("::ffff:192.0.2.7") == address_digest("192.0.2.7") != address_digest("192.0.2.8")


# --- one username, many addresses ------------------------------------------------------
def test_one_username_from_many_addresses_gets_at_most_its_checks(make_world):
    world = make_world(per_username_attempts=3, per_username_window_seconds=600, password={"max_failures": 50})
    victim = add_citizen(world.services)
    answers = []
    for i in range(6):
        browser = browser_at(world, f"192.0.2.{i + 1}")
        answers.append(submit(browser, open_password_form(browser, world.portal), victim.upper(), WRONG))
    assert [(a.status_code, code(a)) for a in answers] == [(401, "bad_credentials")] * 3 + [(429, "rate_limited")] * 3
    assert world.services.credentials.verified == 3

    owner = browser_at(world, CITIZEN)  # even the right password waits for the window to end
    refused = submit(owner, open_password_form(owner, world.portal), victim, PASSWORD)
    assert (refused.status_code, code(refused)) == (429, "rate_limited") and sid(owner) is None
    assert re.search(r"\b10\b", error_text(refused)), error_text(refused)
    world.clock.advance(600)
    assert logged_in(submit(owner, open_password_form(owner, world.portal), victim, PASSWORD), world.portal)


def test_refusals_by_the_limits_are_logged_not_written_as_rows(make_world):
    world = make_world(per_address_attempts=2)
    attacker = browser_at(world, ATTACKER)
    form = open_password_form(attacker, world.portal)
    before = last_audit_id(world.services)
    for i in range(12):
        submit(attacker, form, f"victim-{i}", WRONG)
    rows = [(e.event, e.result) for e in audit_since(world.services, before)]
    assert rows == [("login.failure", "bad_credentials")] * 2  # a flood writes no row per request


# --- a burst of posts beyond the Argon2 verifications a process runs at once -----------
def test_a_burst_beyond_the_concurrent_hashes_answers_busy(make_world):
    """One slot: while a (slowed) verification holds it, the other posts wait briefly,
    then are answered ``busy`` (503) without touching the lockout."""
    world = make_world(max_concurrent_hashes=1, hash_wait_seconds=0.05, delay=0.6)
    victim = add_citizen(world.services)
    browsers = [browser_at(world, f"192.0.2.{i + 1}") for i in range(6)]
    forms = [open_password_form(b, world.portal) for b in browsers]
    before = last_audit_id(world.services)
    started = time.monotonic()
    answers = in_parallel(6, lambda i: submit(browsers[i], forms[i], victim, WRONG))
    assert time.monotonic() - started < 5

    codes = sorted((a.status_code, code(a)) for a in answers)
    assert codes.count((503, "busy")) >= 4, codes
    assert world.services.credentials.verified == 6 - codes.count((503, "busy"))
    failures = [e for e in audit_since(world.services, before) if e.event.startswith("login.")]
    assert len(failures) == world.services.credentials.verified  # busy answers are not failures
    world.services.credentials.delay = 0  # the burst is over: the owner still has the rest of the tries
    owner = browser_at(world, CITIZEN)
    assert logged_in(submit(owner, open_password_form(owner, world.portal), victim, PASSWORD), world.portal)


# --- configuration ---------------------------------------------------------------------
def test_limits_settings_are_checked():
    assert limits_from({}) == Limits()
    assert limits_from({"per_address_attempts": 5, "hash_wait_seconds": 1}).hash_wait_seconds == 1
    for bad in ({"per_address_attempts": 0}, {"per_username_window_seconds": "900"}, {"max_concurrent_hashes": 1.5},
                {"hash_wait_seconds": -1}, {"per_adress_attempts": 5}, {"per_address_attempts": True}):
        with pytest.raises(ValueError):
            limits_from(bad)


def test_defaults_toml_limits_are_the_built_in_defaults(tmp_path):
    assert limits_from(idp_settings(tmp_path)["limits"]) == Limits()


def test_services_read_the_limits_section(tmp_path):
    services = Services.build(idp_settings(tmp_path, limits={"per_address_attempts": 7}), clock=FrozenClock())
    assert services.credentials.limits.per_address_attempts == 7

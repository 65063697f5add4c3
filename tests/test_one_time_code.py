"""The one-time-code engine (adapters/one_time_code.py) on every state-store
backend: single use, expiry, attempts reserved before the check, resend
cooldown, send limits, and the same rules under parallel requests."""
from __future__ import annotations

import pytest

from adapters.one_time_code import (BAD_CODE, CODE_EXPIRED, RESEND_TOO_SOON, TOO_MANY_ATTEMPTS, TOO_MANY_SENDS,
                                    CodePolicy, OneTimeCodes, normalise)
from tests.parallel import in_parallel

SECRET = b"test-secret-of-the-one-time-codes"


def codes(store, **policy) -> OneTimeCodes:
    return OneTimeCodes(store, scope="email_code", policy=CodePolicy(**policy), secret=SECRET)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.mark.services
def test_a_code_is_good_once(store):
    engine = codes(store)
    issued = engine.issue("j1", account="person-1", remote_addr="192.0.2.1")
    assert issued.ok and len(issued.code) == 6 and issued.code.isdigit()
    assert engine.check("j1", issued.code).ok
    assert engine.check("j1", issued.code).error == CODE_EXPIRED


@pytest.mark.services
def test_the_store_keeps_no_code_in_clear(store):
    engine = codes(store)
    issued = engine.issue("j1", account="person-1")
    kept = store.get("otc:email_code:j1")
    assert kept and issued.code not in str(kept) and len(kept) == 64  # an HMAC-SHA-256, hex


@pytest.mark.services
def test_a_code_expires(store, clock):
    engine = codes(store, ttl_seconds=600)
    issued = engine.issue("j1", account="person-1")
    clock.advance(601)
    assert engine.check("j1", issued.code).error == CODE_EXPIRED


@pytest.mark.services
def test_wrong_codes_end_the_challenge_after_the_limit(store):
    engine = codes(store, max_attempts=3)
    issued = engine.issue("j1", account="person-1")
    first = engine.check("j1", wrong(issued.code))
    assert first.error == BAD_CODE and first.attempts_left == 2
    assert engine.check("j1", wrong(issued.code)).attempts_left == 1
    assert engine.check("j1", wrong(issued.code)).error == TOO_MANY_ATTEMPTS
    assert engine.check("j1", issued.code).error == CODE_EXPIRED  # even the right one, now


@pytest.mark.services
def test_a_resend_waits_for_the_cooldown_and_replaces_the_code(store, clock):
    engine = codes(store, resend_cooldown_seconds=60)
    first = engine.issue("j1", account="person-1")
    again = engine.issue("j1", account="person-1")
    assert again.error == RESEND_TOO_SOON and 0 < again.retry_after <= 60
    clock.advance(61)
    second = engine.issue("j1", account="person-1")
    assert second.ok
    if second.code != first.code:
        assert engine.check("j1", first.code).error == BAD_CODE  # the old code no longer works
    assert engine.check("j1", second.code).ok


@pytest.mark.services
def test_a_resend_does_not_buy_new_attempts(store, clock):
    engine = codes(store, max_attempts=2, resend_cooldown_seconds=1)
    issued = engine.issue("j1", account="person-1")
    engine.check("j1", wrong(issued.code))
    clock.advance(2)
    issued = engine.issue("j1", account="person-1")
    assert engine.check("j1", wrong(issued.code)).error == TOO_MANY_ATTEMPTS


@pytest.mark.services
def test_sends_are_limited_per_account_and_per_address(store, clock):
    engine = codes(store, resend_cooldown_seconds=1, sends_per_account=2, sends_per_address=3)
    assert engine.issue("a", account="p1", remote_addr="192.0.2.1").ok
    assert engine.issue("b", account="p1", remote_addr="192.0.2.1").ok
    assert engine.issue("c", account="p1", remote_addr="192.0.2.1").error == TOO_MANY_SENDS  # the account
    assert engine.issue("d", account="p2", remote_addr="192.0.2.1").error == TOO_MANY_SENDS  # the address
    assert engine.issue("e", account="p3", remote_addr="192.0.2.9").ok


def test_typed_codes_lose_spaces_and_dashes():
    assert normalise(" 123 456 ") == "123456" and normalise("123-456") == "123456"
    assert normalise("1" * 1000) == "1" * 32


@pytest.mark.services
def test_parallel_right_codes_are_accepted_once(store):
    engine = codes(store)
    issued = engine.issue("j1", account="person-1")
    results = in_parallel(8, lambda i: engine.check("j1", issued.code))
    assert sum(r.ok for r in results) == 1
    # The others find it used, or (each check being counted first) are beyond the attempts.
    assert {r.error for r in results if not r.ok} <= {CODE_EXPIRED, TOO_MANY_ATTEMPTS}


@pytest.mark.services
def test_parallel_wrong_codes_get_at_most_the_allowed_checks(store):
    engine = codes(store, max_attempts=5)
    issued = engine.issue("j1", account="person-1")
    results = in_parallel(12, lambda i: engine.check("j1", wrong(issued.code)))
    assert sum(r.error == BAD_CODE for r in results) <= 4  # the fifth check ends the challenge
    # The rest: beyond the attempts, or arriving after the challenge was ended.
    assert not any(r.ok for r in results)
    assert {r.error for r in results} <= {BAD_CODE, TOO_MANY_ATTEMPTS, CODE_EXPIRED}
    assert engine.check("j1", issued.code).error in (CODE_EXPIRED, TOO_MANY_ATTEMPTS)


@pytest.mark.services
def test_parallel_resends_send_one_code(store):
    engine = codes(store)
    results = in_parallel(8, lambda i: engine.issue("j1", account="person-1"))
    assert sum(r.ok for r in results) == 1


def test_a_policy_outside_its_bounds_is_refused():
    with pytest.raises(ValueError):
        CodePolicy(length=4)
    with pytest.raises(ValueError):
        CodePolicy(max_attempts=0)

"""The state store contract (idp.persistence.store, DESIGN.md §5), on every backend for real.

Each test runs on SQL/SQLite, SQL/PostgreSQL and Redis (the ``store`` fixture
of tests/services.py).  Time moves with the FrozenClock, never by sleeping.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from idp.clock import FrozenClock
from idp.persistence.store import RedisStore, SqlStore, StateStore, make_store, state_entry
from tests.services import build_store


def _race(n: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``n`` threads released together; their results in order."""
    barrier, results = threading.Barrier(n), [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = action(i)
        except BaseException as exc:  # surfaced below: a thread must not fail silently
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_put_get_delete(store: StateStore) -> None:
    assert store.get("absent") is None
    store.put("k", {"a": 1}, ttl=60)
    assert store.get("k") == {"a": 1}
    store.put("k", ["replaced"], ttl=60)
    assert store.get("k") == ["replaced"]
    store.delete("k")
    assert store.get("k") is None
    store.delete("k")  # deleting an absent key is no error


@pytest.mark.parametrize(
    "value",
    [{"nested": {"list": [1, 2.5, True, None], "text": "Sésame €"}}, [1, "two", {"3": 3}], "plain", 42, 0, False],
)
def test_values_round_trip_as_json(store: StateStore, value: Any) -> None:
    store.put("v", value, ttl=60)
    got = store.get("v")
    assert got == value and type(got) is type(value)


def test_refuses_none_and_bad_ttls(store: StateStore) -> None:
    with pytest.raises(ValueError):
        store.put("k", None, ttl=60)  # type: ignore[arg-type]
    for ttl in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            store.put("k", 1, ttl=ttl)  # type: ignore[arg-type]
    assert store.get("k") is None


def test_entry_expires_when_the_clock_reaches_its_ttl(store: StateStore, clock: FrozenClock) -> None:
    store.put("k", "v", ttl=10)
    clock.advance(9.9)
    assert store.get("k") == "v"
    clock.advance(0.1)
    assert store.get("k") is None
    assert store.ttl("k") is None


def test_put_again_restarts_the_expiry(store: StateStore, clock: FrozenClock) -> None:
    store.put("k", 1, ttl=10)
    clock.advance(8)
    store.put("k", 2, ttl=10)
    clock.advance(8)
    assert store.get("k") == 2


def test_add_only_when_absent_or_expired(store: StateStore, clock: FrozenClock) -> None:
    assert store.add("id", "first", ttl=30) is True
    assert store.add("id", "second", ttl=30) is False
    assert store.get("id") == "first"
    clock.advance(29)
    assert store.add("id", "third", ttl=30) is False
    clock.advance(1)
    assert store.add("id", "fourth", ttl=30) is True
    assert store.get("id") == "fourth"
    assert store.ttl("id") == 30


def test_pop_is_single_use(store: StateStore, clock: FrozenClock) -> None:
    store.put("token", {"who": "x"}, ttl=60)
    assert store.pop("token") == {"who": "x"}
    assert store.pop("token") is None
    assert store.get("token") is None
    assert store.pop("never") is None
    store.put("late", 1, ttl=5)
    clock.advance(5)
    assert store.pop("late") is None


def test_incr_counts_in_a_fixed_window(store: StateStore, clock: FrozenClock) -> None:
    window = 15 * 60
    counts = []
    for _ in range(5):
        counts.append(store.incr("failures", ttl=window))
        clock.advance(60)
    assert counts == [1, 2, 3, 4, 5]
    assert store.get("failures") == 5
    assert store.ttl("failures") == window - 5 * 60  # increments did not extend it
    clock.advance(window - 5 * 60 - 1)
    assert store.incr("failures", ttl=window) == 6
    clock.advance(1)
    assert store.get("failures") is None
    assert store.incr("failures", ttl=window) == 1
    assert store.ttl("failures") == window


def test_incr_restarts_over_an_expired_entry(store: StateStore, clock: FrozenClock) -> None:
    store.put("n", {"not": "a counter"}, ttl=5)
    clock.advance(5)
    assert store.incr("n", ttl=60) == 1


def test_ttl_counts_whole_seconds_rounded_up(store: StateStore, clock: FrozenClock) -> None:
    assert store.ttl("absent") is None
    store.put("k", 1, ttl=30)
    assert store.ttl("k") == 30
    clock.advance(0.5)
    assert store.ttl("k") == 30
    clock.advance(10)
    assert store.ttl("k") == 20
    clock.advance(19.4)
    assert store.ttl("k") == 1


def _physically_present(store: StateStore, key: str) -> bool:
    """Whether the backend holds anything under ``key``, expired or not."""
    full = store.prefix + key
    if isinstance(store, SqlStore):
        with store.engine.connect() as conn:
            return conn.execute(sa.select(state_entry.c.key).where(state_entry.c.key == full)).first() is not None
    assert isinstance(store, RedisStore)
    return store.redis.exists(full) == 1


def test_replace_keeps_the_expiry(store: StateStore, clock: FrozenClock) -> None:
    store.put("journey", {"step": 1}, ttl=10)
    real_ttl = store.redis.pttl("sesame:journey") if isinstance(store, RedisStore) else None
    clock.advance(6)
    assert store.replace("journey", {"step": 2}) is True
    assert (store.get("journey"), store.ttl("journey")) == ({"step": 2}, 4)
    if real_ttl is not None:  # Redis's own cleanup TTL is neither dropped nor shortened
        assert isinstance(store, RedisStore)
        assert real_ttl - 5_000 < store.redis.pttl("sesame:journey") <= real_ttl
    clock.advance(3.9)
    assert store.get("journey") == {"step": 2}
    clock.advance(0.1)  # the original put's deadline, not 10 s after the replace
    assert store.get("journey") is None


def test_replace_with_ttl_moves_the_expiry(store: StateStore, clock: FrozenClock) -> None:
    """An SSO session used is extended (idle timeout): the value and a new expiry in one write."""
    store.put("session", {"seen": 0}, ttl=10)
    clock.advance(8)
    assert store.replace("session", {"seen": 8}, expected={"seen": 0}, ttl=10) is True
    assert (store.get("session"), store.ttl("session")) == ({"seen": 8}, 10)
    if isinstance(store, RedisStore):  # Redis's own cleanup TTL follows
        assert store.redis.pttl("sesame:session") > 10_000
    assert store.replace("session", {"seen": 9}, expected={"seen": 0}, ttl=60) is False  # another value
    assert store.ttl("session") == 10
    clock.advance(9.9)
    assert store.get("session") == {"seen": 8}
    clock.advance(0.1)
    assert store.get("session") is None
    assert store.replace("session", {"seen": 18}, ttl=10) is False  # a dead entry is not revived


def test_replace_never_creates_an_entry(store: StateStore, clock: FrozenClock) -> None:
    assert store.replace("absent", 1) is False
    assert store.replace("absent", 1, expected=1) is False
    assert store.get("absent") is None and not _physically_present(store, "absent")
    store.put("late", "v", ttl=5)
    clock.advance(5)
    assert store.replace("late", "w") is False
    assert store.replace("late", "w", expected="v") is False
    assert store.get("late") is None and store.ttl("late") is None
    assert store.add("late", "new", ttl=5) is True  # still seen as expired, not revived
    assert (store.get("late"), store.ttl("late")) == ("new", 5)


def test_replace_cannot_bring_back_a_popped_or_deleted_key(store: StateStore) -> None:
    store.put("finished", {"step": "done"}, ttl=60)
    assert store.pop("finished") == {"step": "done"}
    assert store.replace("finished", {"step": "password"}) is False
    assert store.replace("finished", {"step": "password"}, expected={"step": "done"}) is False
    store.put("cancelled", {"step": "otp"}, ttl=60)
    store.delete("cancelled")
    assert store.replace("cancelled", {"step": "password"}, expected={"step": "otp"}) is False
    for key in ("finished", "cancelled"):
        assert store.get(key) is None and not _physically_present(store, key)


def test_replace_with_expected_is_compare_and_set(store: StateStore) -> None:
    store.put("journey", {"step": "password", "tries": 1}, ttl=60)
    assert store.replace("journey", {"step": "otp"}, expected={"step": "password", "tries": 2}) is False
    assert store.replace("journey", {"step": "otp"}, expected="password") is False
    assert store.get("journey") == {"step": "password", "tries": 1}  # untouched
    # Dict key order does not matter: the encoding is canonical.
    assert store.replace("journey", {"step": "otp"}, expected={"tries": 1, "step": "password"}) is True
    assert store.get("journey") == {"step": "otp"}
    # Compared as JSON text, so 1, 1.0 and true differ although Python says 1 == 1.0 == True.
    store.put("n", 1, ttl=60)
    assert store.replace("n", 2, expected=1.0) is False
    assert store.replace("n", 2, expected=True) is False
    assert store.replace("n", 2, expected=1) is True
    assert store.get("n") == 2


@pytest.mark.parametrize(
    "value",
    [
        {"z": {"é": "Sésame € 🔑", "a": [1, 2.5, 0.1 + 0.2, -0.0, 1e-7, 1e300]}, "a": {"b": {"c": None}}, "m": True},
        [{"b": 1, "a": 2}, "ligne\n\"guillemets\" \\ \u2028 \x00", 2**70, -3.25],
        "texte ünicode",
        123456789012345678901234567890,
        0.1,
        False,
    ],
)
def test_replace_matches_a_value_read_with_get(store: StateStore, value: Any) -> None:
    store.put("k", value, ttl=60)
    read = store.get("k")
    assert store.replace("k", "other", expected=read) is True
    assert store.replace("k", value, expected="other") is True
    assert store.replace("k", "again", expected=store.get("k")) is True  # written by replace, read back
    assert store.get("k") == "again"


def test_prefixes_isolate_stores(store_config: dict[str, Any], clock: FrozenClock) -> None:
    one, close_one = build_store(store_config, clock, prefix="one:")
    two, close_two = build_store(store_config, clock, prefix="two:")
    try:
        one.put("k", "one", ttl=60)
        assert two.get("k") is None
        assert two.add("k", "two", ttl=60) is True
        assert (one.get("k"), two.get("k")) == ("one", "two")
        assert two.incr("n", ttl=60) == 1 and one.incr("n", ttl=60) == 1
    finally:
        close_one()
        close_two()


def test_purge_expired(store: StateStore, clock: FrozenClock) -> None:
    for i in range(3):
        store.put(f"short{i}", i, ttl=10)
    store.put("long", "kept", ttl=100)
    clock.advance(10)
    purged = store.purge_expired()
    assert store.get("long") == "kept"
    if isinstance(store, RedisStore):
        assert purged == 0  # Redis expires by itself
        return
    assert purged == 3
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        keys = conn.execute(sa.select(state_entry.c.key)).scalars().all()
    assert keys == ["sesame:long"]
    assert store.purge_expired() == 0


def test_keys_are_namespaced_in_the_backend(store: StateStore) -> None:
    store.put("k", 1, ttl=60)
    if isinstance(store, SqlStore):
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(state_entry.c.key)).scalar_one() == "sesame:k"
    else:
        assert isinstance(store, RedisStore)
        assert store.redis.keys("*") == ["sesame:k"]


def test_redis_keeps_a_real_ttl_but_obeys_the_clock(redis_url: str, clock: FrozenClock) -> None:
    store = RedisStore(redis_url, clock, prefix="realttl:", real_ttl_margin=300)
    try:
        store.put("k", 1, ttl=60)
        assert 300_000 < store.redis.pttl("realttl:k") <= 360_000  # cleanup bound, in real time
        clock.advance(3600)  # the FrozenClock jumps; Redis still holds the entry
        assert store.redis.exists("realttl:k") == 1
        assert store.get("k") is None and store.ttl("k") is None
        assert store.add("k", 2, ttl=60) is True
        assert store.pop("k") == 2
    finally:
        store.redis.delete("realttl:k")
        store.close()


def test_make_store_selects_the_backend(redis_url: str, clock: FrozenClock) -> None:
    redis_store = make_store(redis_url, clock=clock, prefix="p:")
    assert isinstance(redis_store, RedisStore) and redis_store.prefix == "p:"
    redis_store.close()
    with pytest.raises(ValueError):
        make_store("sql", clock=clock)  # no database
    with pytest.raises(ValueError):
        make_store("memcached://x", clock=clock)


def test_threads_racing_add_one_wins(store: StateStore) -> None:
    won = _race(16, lambda i: store.add("request-id", i, ttl=60))
    assert won.count(True) == 1
    assert store.get("request-id") == won.index(True)


def test_threads_racing_incr_lose_no_increment(store: StateStore) -> None:
    rounds = 20
    counts = _race(12, lambda i: [store.incr("hits", ttl=60) for _ in range(rounds)])
    seen = sorted(n for per_thread in counts for n in per_thread)
    assert seen == list(range(1, 12 * rounds + 1))  # every value handed out once
    assert store.get("hits") == 12 * rounds


def test_threads_racing_pop_one_gets_it(store: StateStore) -> None:
    store.put("code", "123456", ttl=60)
    got = _race(12, lambda i: store.pop("code"))
    assert got.count("123456") == 1 and got.count(None) == 11


def test_threads_racing_replace_one_wins(store: StateStore, clock: FrozenClock) -> None:
    original = {"step": "password", "who": "Zoé", "score": 0.5}
    store.put("journey", original, ttl=60)
    clock.advance(1)
    won = _race(16, lambda i: store.replace("journey", {"winner": i}, expected=original))
    assert won.count(True) == 1
    assert (store.get("journey"), store.ttl("journey")) == ({"winner": won.index(True)}, 59)


def _process_worker(config: dict[str, Any], now: float, barrier: Any, out: Any, rounds: int) -> None:
    store, close = build_store(config, FrozenClock(now))
    try:
        barrier.wait(60)
        won = store.add("race:add", os.getpid(), ttl=60)
        out.put((won, [store.incr("race:n", ttl=60) for _ in range(rounds)]))
    except BaseException as exc:
        out.put(exc)
        raise
    finally:
        close()


def test_processes_racing_add_and_incr(store_config: dict[str, Any], store: StateStore, clock: FrozenClock) -> None:
    procs, rounds = 3, 15
    workers, results = _race_in_processes(procs, _process_worker, store_config, clock.now(), rounds)
    assert all(isinstance(r, tuple) for r in results), results
    assert [won for won, _ in results].count(True) == 1
    assert sorted(n for _, counts in results for n in counts) == list(range(1, procs * rounds + 1))
    assert store.get("race:n") == procs * rounds
    assert store.get("race:add") in {w.pid for w in workers}


def _race_in_processes(procs: int, target: Any, config: dict[str, Any], now: float, *args: Any) -> tuple[list, list]:
    """Start ``procs`` spawned processes running ``target(config, now, barrier, out, *args)``
    together; their processes and what each put on ``out``."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=target, args=(config, now, barrier, out, *args)) for _ in range(procs)]
    for w in workers:
        w.start()
    try:
        results = [out.get(timeout=120) for _ in range(procs)]
    except queue.Empty:
        pytest.fail("a worker process did not report")
    finally:
        for w in workers:
            w.join(30)
    return workers, results


def _replace_worker(config: dict[str, Any], now: float, barrier: Any, out: Any, keys: list[str], original: Any) -> None:
    store, close = build_store(config, FrozenClock(now))
    try:
        barrier.wait(60)
        out.put([store.replace(key, {"winner": os.getpid()}, expected=original) for key in keys])
    except BaseException as exc:
        out.put(exc)
        raise
    finally:
        close()


def test_processes_racing_replace_one_wins_each_key(
    store_config: dict[str, Any], store: StateStore, clock: FrozenClock
) -> None:
    procs, keys = 4, [f"race:cas{i}" for i in range(20)]
    original = {"step": "otp", "who": "Zoé", "score": 0.5}
    for key in keys:
        store.put(key, original, ttl=60)
    workers, results = _race_in_processes(procs, _replace_worker, store_config, clock.now(), keys, original)
    assert all(isinstance(r, list) for r in results), results
    for i, key in enumerate(keys):
        assert [won[i] for won in results].count(True) == 1, key
        assert store.get(key)["winner"] in {w.pid for w in workers}  # type: ignore[index]
        assert store.ttl(key) == 60


def test_redis_errors_surface(clock: FrozenClock) -> None:
    """A store that cannot reach its server raises (StoreUnavailable, which the pages
    answer "start again"), it never answers "absent"; every operation alike."""
    from idp.errors import StoreUnavailable

    store = RedisStore("redis://127.0.0.1:1/0", clock, socket_connect_timeout=0.5)
    for call in (lambda: store.get("k"), lambda: store.put("k", 1, ttl=5), lambda: store.add("k", 1, ttl=5),
                 lambda: store.pop("k"), lambda: store.incr("k", ttl=5), lambda: store.replace("k", 2),
                 lambda: store.ttl("k"), lambda: store.delete("k")):
        with pytest.raises(StoreUnavailable) as raised:
            call()
        assert isinstance(raised.value.__cause__, redis.ConnectionError)
    store.close()

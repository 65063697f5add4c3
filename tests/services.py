"""Real PostgreSQL and Redis servers for the tests (DESIGN.md §7, §8.5).

A pytest plugin (``pytest_plugins = ["tests.services"]`` or ``-p tests.services``)
and plain functions for scripts: ``python -m tests.services`` makes sure both
servers run.  The server functions do not import Sésame.

Servers are expected on 127.0.0.1 (PostgreSQL 5432, user ``postgres``, trust
auth; Redis 6379).  When one does not answer, it is started; when it is not
installed and we are root, it is installed with apt.  Otherwise the fixture
FAILS (never skips) saying which ``apt-get install`` line the machine lacks.
"""
from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import psycopg
import pytest
import redis

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
# SESAME_TEST_REDIS_DB lets two suites run side by side without flushing each other.
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_TEST_DB = int(os.environ.get("SESAME_TEST_REDIS_DB", "15"))
FROZEN_START = 1_700_000_000.0  # far from real time, on purpose (see idp.persistence.store.redis)


class ServiceUnavailable(RuntimeError):
    """A server the tests need cannot be reached, started or installed."""


# -- plumbing ----------------------------------------------------------------

def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)


def _apt_install(package: str) -> None:
    """``apt-get install -y <package>`` as root, refreshing the lists once if needed."""
    if os.geteuid() != 0:
        raise ServiceUnavailable(f"{package} is not installed; add `apt-get install -y {package}` to the machine setup")
    if _run("apt-get", "install", "-y", package).returncode != 0:
        _run("apt-get", "update")
        done = _run("apt-get", "install", "-y", package)
        if done.returncode != 0:
            raise ServiceUnavailable(f"`apt-get install -y {package}` failed:\n{done.stderr[-2000:]}")


def _wait(check: Callable[[], str | None], timeout: float, what: str) -> None:
    deadline, error = time.monotonic() + timeout, "not tried"
    while time.monotonic() < deadline:
        error = check()
        if error is None:
            return
        time.sleep(0.5)
    raise ServiceUnavailable(f"{what} did not come up within {timeout:.0f}s: {error}")


# -- PostgreSQL --------------------------------------------------------------

def postgres_admin_dsn(dbname: str = "postgres") -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname} connect_timeout=3"


def postgres_db_url(dbname: str) -> str:
    """SQLAlchemy URL of database ``dbname`` on the test server."""
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


def _pg_error() -> str | None:
    try:
        psycopg.connect(postgres_admin_dsn()).close()
        return None
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__


def _pg_start_clusters() -> None:
    versions = sorted(os.path.basename(p) for p in glob.glob("/usr/lib/postgresql/*"))
    if not glob.glob("/etc/postgresql/*/main") and versions:
        _run("pg_createcluster", versions[-1], "main")
    for conf in sorted(glob.glob("/etc/postgresql/*/main")):
        version = conf.split("/")[3]
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")


def _pg_trust_local_tcp() -> None:
    """On a server we installed ourselves: let user postgres in over 127.0.0.1 without password."""
    for hba in glob.glob("/etc/postgresql/*/main/pg_hba.conf"):
        with open(hba, encoding="utf-8") as f:
            text = f.read()
        with open(hba, "w", encoding="utf-8") as f:
            f.write(f"host all {PG_USER} 127.0.0.1/32 trust\n" + text)
        version = hba.split("/")[3]
        _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "reload")


def ensure_postgres(timeout: float = 60.0) -> str:
    """Make PostgreSQL answer on 127.0.0.1:5432 as ``postgres``; return the admin URL.

    Starts the cluster with ``pg_ctlcluster`` when it is installed but down,
    installs ``postgresql`` with apt when missing and root; otherwise raises
    :class:`ServiceUnavailable` with the fix.
    """
    error = _pg_error()
    if error is None:
        return postgres_db_url("postgres")
    if _port_open(PG_HOST, PG_PORT):  # up, but refuses us: starting again will not help
        raise ServiceUnavailable(
            f"PostgreSQL on {PG_HOST}:{PG_PORT} refuses user {PG_USER}: {error}\n"
            f"add `host all {PG_USER} 127.0.0.1/32 trust` at the top of pg_hba.conf and reload"
        )
    installed_now = False
    if shutil.which("pg_ctlcluster") is None or not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        if os.geteuid() != 0:
            raise ServiceUnavailable(
                f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} and not installed; "
                "add `apt-get install -y postgresql` to the machine setup"
            )
        _apt_install("postgresql")
        installed_now = True
    _pg_start_clusters()
    if installed_now:
        _pg_trust_local_tcp()
    _wait(_pg_error, timeout, f"PostgreSQL on {PG_HOST}:{PG_PORT} (see /var/log/postgresql/)")
    return postgres_db_url("postgres")


def create_postgres_database(prefix: str = "sesame_test") -> str:
    """Create a fresh, uniquely named database; return its SQLAlchemy URL."""
    ensure_postgres()
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_db_url(name)


def drop_postgres_database(url: str) -> None:
    """Drop the database of ``url``, disconnecting whoever still uses it."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- Redis -------------------------------------------------------------------

def _redis_error() -> str | None:
    try:
        with redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=3) as client:
            client.ping()
        return None
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__


def ensure_redis(timeout: float = 30.0) -> str:
    """Make Redis answer on 127.0.0.1:6379; return ``redis://127.0.0.1:6379``.

    Starts ``redis-server`` (no persistence) when installed but down, installs
    ``redis-server`` with apt when missing and root; otherwise raises
    :class:`ServiceUnavailable` with the fix.
    """
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}"
    if _redis_error() is None:
        return url
    if shutil.which("redis-server") is None:
        if os.geteuid() != 0:
            raise ServiceUnavailable(
                f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT} and not installed; "
                "add `apt-get install -y redis-server` to the machine setup"
            )
        _apt_install("redis-server")
    if _redis_error() is not None:  # the package may have started it
        _run("redis-server", "--daemonize", "yes", "--bind", REDIS_HOST, "--port", str(REDIS_PORT),
             "--save", "", "--appendonly", "no")
    _wait(_redis_error, timeout, f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    return url


def _flush_redis(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushdb()


# -- pytest fixtures ---------------------------------------------------------

def _fail(exc: ServiceUnavailable) -> NoReturn:
    pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """Admin URL of the running PostgreSQL server (started or installed if needed)."""
    try:
        return ensure_postgres()
    except ServiceUnavailable as exc:
        _fail(exc)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh empty database for the whole test session, dropped at the end."""
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Redis database 15 (or SESAME_TEST_REDIS_DB) of the test server, flushed at start and end."""
    try:
        url = f"{ensure_redis()}/{REDIS_TEST_DB}"
    except ServiceUnavailable as exc:
        _fail(exc)
    _flush_redis(url)
    yield url
    _flush_redis(url)


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    """A SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'sesame.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh empty database per test, on SQLite then on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sesame.db'}"
        return
    request.getfixturevalue("postgres_server")
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def db(db_url: str) -> Iterator[Any]:
    """A migrated :class:`idp.persistence.db.Database` on ``db_url`` (SQLite, then PostgreSQL)."""
    from idp.persistence.db import Database

    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Any:
    """A FrozenClock far from real time; tests ``clock.advance(seconds)``."""
    from idp.clock import FrozenClock

    return FrozenClock(start=FROZEN_START)


@pytest.fixture(scope="session")
def _migrated_postgres_url(postgres_url: str) -> str:
    from idp.persistence.db import upgrade

    upgrade(postgres_url)
    return postgres_url


@pytest.fixture(params=["sql-sqlite", "sql-postgresql", "redis"])
def store_config(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """How to build the store under test, empty: ``{"store": "sql" | redis URL, "db_url": ...}``.

    Plain data, so that other processes can build the same store (:func:`build_store`).
    """
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        _flush_redis(url)
        return {"store": url, "db_url": None}
    if request.param == "sql-postgresql":
        url = request.getfixturevalue("_migrated_postgres_url")
        with psycopg.connect(postgres_admin_dsn(url.rsplit("/", 1)[1]), autocommit=True) as conn:
            conn.execute("DELETE FROM state_entry")
        return {"store": "sql", "db_url": url}
    from idp.persistence.db import upgrade

    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    return {"store": "sql", "db_url": url}


def build_store(config: dict[str, Any], clock: Any, prefix: str = "sesame:") -> tuple[Any, Callable[[], None]]:
    """The store described by ``config`` (from :func:`store_config`) and its closer."""
    from idp.persistence.db import Database
    from idp.persistence.store import make_store

    database = Database(config["db_url"]) if config["db_url"] else None
    store = make_store(config["store"], database=database, clock=clock, prefix=prefix)

    def close() -> None:
        if database is not None:
            database.dispose()
        else:
            store.close()

    return store, close


@pytest.fixture
def store(store_config: dict[str, Any], clock: Any) -> Iterator[Any]:
    """An empty StateStore on each backend (SQL on SQLite, SQL on PostgreSQL, Redis) with ``clock``."""
    built, close = build_store(store_config, clock)
    yield built
    close()


class PrivateRedis:
    """A redis-server of one test only, on a free port and in its own folder, stopped and
    started again at will (an outage, a restart); with ``persistent`` an append-only file
    written at every command, so that what it held survives a restart."""

    def __init__(self, folder: Any, *, persistent: bool = False) -> None:
        with socket.socket() as sock:
            sock.bind((REDIS_HOST, 0))
            self.port = sock.getsockname()[1]
        self.folder = folder
        self.args = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
                     "--bind", REDIS_HOST, "--dir", str(folder), "--save", "",
                     "--appendonly", "yes" if persistent else "no", "--appendfsync", "always"]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: None if _port_open(REDIS_HOST, self.port) else "not listening", 10, "a private redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


if __name__ == "__main__":
    try:
        print("postgres:", ensure_postgres())
        print("redis:", ensure_redis())
    except ServiceUnavailable as exc:
        raise SystemExit(str(exc)) from exc

"""Database access (DESIGN.md §5): engines, sessions, migrations.

SQLite is the embedded default, PostgreSQL (through psycopg 3) the production
database.  The schema is never built with ``create_all``: it is the Alembic
migrations in ``idp/persistence/migrations``, run with :func:`upgrade`, which finds its
scripts through this package's path (no ``alembic.ini`` needed, works from an
installed package and from any working directory).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Several identical processes may start at once against one PostgreSQL
# database: they take this advisory lock so that only one migrates at a time.
_MIGRATION_LOCK_ID = 0x5E5A3E

# How long a SQLite connection waits for another writer before failing.
_SQLITE_BUSY_TIMEOUT_S = 30


def normalize_url(url: str) -> str:
    """Return ``url`` with PostgreSQL URLs pointed at the psycopg 3 driver.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``;
    an explicit driver (``postgresql+psycopg://``) and other databases are
    left as they are.
    """
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _is_memory_sqlite(url: str) -> bool:
    database = make_url(url).database
    return database in (None, "", ":memory:") or "mode=memory" in url


def _create_private_sqlite_file(url: str) -> None:
    """Create the SQLite database file of ``url``, empty and mode 0600, when missing.

    SQLite would create it 0644 (less the umask).  It gives its ``-wal``,
    ``-shm`` and ``-journal`` files the mode of the database file, so creating
    that one private keeps all of them private, without touching the process
    umask (shared by every thread).  An empty file is an empty database.  A
    missing folder is left for SQLite to report; an existing file is left as is.
    """
    database = make_url(url).database
    if not database or database.startswith("file:"):  # URI filenames: SQLite opens them its own way
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except (FileExistsError, FileNotFoundError):
        pass


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with Sésame's connection settings.

    SQLite: a new database file and its ``-wal``/``-shm`` files are mode 0600,
    foreign keys enforced on every connection, WAL journal for file
    databases (readers do not block the writer), connections usable from any
    thread and waiting up to 30 s for a lock.  An in-memory database is one
    connection shared by all (``StaticPool``), so every session sees it.
    PostgreSQL: ``postgresql://`` URLs use psycopg 3.  Extra ``kwargs`` go to
    :func:`sqlalchemy.create_engine`.
    """
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)

    memory = _is_memory_sqlite(url)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", _SQLITE_BUSY_TIMEOUT_S)
    if memory:
        kwargs.setdefault("poolclass", StaticPool)
    else:
        _create_private_sqlite_file(url)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                # With WAL, NORMAL keeps the database consistent on a crash and
                # syncs at checkpoints instead of at every commit (sqlite.org/wal.html).
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return engine


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic configuration for Sésame's migrations, built in code.

    With ``connection``, migrations run on it (inside its transaction);
    otherwise ``env.py`` creates an engine for ``url`` with :func:`make_engine`.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal "%" (in a password) is "%%".
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the latest).

    Idempotent; safe when several processes start together on PostgreSQL
    (they serialize on an advisory lock, the later ones find nothing to do).
    """
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            command.upgrade(alembic_config(connection), revision)
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


class Database:
    """One database: its engine and a session factory.

    ``with db.session() as s:`` commits when the block ends normally and rolls
    back (then re-raises) when it raises.  Objects stay readable after the
    block (``expire_on_commit=False``).
    """

    def __init__(self, url_or_engine: str | Engine, **engine_kwargs: Any) -> None:
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
        else:
            self.engine = make_engine(url_or_engine, **engine_kwargs)
        self.sessionmaker: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: commit on success, rollback on error."""
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def upgrade(self, revision: str = "head") -> None:
        """Run the migrations on this database (see :func:`upgrade`)."""
        upgrade(self.engine, revision)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

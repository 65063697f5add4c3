"""Alembic environment for Sésame (DESIGN.md §5).

Run programmatically by :func:`idp.persistence.db.upgrade`, which hands in an open
connection (``config.attributes["connection"]``); or from the command line,
``alembic -c idp/persistence/migrations/alembic.ini ...``, with the URL taken from
``sqlalchemy.url`` or the ``SESAME_DATABASE_URL`` environment variable.
SQLite runs in batch mode (tables are rebuilt for ALTERs it cannot do).
"""
from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

import idp.persistence.store.sql  # noqa: F401  (registers the state_entry table on the metadata)
from idp.persistence.db import make_engine, normalize_url
from idp.persistence.models import Base

config = context.config
target_metadata = Base.metadata

# Only the command line reads alembic.ini; the application keeps its logging.
if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure(**kwargs: object) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **kwargs)


def _run(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SESAME_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or SESAME_DATABASE_URL")
    return normalize_url(url)


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = _url()
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

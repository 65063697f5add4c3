"""Sésame's own keys and their rollover state (keys/keyring.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "own_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("use", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("key_ref", sa.String(200), nullable=False),
        sa.Column("sealed_key", sa.Text(), nullable=True),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("published_at", _TZ, nullable=True),
        sa.Column("activated_at", _TZ, nullable=True),
        sa.Column("deactivated_at", _TZ, nullable=True),
        sa.Column("retired_at", _TZ, nullable=True),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_own_key"),
        sa.UniqueConstraint("label", name="uq_own_key_label"),
    )
    # One current key per use, enforced by the database (two nodes activating at once).
    op.create_index("uq_own_key_current", "own_key", ["use"], unique=True,
                    sqlite_where=sa.text("state = 'current'"), postgresql_where=sa.text("state = 'current'"))


def downgrade() -> None:
    op.drop_index("uq_own_key_current", table_name="own_key")
    op.drop_table("own_key")

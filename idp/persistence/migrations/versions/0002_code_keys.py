"""Security-code keys: a person's mobile number, a credential's growing counter
(TOTP's last accepted time step) and when it was last changed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("person") as batch:
        batch.add_column(sa.Column("phone", sa.String(16), nullable=True))
    with op.batch_alter_table("credential") as batch:
        batch.add_column(sa.Column("counter", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credential") as batch:
        batch.drop_column("changed_at")
        batch.drop_column("counter")
    with op.batch_alter_table("person") as batch:
        batch.drop_column("phone")

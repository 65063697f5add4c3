"""Registration offices: offices, officers' roles, registrations (by identity
document) and activation codes (stored as HMACs only).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "office",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_office"),
        sa.UniqueConstraint("code", name="uq_office_code"),
    )
    op.create_table(
        "officer_role",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("granted_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_officer_role"),
        sa.ForeignKeyConstraint(["office_id"], ["office.id"], name="fk_officer_role_office_id_office",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name="fk_officer_role_person_id_person",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("office_id", "person_id", name="uq_officer_role_office_person"),
    )
    op.create_index("ix_officer_role_person", "officer_role", ["person_id"])
    op.create_table(
        "registration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("officer_fedid", sa.String(36), nullable=False),
        sa.Column("doc_type", sa.String(16), nullable=False),
        sa.Column("doc_number", sa.String(32), nullable=False),
        sa.Column("doc_country", sa.String(2), nullable=False),
        sa.Column("doc_expiry", sa.Date(), nullable=False),
        sa.Column("nationality", sa.String(2), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("terms_accepted_at", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_registration"),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name="fk_registration_person_id_person",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["office_id"], ["office.id"], name="fk_registration_office_id_office"),
        sa.UniqueConstraint("doc_type", "doc_number", "doc_country", name="uq_registration_document"),
    )
    op.create_index("ix_registration_office", "registration", ["office_id"])
    op.create_index("ix_registration_person", "registration", ["person_id"])
    op.create_table(
        "activation_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registration_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("link_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_by", sa.String(36), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("expires_at", _TZ, nullable=False),
        sa.Column("used_at", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_activation_code"),
        sa.ForeignKeyConstraint(["registration_id"], ["registration.id"],
                                name="fk_activation_code_registration_id_registration", ondelete="CASCADE"),
        sa.UniqueConstraint("link_hash", name="uq_activation_code_link_hash"),
    )
    op.create_index("ix_activation_code_registration", "activation_code", ["registration_id"])


def downgrade() -> None:
    op.drop_index("ix_activation_code_registration", table_name="activation_code")
    op.drop_table("activation_code")
    op.drop_index("ix_registration_person", table_name="registration")
    op.drop_index("ix_registration_office", table_name="registration")
    op.drop_table("registration")
    op.drop_index("ix_officer_role_person", table_name="officer_role")
    op.drop_table("officer_role")
    op.drop_table("office")

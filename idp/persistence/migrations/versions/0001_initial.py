"""Initial schema: people, credentials, portals, audit events, state store.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fedid", sa.String(36), nullable=False),
        sa.Column("nrn", sa.String(11), nullable=True),
        sa.Column("surname", sa.String(200), nullable=False),
        sa.Column("given_name", sa.String(200), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("mail", sa.String(320), nullable=True),
        sa.Column("pref_language", sa.String(2), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_person"),
        sa.UniqueConstraint("fedid", name="uq_person_fedid"),
        sa.UniqueConstraint("nrn", name="uq_person_nrn"),
    )
    op.create_table(
        "credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("username", sa.String(200), nullable=True),
        sa.Column("secret_hash", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("activated_at", _TZ, nullable=True),
        sa.Column("expires_at", _TZ, nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credential"),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name="fk_credential_person_id_person", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("key", "username", name="uq_credential_key_username"),
    )
    op.create_index("ix_credential_person_key", "credential", ["person_id", "key"])
    op.create_table(
        "portal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(1024), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        sa.Column("metadata_source", sa.String(2048), nullable=True),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_portal"),
        sa.UniqueConstraint("entity_id", name="uq_portal_entity_id"),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", _TZ, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("person_fedid", sa.String(36), nullable=True),
        sa.Column("portal", sa.String(1024), nullable=True),
        sa.Column("key", sa.String(32), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(256), nullable=True),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
    )
    op.create_index("ix_audit_event_time", "audit_event", ["time"])
    op.create_index("ix_audit_event_event", "audit_event", ["event"])
    op.create_table(
        "state_entry",
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_state_entry"),
    )
    op.create_index("ix_state_entry_expires_at", "state_entry", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_state_entry_expires_at", table_name="state_entry")
    op.drop_table("state_entry")
    op.drop_index("ix_audit_event_event", table_name="audit_event")
    op.drop_index("ix_audit_event_time", table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_table("portal")
    op.drop_index("ix_credential_person_key", table_name="credential")
    op.drop_table("credential")
    op.drop_table("person")

"""Baseline: consent directives, break-glass grants, the audit trail, its checkpoints, reviews.

The schema as ``create_all`` made it before migrations. A database made by that code has
these tables but no ``alembic_version``: each table is created only where it is missing, so
upgrading such a database adopts it (and adds the checkpoint table a trail from before
archiving lacks) without touching its rows.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("consent_directive"):
        op.create_table(
            "consent_directive",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("nhs_number", sa.String(10), nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("resource", sa.Text(), nullable=False),
            sa.Column("created", UTC_DATETIME, nullable=False),
            sa.Column("updated", UTC_DATETIME, nullable=False),
        )
        op.create_index("ix_consent_directive_nhs_number", "consent_directive", ["nhs_number"])
    if _missing("break_glass_grant"):
        op.create_table(
            "break_glass_grant",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("sub", sa.String(255), nullable=False),
            sa.Column("nhs_number", sa.String(10), nullable=False),
            sa.Column("granted_at", UTC_DATETIME, nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
        )
        op.create_index("ix_break_glass_grant_sub_nhs", "break_glass_grant", ["sub", "nhs_number"])
    if _missing("audit_event"):
        op.create_table(
            "audit_event",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("chain_id", sa.String(64), nullable=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("recorded", UTC_DATETIME, nullable=False),
            sa.Column("patient", sa.String(10), nullable=True),
            sa.Column("agent_sub", sa.String(255), nullable=True),
            sa.Column("agent_org", sa.String(32), nullable=True),
            sa.Column("purpose", sa.String(32), nullable=True),
            sa.Column("outcome", sa.String(2), nullable=False),
            sa.Column("break_glass", sa.Boolean(), nullable=False),
            sa.Column("resource", sa.Text(), nullable=False),
            sa.Column("prev_hash", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.UniqueConstraint("chain_id", "seq", name="uq_audit_event_chain_seq"),
        )
        op.create_index("ix_audit_event_agent_recorded", "audit_event", ["agent_sub", "recorded"])
        op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
        op.create_index("ix_audit_event_patient", "audit_event", ["patient"])
        op.create_index("ix_audit_event_agent_org", "audit_event", ["agent_org"])
        op.create_index("ix_audit_event_break_glass", "audit_event", ["break_glass"])
    if _missing("audit_checkpoint"):
        op.create_table(
            "audit_checkpoint",
            sa.Column("chain_id", sa.String(64), primary_key=True),
            sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("archived_at", UTC_DATETIME, nullable=False),
            sa.Column("manifest_sha256", sa.String(64), nullable=False),
        )
    if _missing("audit_review"):
        op.create_table(
            "audit_review",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("event_id", sa.String(64), nullable=False),
            sa.Column("reviewer_sub", sa.String(255), nullable=False),
            sa.Column("reviewer_org", sa.String(32), nullable=True),
            sa.Column("outcome", sa.String(16), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.Column("reviewed_at", UTC_DATETIME, nullable=False),
        )
        op.create_index("ix_audit_review_event", "audit_review", ["event_id"])


def downgrade() -> None:
    for table in (
        "audit_review",
        "audit_checkpoint",
        "audit_event",
        "break_glass_grant",
        "consent_directive",
    ):
        op.drop_table(table)

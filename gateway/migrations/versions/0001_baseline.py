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

from gateway.migrations.columns import (
    UTC_DATETIME,
    audit_event_columns,
    key,
    nhs_number,
    resource,
    version_key,
)

revision = "0001"
down_revision = None


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("consent_directive"):
        op.create_table(
            "consent_directive",
            key("id", 64),
            nhs_number(),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            resource(),
            sa.Column("created", UTC_DATETIME, nullable=False),
            sa.Column("updated", UTC_DATETIME, nullable=False),
        )
        op.create_index("ix_consent_directive_nhs_number", "consent_directive", ["nhs_number"])
    if _missing("break_glass_grant"):
        op.create_table(
            "break_glass_grant",
            key("id", 36),
            sa.Column("sub", sa.String(255), nullable=False),
            nhs_number(),
            sa.Column("granted_at", UTC_DATETIME, nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
        )
        op.create_index("ix_break_glass_grant_sub_nhs", "break_glass_grant", ["sub", "nhs_number"])
    if _missing("audit_event"):
        op.create_table(
            "audit_event",
            key("id", 64),
            *audit_event_columns(),
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
            key("chain_id", 64),
            version_key("seq"),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("archived_at", UTC_DATETIME, nullable=False),
            sa.Column("manifest_sha256", sa.String(64), nullable=False),
        )
    if _missing("audit_review"):
        op.create_table(
            "audit_review",
            key("id", 64),
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

"""Joint care plans: the current version of each plan, and every version kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.migrations.columns import (
    UTC_DATETIME,
    create_versions_table,
    key,
    nhs_number,
    resource,
)

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "joint_care_plan",
        key("id", 64),
        nhs_number(),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("author_org", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("has_lead", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        resource(),
        sa.Column("created", UTC_DATETIME, nullable=False),
        sa.Column("updated", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_joint_care_plan_nhs_number", "joint_care_plan", ["nhs_number"])
    create_versions_table(
        "joint_care_plan_version", sa.Column("org", sa.String(64), nullable=False)
    )


def downgrade() -> None:
    op.drop_table("joint_care_plan_version")
    op.drop_table("joint_care_plan")

"""Joint care plans: the current version of each plan, and every version kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "joint_care_plan",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("nhs_number", sa.String(10), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("author_org", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("has_lead", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("created", UTC_DATETIME, nullable=False),
        sa.Column("updated", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_joint_care_plan_nhs_number", "joint_care_plan", ["nhs_number"])
    op.create_table(
        "joint_care_plan_version",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("nhs_number", sa.String(10), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("org", sa.String(64), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("recorded", UTC_DATETIME, nullable=False),
    )
    op.create_index(
        "ix_joint_care_plan_version_nhs_number", "joint_care_plan_version", ["nhs_number"]
    )


def downgrade() -> None:
    op.drop_table("joint_care_plan_version")
    op.drop_table("joint_care_plan")

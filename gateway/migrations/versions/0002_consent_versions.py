"""Every version of every Consent directive (``consent_directive_version``).

A Consent stored before this revision has only its current version: ``_history`` reads it
from ``consent_directive`` (the store's own fallback), so nothing is copied here.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_directive_version",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("nhs_number", sa.String(10), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_consent_directive_version_nhs_number", "consent_directive_version", ["nhs_number"]
    )


def downgrade() -> None:
    op.drop_table("consent_directive_version")

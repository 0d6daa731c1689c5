"""Every version of every Consent directive (``consent_directive_version``).

A Consent stored before this revision has only its current version: ``_history`` reads it
from ``consent_directive`` (the store's own fallback), so nothing is copied here.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from gateway.migrations.columns import create_versions_table

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    create_versions_table("consent_directive_version")


def downgrade() -> None:
    op.drop_table("consent_directive_version")

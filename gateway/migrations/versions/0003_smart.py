"""The SMART authorization server's shared state: launch contexts, authorization codes,
pending sign-ins (each stored as the SHA-256 of its secret, used once), client-assertion
``jti``s seen (replay), and revoked access tokens — in the database so every replica sees
every other's.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.migrations.columns import UTC_DATETIME, key

revision = "0003"
down_revision = "0002"

ONE_TIME = ("smart_launch", "smart_code", "smart_pending")


def upgrade() -> None:
    for table in ONE_TIME:
        op.create_table(
            table,
            key("id", 64),
            sa.Column("data", sa.Text(), nullable=False),
            sa.Column("created", UTC_DATETIME, nullable=False),
            sa.Column("expires", UTC_DATETIME, nullable=False),
            sa.Column("used", UTC_DATETIME, nullable=True),
        )
        op.create_index(f"ix_{table}_expires", table, ["expires"])
    op.create_table(
        "smart_jti",
        key("client_id", 64),
        key("jti", 255),
        sa.Column("expires", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_smart_jti_expires", "smart_jti", ["expires"])
    op.create_table(
        "smart_revoked",
        key("jti", 255),
        sa.Column("expires", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_smart_revoked_expires", "smart_revoked", ["expires"])


def downgrade() -> None:
    for table in ("smart_revoked", "smart_jti", *reversed(ONE_TIME)):
        op.drop_table(table)

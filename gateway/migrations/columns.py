"""Column definitions that more than one revision writes, said once.

Frozen, like the revisions themselves: what these build has run on deployed databases, so a
change of schema is a new revision, never an edit here. Each function returns new
``sa.Column`` objects (a column belongs to one table).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

UTC_DATETIME = sa.DateTime(timezone=True)


def key(name: str, length: int) -> sa.Column[Any]:
    """A string primary-key column (an id, a chain id, a ``jti``)."""
    return sa.Column(name, sa.String(length), primary_key=True)


def version_key(name: str = "version") -> sa.Column[Any]:
    """The number part of a versioned row's primary key, never generated."""
    return sa.Column(name, sa.Integer(), primary_key=True, autoincrement=False)


def nhs_number() -> sa.Column[Any]:
    """The NHS number a row is about (ten digits, always given)."""
    return sa.Column("nhs_number", sa.String(10), nullable=False)


def resource() -> sa.Column[Any]:
    """The FHIR resource a row holds, as JSON text."""
    return sa.Column("resource", sa.Text(), nullable=False)


def audit_event_columns() -> list[sa.Column[object]]:
    """``audit_event``'s columns after ``id``, as 0001 made them and 0005 keeps them."""
    return [
        sa.Column("chain_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("recorded", UTC_DATETIME, nullable=False),
        sa.Column("patient", sa.String(10), nullable=True),
        sa.Column("agent_sub", sa.String(255), nullable=True),
        sa.Column("agent_org", sa.String(32), nullable=True),
        sa.Column("purpose", sa.String(32), nullable=True),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        resource(),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    ]


def create_versions_table(name: str, *extra: sa.Column[Any]) -> None:
    """A table keeping every version of a stored resource: keyed by id and version, the
    NHS number it is about (indexed), its status, ``extra`` columns, the resource and when
    that version was recorded (0002's Consent versions, 0004's joint care plan versions)."""
    op.create_table(
        name,
        key("id", 64),
        version_key(),
        nhs_number(),
        sa.Column("status", sa.String(32), nullable=False),
        *extra,
        resource(),
        sa.Column("recorded", UTC_DATETIME, nullable=False),
    )
    op.create_index(f"ix_{name}_nhs_number", name, ["nhs_number"])

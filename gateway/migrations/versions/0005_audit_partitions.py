"""The audit trail at scale: ``audit_event`` partitioned by month on PostgreSQL; the IG
search's indexes (patient, user, organisation each with ``recorded``; break-glass partial).

PostgreSQL: an existing unpartitioned table is converted in this one transaction (writers
wait on its lock meanwhile): renamed aside, the partitioned table made with a partition for
every month its events span plus this month and the next and the default one, every row
copied as stored, the copy compared with the original (row count, and every ``id``,
``chain_id``, ``seq``, ``recorded`` and ``hash``), and only then the original dropped. The
rows keep their bytes, seqs and hashes, so the hash chain verifies as before. A table made
partitioned already (``create_all`` of this code) is left as it is.

Because a partitioned table's unique keys must hold its partition key, the primary key is
``(id, recorded)`` and the chain's ``(chain_id, seq, recorded)``; SQLite's plain table is
rebuilt with the same keys, so both databases have the schema the models declare.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from gateway.migrations.columns import audit_event_columns

revision = "0005"
down_revision = "0004"

COLUMNS = (
    "id, chain_id, seq, recorded, patient, agent_sub, agent_org, purpose, outcome, "
    "break_glass, resource, prev_hash, hash"
)
OLD_INDEXES = {  # 0001's, replaced by the search's composite ones
    "ix_audit_event_patient": ["patient"],
    "ix_audit_event_agent_org": ["agent_org"],
    "ix_audit_event_break_glass": ["break_glass"],
}
NEW_INDEXES = {
    "ix_audit_event_patient_recorded": ["patient", "recorded"],
    "ix_audit_event_agent_org_recorded": ["agent_org", "recorded"],
}
BREAK_GLASS_INDEX = "ix_audit_event_break_glass_recorded"
CHAIN_KEY = "uq_audit_event_chain_seq_recorded"


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(64), nullable=False),
        *audit_event_columns(),
    ]


def _month(when: datetime) -> datetime:
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def _after(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _literal(instant: datetime) -> str:
    return instant.strftime("'%Y-%m-%d %H:%M:%S+00'")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partition_postgresql()
    else:
        _rebuild_sqlite()


def _search_indexes(break_glass_where: sa.TextClause) -> None:
    for name, columns in NEW_INDEXES.items():
        op.create_index(name, "audit_event", columns)
    op.create_index(
        BREAK_GLASS_INDEX,
        "audit_event",
        ["recorded"],
        postgresql_where=break_glass_where,
        sqlite_where=break_glass_where,
    )


def _partition_postgresql() -> None:
    bind = op.get_bind()
    kind = "SELECT relkind::text FROM pg_class WHERE oid = 'audit_event'::regclass"
    if bind.execute(sa.text(kind)).scalar() == "p":
        return
    op.execute("LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE audit_event RENAME TO audit_event_unpartitioned")
    # Index and constraint names are one namespace per schema: free the old ones.
    constraints = bind.execute(
        sa.text(
            "SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'audit_event_unpartitioned'::regclass AND contype IN ('p', 'u')"
        )
    ).scalars()
    for name in list(constraints):
        op.execute(
            f'ALTER TABLE audit_event_unpartitioned RENAME CONSTRAINT "{name}" '
            f'TO "{name[:40]}_unpartitioned"'
        )
    indexes = bind.execute(
        sa.text(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'audit_event_unpartitioned'::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        )
    ).scalars()
    for name in list(indexes):
        op.execute(f'DROP INDEX "{name}"')

    op.create_table(
        "audit_event",
        *_columns(),
        sa.PrimaryKeyConstraint("id", "recorded", name="audit_event_pkey"),
        sa.UniqueConstraint("chain_id", "seq", "recorded", name=CHAIN_KEY),
        postgresql_partition_by="RANGE (recorded)",
    )
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_agent_recorded", "audit_event", ["agent_sub", "recorded"])
    _search_indexes(sa.text("break_glass"))

    span = bind.execute(
        sa.text("SELECT min(recorded), max(recorded) FROM audit_event_unpartitioned")
    ).one()
    now = _month(datetime.now(UTC))
    first = _month(span[0]) if span[0] is not None else now
    last = max(_month(span[1]), _after(now)) if span[1] is not None else _after(now)
    month = min(first, now)
    while month <= last:
        op.execute(
            f"CREATE TABLE audit_event_{month.year:04d}_{month.month:02d} PARTITION OF "
            f"audit_event FOR VALUES FROM ({_literal(month)}) TO ({_literal(_after(month))})"
        )
        month = _after(month)
    op.execute("CREATE TABLE audit_event_default PARTITION OF audit_event DEFAULT")

    op.execute(
        f"INSERT INTO audit_event ({COLUMNS}) SELECT {COLUMNS} FROM audit_event_unpartitioned"
    )
    before = bind.execute(sa.text("SELECT count(*) FROM audit_event_unpartitioned")).scalar()
    after = bind.execute(sa.text("SELECT count(*) FROM audit_event")).scalar()
    keys = "id, chain_id, seq, recorded, hash"
    differing = bind.execute(
        sa.text(
            f"SELECT count(*) FROM ((SELECT {keys} FROM audit_event_unpartitioned EXCEPT "
            f"SELECT {keys} FROM audit_event) UNION ALL (SELECT {keys} FROM audit_event "
            f"EXCEPT SELECT {keys} FROM audit_event_unpartitioned)) AS d"
        )
    ).scalar()
    if before != after or differing:
        raise RuntimeError(
            f"audit_event: the partitioned copy does not match ({before} rows before, {after} "
            f"after, {differing} differing); nothing was changed"
        )
    op.drop_table("audit_event_unpartitioned")


def _rebuild_sqlite() -> None:
    inspector = sa.inspect(op.get_bind())
    uniques = {u["name"] for u in inspector.get_unique_constraints("audit_event")}
    if "uq_audit_event_chain_seq" not in uniques:
        return  # made with these keys already (``create_all`` of this code)
    _copy_sqlite(
        sa.PrimaryKeyConstraint("id", "recorded"),
        sa.UniqueConstraint("chain_id", "seq", "recorded", name=CHAIN_KEY),
    )
    _search_indexes(sa.text("break_glass"))


def _copy_sqlite(*keys: sa.Constraint) -> None:
    """SQLite cannot change a table's keys: make the new table, copy, swap (one transaction)."""
    op.create_table("audit_event_rebuilt", *_columns(), *keys)
    op.execute(f"INSERT INTO audit_event_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM audit_event")
    op.drop_table("audit_event")  # and its indexes
    op.rename_table("audit_event_rebuilt", "audit_event")
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_agent_recorded", "audit_event", ["agent_sub", "recorded"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_postgresql()
        return
    _copy_sqlite(
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "seq", name="uq_audit_event_chain_seq"),
    )
    for name, columns in OLD_INDEXES.items():
        op.create_index(name, "audit_event", columns)


def _unpartition_postgresql() -> None:
    op.execute("LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE")
    for name in (
        "ix_audit_event_recorded",
        "ix_audit_event_agent_recorded",
        *NEW_INDEXES,
        BREAK_GLASS_INDEX,
    ):
        op.drop_index(name, "audit_event")
    op.execute("ALTER TABLE audit_event RENAME CONSTRAINT audit_event_pkey TO audit_event_pkey_p")
    op.execute("ALTER TABLE audit_event RENAME TO audit_event_partitioned")
    op.create_table(
        "audit_event",
        *_columns(),
        sa.PrimaryKeyConstraint("id", name="audit_event_pkey"),
        sa.UniqueConstraint("chain_id", "seq", name="uq_audit_event_chain_seq"),
    )
    op.execute(f"INSERT INTO audit_event ({COLUMNS}) SELECT {COLUMNS} FROM audit_event_partitioned")
    op.execute("DROP TABLE audit_event_partitioned CASCADE")
    op.create_index("ix_audit_event_agent_recorded", "audit_event", ["agent_sub", "recorded"])
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    for name, columns in OLD_INDEXES.items():
        op.create_index(name, "audit_event", columns)

"""The audit trail's rows: tables ``audit_event`` and ``audit_checkpoint``, the exact bytes
an event is stored and hashed as, and the checks a row must pass (its width, its link).

Shared by the writer (:mod:`gateway.audit.writer`), the store's reading and verifying
(:mod:`gateway.audit.store`) and the archive (:mod:`gateway.audit.archive`). Importing this
module registers the tables on :class:`gateway.db.Base`.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

import orjson
from sqlalchemy import (
    DDL,
    Boolean,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from gateway.audit import events as ev
from gateway.audit.errors import AuditEventRejected
from gateway.db import Base, UTCDateTime

GENESIS_HASH: Final = "0" * 64
DEFAULT_CHAIN: Final = "main"
MAX_EVENT_BYTES: Final = 1024 * 1024  # one stored event; the gateway's are far smaller


class AuditEventRow(Base):
    """One stored AuditEvent; ``resource`` holds the exact hashed bytes (UTF-8 JSON).

    On PostgreSQL the table is partitioned by month on ``recorded`` (declarative RANGE
    partitioning; :mod:`gateway.audit.partitions` keeps the partitions), so the primary key
    and the chain's uniqueness include ``recorded``: a partitioned table can only enforce a
    unique key that holds the partition key. That ``seq`` is not taken twice on a chain is
    the writers' lock's job (PostgreSQL: an advisory lock per chain; SQLite: the database
    write lock), and :meth:`~gateway.audit.AuditStore.verify` names a seq stored twice. SQLite
    keeps one plain table with the same columns, keys and indexes.

    The indexes are the IG search's (``GET /fhir/AuditEvent``, newest first): each filter
    that narrows a search on its own (patient, user, organisation, break-glass) leads an
    index whose second column is ``recorded``, so a date range and the newest-first order
    come from the same index; a date range alone uses ``recorded``. Outcome and purpose only
    ever narrow what those select, so they have no index of their own.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("chain_id", "seq", "recorded", name="uq_audit_event_chain_seq_recorded"),
        Index("ix_audit_event_patient_recorded", "patient", "recorded"),
        Index("ix_audit_event_agent_recorded", "agent_sub", "recorded"),
        Index("ix_audit_event_agent_org_recorded", "agent_org", "recorded"),
        Index(
            "ix_audit_event_break_glass_recorded",
            "recorded",
            postgresql_where=text("break_glass"),
            sqlite_where=text("break_glass"),
        ),
        {"postgresql_partition_by": "RANGE (recorded)"},
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    recorded: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True, index=True)
    patient: Mapped[str | None] = mapped_column(String(10))
    agent_sub: Mapped[str | None] = mapped_column(String(255))
    agent_org: Mapped[str | None] = mapped_column(String(32))
    purpose: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(2))
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    resource: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


audit_event = cast(Table, AuditEventRow.__table__)

# A partitioned table holds no rows itself: a table made by ``create_all`` (tests of one
# store) gets the default partition at once, so inserts work before any month exists.
event.listen(
    audit_event,
    "after_create",
    DDL(  # type: ignore[no-untyped-call]
        "CREATE TABLE IF NOT EXISTS audit_event_default PARTITION OF audit_event DEFAULT"
    ).execute_if(dialect="postgresql"),
)


class AuditCheckpointRow(Base):
    """Where a chain resumes after its oldest events were archived and removed.

    One row per archive step: the last removed ``seq`` and its ``hash`` (the next stored row's
    ``prev_hash``), and the SHA-256 of the archive manifest that holds the removed events.
    The newest row per chain (highest ``seq``) is where verification starts.
    """

    __tablename__ = "audit_checkpoint"

    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime)
    manifest_sha256: Mapped[str] = mapped_column(String(64))


audit_checkpoint = cast(Table, AuditCheckpointRow.__table__)


async def has_checkpoints(conn: AsyncConnection) -> bool:
    """Whether the database has the checkpoint table (a trail from before archiving may not;
    reading must not create it: ``verify`` may run against a read-only replica)."""
    return bool(await conn.run_sync(lambda c: inspect(c).has_table(audit_checkpoint.name)))


async def chain_start(
    conn: AsyncConnection, chain_id: str, *, archived: bool = True
) -> tuple[int, str]:
    """``(seq, hash)`` a chain's first stored row follows: its newest checkpoint, or genesis.

    ``archived=False`` when the checkpoint table does not exist (see :func:`has_checkpoints`).
    """
    if not archived:
        return 0, GENESIS_HASH
    row = (
        await conn.execute(
            select(audit_checkpoint.c.seq, audit_checkpoint.c.hash)
            .where(audit_checkpoint.c.chain_id == chain_id)
            .order_by(audit_checkpoint.c.seq.desc())
            .limit(1)
        )
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS_HASH)


def canonical_bytes(event: dict[str, Any]) -> bytes:
    """The bytes stored and hashed for ``event``: orjson, keys sorted, no whitespace."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def link_hash(prev_hash: str, stored: bytes) -> str:
    """``SHA-256(prev_hash || stored bytes)`` as lowercase hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + stored).hexdigest()


@dataclass(frozen=True, slots=True)
class Prepared:
    """An event ready to insert, minus the chain fields the writer fills in."""

    id: str
    recorded: datetime
    stored: bytes
    columns: dict[str, Any]


def _parse_recorded(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("AuditEvent.recorded is required")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("AuditEvent.recorded must carry a timezone")
    return parsed


def index_columns(event: dict[str, Any]) -> dict[str, Any]:
    """The searchable columns, derived from the event itself (verify re-derives them)."""
    return {
        "recorded": _parse_recorded(event.get("recorded")),
        "patient": ev.event_patient(event),
        "agent_sub": ev.event_agent_sub(event),
        "agent_org": ev.event_agent_org(event),
        "purpose": ev.event_purpose(event),
        "outcome": str(event.get("outcome", "")),
        "break_glass": ev.event_break_glass(event),
    }


def _column_widths() -> dict[str, int]:
    widths: dict[str, int] = {}
    for column in audit_event.columns:
        length = getattr(column.type, "length", None)
        if isinstance(length, int):
            widths[column.name] = length
    return widths


_WIDTHS: Final = _column_widths()


def check_fits(event_id: str, columns: dict[str, Any], stored: bytes) -> None:
    """Refuse an event that its row could not hold (:class:`AuditEventRejected`).

    PostgreSQL enforces ``VARCHAR(n)``; one value too long fails the insert and with it the
    whole batch, so the check runs before the event is queued. The message names the field,
    never its value.
    """
    if len(event_id) > _WIDTHS["id"]:
        raise AuditEventRejected("id")
    for name, value in columns.items():
        width = _WIDTHS.get(name)
        if width is not None and isinstance(value, str) and len(value) > width:
            raise AuditEventRejected(name)
    if len(stored) > MAX_EVENT_BYTES:
        raise AuditEventRejected("size")


def prepare(event: dict[str, Any]) -> Prepared:
    """Check, serialise and index one event (in the caller's task, before it is queued)."""
    if event.get("resourceType") != "AuditEvent":
        raise ValueError("only AuditEvent resources go into the audit store")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        event = {**event, "id": str(uuid.uuid4())}
        event_id = event["id"]
    columns = index_columns(event)
    stored = canonical_bytes(event)
    check_fits(event_id, columns, stored)
    return Prepared(event_id, columns["recorded"], stored, columns)


async def chain_page(
    conn: AsyncConnection, chain: str, from_seq: int, limit: int
) -> list[RowMapping]:
    """Up to ``limit`` whole rows of ``chain`` from ``from_seq`` on, in ``seq`` order."""
    query = (
        select(*audit_event.c)
        .where(audit_event.c.chain_id == chain, audit_event.c.seq >= from_seq)
        .order_by(audit_event.c.seq)
        .limit(limit)
    )
    return list((await conn.execute(query)).mappings())


async def chain_ids(conn: AsyncConnection, *, archived: bool = True) -> list[str]:
    """Every chain with stored events or (``archived``) a checkpoint, in name order."""
    found = set((await conn.execute(select(audit_event.c.chain_id).distinct())).scalars())
    if archived:
        query = select(audit_checkpoint.c.chain_id).distinct()
        found |= set((await conn.execute(query)).scalars())
    return sorted(found)


def chain_lock_key(chain_id: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory lock on one chain."""
    digest = hashlib.sha256(b"caregateway-audit-chain:" + chain_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def loads_event(stored: str | bytes) -> dict[str, Any]:
    value = orjson.loads(stored)
    if not isinstance(value, dict):
        raise ValueError("stored audit event is not a JSON object")
    return value


def check_row(row: Any, expected_seq: int, prev: str) -> str | None:
    """Why ``row`` breaks the chain, or None. ``"missing"`` means a seq gap."""
    if row["seq"] < expected_seq:
        return f"seq {row['seq']} is stored twice"
    if row["seq"] != expected_seq:
        return "missing"
    if row["prev_hash"] != prev:
        return "prev_hash does not match the previous event's hash"
    stored = row["resource"]
    stored_bytes = stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)
    if link_hash(prev, stored_bytes) != row["hash"]:
        return "hash does not match the stored event"
    try:
        event = loads_event(stored_bytes)
        columns = index_columns(event)
    except (ValueError, orjson.JSONDecodeError):
        return "stored event is not a readable AuditEvent"
    if event.get("id") != row["id"]:
        return "row id does not match the stored event"
    for name, value in columns.items():
        if row[name] != value:
            return f"column {name} does not match the stored event"
    return None

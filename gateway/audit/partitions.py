"""The audit trail's monthly partitions on PostgreSQL.

``audit_event`` on PostgreSQL is partitioned by RANGE on ``recorded``, one partition per
calendar month (UTC), named ``audit_event_YYYY_MM``, plus ``audit_event_default`` for any
event whose month has no partition yet. A search bounded by date then reads only the months
it covers (partition pruning), and a month past retention leaves the database by dropping
its partition after it was archived (:mod:`gateway.audit.archive`), not by deleting rows.

Partitions are made ahead of time by the gateway itself, so no scheduled job is needed:
``serve`` makes this month's and next month's on start (:func:`ensure_current`), and the
audit writer makes the month after next when a new month begins (:class:`PartitionKeeper`,
in the background: a commit never waits for it). Replicas doing this at once take turns on
an advisory lock, and a partition that exists is left alone. If one still could not be made
(a lock held too long), events of that month go to the default partition and are moved into
their month's partition when it is made (:func:`ensure_partitions` moves them and attaches
the partition in one transaction).

SQLite has one plain table; every function here does nothing there.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db import describe_db_error

log = structlog.get_logger("gateway.audit.partitions")

PARENT: Final = "audit_event"
DEFAULT_PARTITION: Final = "audit_event_default"
_NAME: Final = re.compile(r"^audit_event_(\d{4})_(\d{2})$")
_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")
LOCK_TIMEOUT: Final = "5s"  # how long partition DDL waits for a lock before giving up
_RETRY_S: Final = 60.0
_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"caregateway-audit-partitions").digest()[:8], "big", signed=True
)


def month_start(when: datetime) -> datetime:
    """The first instant (UTC) of ``when``'s month."""
    utc = when.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    """The first instant of the month after the one ``month`` starts."""
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def parse_month(value: str) -> datetime:
    """``YYYY-MM`` (as ``--partition`` takes it) → the month's first instant, UTC."""
    found = _MONTH.match(value.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise ValueError(f"--partition: expected a month as YYYY-MM, got {value!r}")
    return datetime(int(found.group(1)), int(found.group(2)), 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{PARENT}_{month.year:04d}_{month.month:02d}"


def months_between(first: datetime, last: datetime) -> list[datetime]:
    """Every month from ``first``'s to ``last``'s, inclusive."""
    month, end, out = month_start(first), month_start(last), []
    while month <= end:
        out.append(month)
        month = next_month(month)
    return out


def is_audit_partition(table: str) -> bool:
    """Whether ``table`` is one of ``audit_event``'s partitions (by the names made here)."""
    return table == DEFAULT_PARTITION or _NAME.match(table) is not None


def _literal(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("'%Y-%m-%d %H:%M:%S+00'")


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of ``audit_event``: a month's (``month`` set) or the default one."""

    name: str
    month: datetime | None


async def is_partitioned(conn: AsyncConnection) -> bool:
    """Whether ``audit_event`` is a partitioned table here (never on SQLite)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = await conn.scalar(
        text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:name)"), {"name": PARENT}
    )
    return bool(kind == "p")


async def partitions(conn: AsyncConnection) -> list[Partition]:
    """The partitions of ``audit_event``, months in order, the default one last."""
    if not await is_partitioned(conn):
        return []
    names = (
        await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass(:name)"
            ),
            {"name": PARENT},
        )
    ).scalars()
    months: list[Partition] = []
    others: list[Partition] = []
    for name in names:
        found = _NAME.match(name)
        if found is None:
            others.append(Partition(name, None))
        else:
            month = datetime(int(found.group(1)), int(found.group(2)), 1, tzinfo=UTC)
            months.append(Partition(name, month))
    months.sort(key=lambda p: p.month or datetime.min.replace(tzinfo=UTC))
    return months + sorted(others, key=lambda p: p.name)


async def ensure_partitions(conn: AsyncConnection, months: Iterable[datetime]) -> list[str]:
    """Make the partitions of ``months`` that do not exist; the names made.

    Runs in the caller's transaction. Events of such a month that are waiting in the default
    partition are moved into the new one before it is attached (PostgreSQL refuses to attach
    a range the default partition holds rows of). Waits at most :data:`LOCK_TIMEOUT` for a
    lock, then fails (the transaction must be rolled back; nothing is half-made).
    """
    if not await is_partitioned(conn):
        return []
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await conn.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
    existing = {p.name for p in await partitions(conn)}
    made: list[str] = []
    for month in sorted({month_start(m) for m in months}):
        name = partition_name(month)
        if name in existing:
            continue
        low, high = _literal(month), _literal(next_month(month))
        await conn.execute(
            text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        )
        if DEFAULT_PARTITION in existing:
            await conn.execute(
                text(
                    f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE recorded >= {low} "
                    f"AND recorded < {high} RETURNING *) INSERT INTO {name} SELECT * FROM moved"
                )
            )
        await conn.execute(
            text(
                f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"
            )
        )
        existing.add(name)
        made.append(name)
    return made


async def ensure_current(engine: AsyncEngine, now: datetime | None = None) -> list[str]:
    """Make this month's and next month's partitions if missing (``serve`` on start).

    A failure is logged and swallowed: events then go to the default partition, and the
    writer tries again (:class:`PartitionKeeper`).
    """
    if engine.dialect.name != "postgresql":
        return []
    month = month_start(now or datetime.now(UTC))
    try:
        async with engine.begin() as conn:
            made = await ensure_partitions(conn, [month, next_month(month)])
    except Exception as exc:  # never stops the gateway: the default partition catches events
        log.warning("audit_partitions_not_made", **describe_db_error(exc))
        return []
    if made:
        log.info("audit_partitions_made", partitions=made)
    return made


class PartitionKeeper:
    """Keeps next month's partition ahead of a long-running writer.

    :meth:`check` is called on every commit and costs a comparison: once per calendar month
    (per process) it starts :func:`ensure_current` as a background task, so the month after
    the new one exists before its first event. A failed attempt is retried after a minute.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._done_for: datetime | None = None
        self._next_try = 0.0
        self._task: asyncio.Task[None] | None = None

    def check(self) -> None:
        if not self._postgres:
            return
        month = month_start(datetime.now(UTC))
        if month == self._done_for or (self._task is not None and not self._task.done()):
            return
        if time.monotonic() < self._next_try:
            return
        self._task = asyncio.create_task(self._ensure(month), name="audit-partitions")

    async def _ensure(self, month: datetime) -> None:
        try:
            async with self._engine.begin() as conn:
                made = await ensure_partitions(conn, [month, next_month(month)])
        except Exception as exc:
            self._next_try = time.monotonic() + _RETRY_S
            log.warning("audit_partitions_not_made", **describe_db_error(exc))
            return
        self._done_for = month
        if made:
            log.info("audit_partitions_made", partitions=made)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

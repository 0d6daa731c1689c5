"""Export and archive the audit trail one calendar month (one PostgreSQL partition) at a time.

``caregateway audit export --partition 2026-11`` writes the month's events as an archive
(:mod:`gateway.audit.archive`'s format) and changes nothing; ``audit archive --partition
2026-11`` writes it, re-reads and verifies it, and then removes the month from the database:
on a partitioned PostgreSQL table by detaching and dropping the month's partition (no row by
row delete, no bloat), elsewhere (SQLite) by deleting the rows as ``--before`` does.

A month is a run of each chain, not only the rows recorded in it: ``seq`` is given when an
event is committed and ``recorded`` when it was made, so around midnight at a month's end an
event of one month can follow one of the next in the chain. The month's run of a chain is
from its first to its last seq recorded in the month, and so also holds the few events of
the neighbouring month that fall between (they leave with it: deleted as rows, from the next
month's partition). Archiving a month keeps the chain a prefix: it must be the oldest month
still stored, and the whole month must be past ``CAREGW_AUDIT_RETENTION_DAYS``. An unreviewed
break-glass event in the month holds the archive back at that event, as ``--before`` does;
the month's partition is then kept, with the events from that one on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit.archive import ArchiveError, ArchiveResult, Segment, archive_events
from gateway.audit.partitions import (
    PARENT,
    is_partitioned,
    month_start,
    next_month,
    partition_name,
    partitions,
)
from gateway.audit.rows import audit_checkpoint, audit_event, chain_lock_key, chain_start
from gateway.audit_review import audit_review

DETACH_LOCK_TIMEOUT = "10s"


async def month_runs(conn: AsyncConnection, month: datetime) -> dict[str, tuple[int, int]]:
    """Per chain, the first and last seq of the events recorded in ``month``."""
    low, high = month_start(month), next_month(month_start(month))
    rows = await conn.execute(
        select(audit_event.c.chain_id, func.min(audit_event.c.seq), func.max(audit_event.c.seq))
        .where(audit_event.c.recorded >= low, audit_event.c.recorded < high)
        .group_by(audit_event.c.chain_id)
    )
    return {str(chain): (int(first), int(last)) for chain, first, last in rows}


@dataclass(frozen=True, slots=True)
class DropPartition:
    """Remove an archived month by dropping its partition (one transaction)."""

    name: str
    month: datetime

    async def __call__(
        self, engine: AsyncEngine, segments: Sequence[Segment], manifest_sha: str, now: datetime
    ) -> int:
        async with engine.begin() as conn:
            await conn.execute(text(f"SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}'"))
            for segment in sorted(segments, key=lambda s: s.chain_id):
                await conn.execute(
                    select(func.pg_advisory_xact_lock(chain_lock_key(segment.chain_id)))
                )
            await _check_unchanged(conn, segments)
            taken = {s.chain_id: s for s in segments}
            in_partition = await conn.execute(
                text(f"SELECT chain_id, count(*), max(seq) FROM {self.name} GROUP BY chain_id")
            )
            stored = 0
            for chain, count, last in in_partition:
                archived = taken.get(chain)
                if archived is None or int(last) > archived.last_seq:
                    raise ArchiveError(
                        f"{self.name} holds events of chain {chain} after the archived ones; "
                        "nothing removed"
                    )
                stored += int(count)
            removed = stored
            for segment in segments:
                run = (
                    audit_event.c.chain_id == segment.chain_id,
                    audit_event.c.seq >= segment.first_seq,
                    audit_event.c.seq <= segment.last_seq,
                )
                await conn.execute(
                    delete(audit_review).where(
                        audit_review.c.event_id.in_(select(audit_event.c.id).where(*run))
                    )
                )
                # The run's events stored elsewhere: the next month's first few (committed
                # before the month's last ones) and any that waited in the default partition.
                outside = delete(audit_event).where(
                    *run, text(f"audit_event.tableoid <> '{self.name}'::regclass")
                )
                removed += (await conn.execute(outside)).rowcount
                await conn.execute(
                    insert(audit_checkpoint).values(
                        chain_id=segment.chain_id,
                        seq=segment.last_seq,
                        hash=segment.last_hash,
                        archived_at=now,
                        manifest_sha256=manifest_sha,
                    )
                )
            expected = sum(s.count for s in segments)
            if removed != expected:
                raise ArchiveError(
                    f"{self.name}: expected to remove {expected} events, found {removed}; "
                    "rolled back"
                )
            await conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {self.name}"))
            await conn.execute(text(f"DROP TABLE {self.name}"))
        return removed


async def _check_unchanged(conn: AsyncConnection, segments: Sequence[Segment]) -> None:
    """The chains still start where the archive does and hold its last events unchanged."""
    for segment in segments:
        start_seq, _ = await chain_start(conn, segment.chain_id)
        last = await conn.scalar(
            select(audit_event.c.hash).where(
                audit_event.c.chain_id == segment.chain_id,
                audit_event.c.seq == segment.last_seq,
            )
        )
        if start_seq != segment.first_seq - 1 or last != segment.last_hash:
            raise ArchiveError(
                f"chain {segment.chain_id} changed while archiving; the archive is kept, "
                "nothing removed, run again"
            )


async def archive_month(
    engine: AsyncEngine,
    out_dir: Path | None,
    *,
    month: datetime,
    remove: bool,
    include_unreviewed: bool = False,
    retention_days: int | None = None,
    now: datetime | None = None,
) -> ArchiveResult:
    """Export (``remove=False``) or archive (``remove=True``) the events of ``month``."""
    month = month_start(month)
    end = next_month(month)
    async with engine.connect() as conn:
        runs = await month_runs(conn, month)
        oldest = await conn.scalar(select(func.min(audit_event.c.recorded)))
        partitioned = await is_partitioned(conn)
        names = {p.name for p in await partitions(conn)}
    label = f"{month:%Y-%m}"
    if remove and oldest is not None and oldest < month:
        raise ArchiveError(
            f"events from {oldest.astimezone(UTC):%Y-%m} are still in the database: archive "
            f"that month first (--partition {oldest.astimezone(UTC):%Y-%m}); {label} is not "
            "the oldest"
        )
    if remove:  # a prefix of each chain: from where it starts now
        runs = {chain: (0, last) for chain, (_, last) in runs.items()}
    name = partition_name(month)
    drop = DropPartition(name, month) if remove and partitioned and name in names else None
    result = await archive_events(
        engine,
        out_dir,
        before=end,
        remove=remove,
        include_unreviewed=include_unreviewed or not remove,  # an export removes nothing
        retention_days=retention_days,
        now=now,
        seq_ranges=runs,
        drop=drop,
    )
    if drop is not None and result.path is None and remove and out_dir is not None:
        # Nothing recorded in the month: its empty partition can go as well.
        async with engine.begin() as conn:
            count = await conn.scalar(text(f"SELECT count(*) FROM {name}"))
            if count == 0:
                await conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {name}"))
                await conn.execute(text(f"DROP TABLE {name}"))
                return ArchiveResult(
                    path=None,
                    cutoff=end,
                    segments=(),
                    reviews=0,
                    removed=0,
                    dropped_partition=name,
                )
    return result

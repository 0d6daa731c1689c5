"""Export and archive old audit events, keeping the hash chain checkable end to end.

``CAREGW_AUDIT_RETENTION_DAYS`` says how long events stay in the database. Older events are
moved, oldest first, into an **archive**: a directory an IG lead can keep on write-once
storage, read with any FHIR tool, and check without the database (its files and their
checks: :mod:`gateway.audit.archive_files`).

:func:`archive_events` with ``remove=True`` (``caregateway audit archive``) removes an event
from the database only after its archive is written, flushed to disk, renamed into place and
re-read and verified; each removal transaction also records a checkpoint (last removed seq
and hash), so :meth:`AuditStore.verify` continues the chain from there and the writer links
new events onto it. Removal is always a prefix of the chain (the chain stays whole), never
reaches events younger than the retention period, and stops before a break-glass event that
no IG lead has reviewed yet (unless told otherwise), because archiving it would take it off
the review queue. ``remove=False`` (``caregateway audit export``) writes the same archive and
changes nothing. A month at a time (one partition): :mod:`gateway.audit.monthly`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit.archive_files import (
    ARCHIVE_FORMAT,
    ArchiveWriter,
    Segment,
    as_bytes,
    discard,
    fsync_dir,
    verify_archive,
)
from gateway.audit.reviews import audit_review, reviewed_among, reviews_of
from gateway.audit.rows import (
    audit_checkpoint,
    audit_event,
    chain_ids,
    chain_lock_key,
    chain_page,
    chain_start,
    check_row,
    has_checkpoints,
)

REMOVE_CHUNK: Final = 5000  # events removed per transaction (each moves the checkpoint)
_PAGE: Final = 1000


class ArchiveError(Exception):
    """The archive cannot be made (bad arguments, target exists, unwritable); nothing removed."""


class ChainBrokenError(ArchiveError):
    """The chain is broken inside the range to archive; nothing written, nothing removed."""


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """What :func:`archive_events` did."""

    path: Path | None  # None when nothing was old enough (or a dry run)
    cutoff: datetime
    segments: tuple[Segment, ...]
    reviews: int
    removed: int
    held_back: tuple[str, ...] = ()  # why a chain's archiving stopped before the cutoff
    dropped_partition: str | None = None  # PostgreSQL: the month's partition, dropped whole

    @property
    def events(self) -> int:
        return sum(s.count for s in self.segments)


def retention_cutoff(retention_days: int, now: datetime | None = None) -> datetime:
    """The instant before which events are past retention."""
    if retention_days < 1:
        raise ArchiveError("CAREGW_AUDIT_RETENTION_DAYS must be at least 1")
    return (now or datetime.now(UTC)) - timedelta(days=retention_days)


@dataclass(slots=True)
class _Scan:
    """One chain's rows due for archiving, checked link by link as they are read."""

    segments: list[Segment] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)
    reviews: int = 0
    boundaries: dict[tuple[str, int], str] = field(default_factory=dict)  # removal chunk ends


async def _scan_chain(
    conn: AsyncConnection,
    chain: str,
    *,
    before: datetime,
    include_unreviewed: bool,
    writer: ArchiveWriter | None,
    scan: _Scan,
    seq_range: tuple[int, int] | None = None,
) -> None:
    """Read ``chain`` from its start (or ``seq_range``'s first seq) up to the first event
    recorded at or after ``before`` (or through ``seq_range``'s last seq)."""
    start_seq, prev = await chain_start(conn, chain)
    if seq_range is not None and seq_range[0] - 1 > start_seq:
        start_seq = seq_range[0] - 1  # an export from the middle of the chain
        link = await conn.scalar(
            select(audit_event.c.hash).where(
                audit_event.c.chain_id == chain, audit_event.c.seq == start_seq
            )
        )
        if link is None:
            raise ChainBrokenError(
                f"chain {chain} is broken at seq {start_seq}: missing; "
                "run `caregateway audit verify`; nothing was archived"
            )
        prev = str(link)
    first_prev, expected = prev, start_seq + 1
    done = False
    while not done:
        rows = await chain_page(conn, chain, expected, _PAGE)
        if not rows:
            break
        reviewed = await reviewed_among(conn, [r["id"] for r in rows if r["break_glass"]])
        taken: list[RowMapping] = []
        for row in rows:
            past = row["seq"] > seq_range[1] if seq_range else row["recorded"] >= before
            if past:
                done = True
                break
            if row["break_glass"] and row["id"] not in reviewed and not include_unreviewed:
                scan.held_back.append(
                    f"chain {chain}: break-glass event {row['id']} (seq {row['seq']}) has no "
                    "review yet; review it, then archive again"
                )
                done = True
                break
            reason = check_row(row, expected, prev)
            if reason is not None:
                raise ChainBrokenError(
                    f"chain {chain} is broken at seq {expected}: {reason}; "
                    "run `caregateway audit verify`; nothing was archived"
                )
            taken.append(row)
            prev = row["hash"]
            if (expected - start_seq) % REMOVE_CHUNK == 0:
                scan.boundaries[(chain, expected)] = prev
            expected += 1
        if writer is not None and taken:
            for row in taken:
                writer.event(as_bytes(row["resource"]))
            for review in await reviews_of(conn, [r["id"] for r in taken]):
                writer.review(review)
                scan.reviews += 1
    if expected - 1 > start_seq:
        scan.boundaries[(chain, expected - 1)] = prev
        scan.segments.append(Segment(chain, start_seq + 1, expected - 1, first_prev, prev))


class PartitionDrop(Protocol):
    """Removes an archived month by dropping its partition (:mod:`gateway.audit.monthly`)."""

    @property
    def name(self) -> str: ...

    async def __call__(
        self, engine: AsyncEngine, segments: Sequence[Segment], manifest_sha: str, now: datetime
    ) -> int: ...


async def archive_events(
    engine: AsyncEngine,
    out_dir: Path | None,
    *,
    before: datetime,
    remove: bool,
    include_unreviewed: bool = False,
    retention_days: int | None = None,
    now: datetime | None = None,
    seq_ranges: Mapping[str, tuple[int, int]] | None = None,
    drop: PartitionDrop | None = None,
) -> ArchiveResult:
    """Archive every chain's events recorded before ``before`` into ``out_dir``.

    ``out_dir`` must not exist (an archive is never overwritten or merged); ``None`` is a dry
    run that checks and counts but writes and removes nothing. With ``remove``, archived
    events leave the database; see the module docstring for the order of steps.
    ``seq_ranges`` (a month: :mod:`gateway.audit.monthly`) takes, per chain named, the run of
    seqs given instead of everything before ``before``; with ``drop``, a removal that took
    every chain's run whole (nothing held back) drops the month's partition instead of
    deleting rows in chunks.
    """
    if before.tzinfo is None:
        raise ArchiveError("the cut-off must carry a timezone")
    now = now or datetime.now(UTC)
    if remove and retention_days is not None and before > retention_cutoff(retention_days, now):
        raise ArchiveError(
            f"refusing to remove events younger than the retention period "
            f"({retention_days} days, CAREGW_AUDIT_RETENTION_DAYS): the cut-off must be on or "
            f"before {retention_cutoff(retention_days, now).isoformat()}"
        )
    if out_dir is not None and out_dir.exists():
        raise ArchiveError(f"{out_dir} already exists; an archive is never overwritten")
    await _ensure_tables(engine)

    staging: Path | None = None
    writer: ArchiveWriter | None = None
    if out_dir is not None:
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            staging = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
            staging.mkdir()
            writer = ArchiveWriter(staging)
        except OSError as exc:
            raise ArchiveError(f"cannot write the archive: {exc}") from exc

    scan = _Scan()
    try:
        async with engine.connect() as conn:
            for chain in await chain_ids(conn):
                if seq_ranges is not None and chain not in seq_ranges:
                    continue
                await _scan_chain(
                    conn,
                    chain,
                    before=before,
                    include_unreviewed=include_unreviewed,
                    writer=writer,
                    scan=scan,
                    seq_range=None if seq_ranges is None else seq_ranges[chain],
                )
        if writer is None or staging is None or out_dir is None or not scan.segments:
            if writer is not None:
                writer.abandon()
            discard(staging)
            return ArchiveResult(
                path=None,
                cutoff=before,
                segments=tuple(scan.segments),
                reviews=scan.reviews,
                removed=0,
                held_back=tuple(scan.held_back),
            )
        manifest = {
            "format": ARCHIVE_FORMAT,
            "created": now.isoformat(),
            "cutoff": before.isoformat(),
            "retentionDays": retention_days,
            "removedFromDatabase": remove,
            "chains": [s.as_json() for s in scan.segments],
        }
        manifest_sha = writer.finish(manifest)
        staging.rename(out_dir)
        fsync_dir(out_dir.parent)
    except BaseException:
        if writer is not None:
            writer.abandon()
        discard(staging)
        raise

    check = verify_archive(out_dir)
    if not check.ok or check.manifest_sha256 != manifest_sha:
        raise ArchiveError(
            f"the written archive does not check out ({check.reason}); nothing removed"
        )
    removed, dropped = 0, None
    if remove and drop is not None and not scan.held_back:
        removed, dropped = await drop(engine, scan.segments, manifest_sha, now), drop.name
    elif remove:
        for segment in scan.segments:
            removed += await _remove(engine, segment, scan.boundaries, manifest_sha, now)
    return ArchiveResult(
        path=out_dir,
        cutoff=before,
        segments=tuple(scan.segments),
        reviews=scan.reviews,
        removed=removed,
        held_back=tuple(scan.held_back),
        dropped_partition=dropped,
    )


async def _remove(
    engine: AsyncEngine,
    segment: Segment,
    boundaries: Mapping[tuple[str, int], str],
    manifest_sha: str,
    now: datetime,
) -> int:
    """Remove ``segment`` from the database in chunks; each chunk moves the checkpoint."""
    removed = 0
    low = segment.first_seq
    while low <= segment.last_seq:
        high = min(low + REMOVE_CHUNK - 1, segment.last_seq)
        expected_hash = boundaries[(segment.chain_id, high)]
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    select(func.pg_advisory_xact_lock(chain_lock_key(segment.chain_id)))
                )
            start_seq, _ = await chain_start(conn, segment.chain_id)
            if start_seq != low - 1:
                raise ArchiveError(
                    f"chain {segment.chain_id} changed while archiving (checkpoint at "
                    f"{start_seq}, expected {low - 1}); the archive is kept, run again"
                )
            in_chunk = (
                audit_event.c.chain_id == segment.chain_id,
                audit_event.c.seq >= low,
                audit_event.c.seq <= high,
            )
            stored_hash = (
                await conn.execute(
                    select(audit_event.c.hash).where(
                        audit_event.c.chain_id == segment.chain_id, audit_event.c.seq == high
                    )
                )
            ).scalar_one_or_none()
            if stored_hash != expected_hash:
                raise ArchiveError(
                    f"chain {segment.chain_id} seq {high} differs from the archive; nothing "
                    "more removed"
                )
            await conn.execute(
                delete(audit_review).where(
                    audit_review.c.event_id.in_(select(audit_event.c.id).where(*in_chunk))
                )
            )
            deleted = (await conn.execute(delete(audit_event).where(*in_chunk))).rowcount
            if deleted != high - low + 1:
                raise ArchiveError(
                    f"chain {segment.chain_id} seq {low}..{high}: expected to remove "
                    f"{high - low + 1} events, found {deleted}; rolled back"
                )
            await conn.execute(
                insert(audit_checkpoint).values(
                    chain_id=segment.chain_id,
                    seq=high,
                    hash=expected_hash,
                    archived_at=now,
                    manifest_sha256=manifest_sha,
                )
            )
        removed += deleted
        low = high + 1
    return removed


async def _ensure_tables(engine: AsyncEngine) -> None:
    def create(sync: Connection) -> None:
        table: Table
        for table in (audit_event, audit_checkpoint, audit_review):
            table.create(sync, checkfirst=True)

    async with engine.begin() as conn:
        await conn.run_sync(create)


async def checkpoints(engine: AsyncEngine) -> dict[str, list[tuple[int, str, str]]]:
    """Per chain, its checkpoints ``(seq, hash, manifest_sha256)`` in seq order (reads only)."""
    out: dict[str, list[tuple[int, str, str]]] = {}
    async with engine.connect() as conn:
        if not await has_checkpoints(conn):
            return out
        rows = await conn.execute(
            select(
                audit_checkpoint.c.chain_id,
                audit_checkpoint.c.seq,
                audit_checkpoint.c.hash,
                audit_checkpoint.c.manifest_sha256,
            ).order_by(audit_checkpoint.c.chain_id, audit_checkpoint.c.seq)
        )
        for chain, seq, digest, manifest in rows:
            out.setdefault(chain, []).append((int(seq), str(digest), str(manifest)))
    return out

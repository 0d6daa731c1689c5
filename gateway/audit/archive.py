"""Export and archive old audit events, keeping the hash chain checkable end to end.

``CAREGW_AUDIT_RETENTION_DAYS`` says how long events stay in the database. Older events are
moved, oldest first, into an **archive**: a directory an IG lead can keep on write-once
storage, read with any FHIR tool, and check without the database.

    <dir>/AuditEvent.ndjson    the events: the exact stored (hashed) bytes, one per line, in
                               chain order (FHIR Bulk Data NDJSON)
    <dir>/audit_review.ndjson  IG reviews of those events (one JSON object per line)
    <dir>/manifest.json        per chain: first/last seq, the hash before the first event and
                               of the last; per file: SHA-256 and line count

:func:`archive_events` with ``remove=True`` (``caregateway audit archive``) removes an event
from the database only after its archive is written, flushed to disk, renamed into place and
re-read and verified; each removal transaction also records a checkpoint (last removed seq
and hash), so :meth:`AuditStore.verify` continues the chain from there and the writer links
new events onto it. Removal is always a prefix of the chain (the chain stays whole), never
reaches events younger than the retention period, and stops before a break-glass event that
no IG lead has reviewed yet (unless told otherwise), because archiving it would take it off
the review queue. ``remove=False`` (``caregateway audit export``) writes the same archive and
changes nothing.

:func:`verify_archive` checks an archive on its own; :func:`check_continuity` checks that a set
of archives and the database's checkpoints form one unbroken chain from genesis.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Protocol

import orjson
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit.store import (
    GENESIS_HASH,
    audit_checkpoint,
    audit_event,
    chain_ids,
    chain_lock_key,
    chain_page,
    chain_start,
    check_row,
    has_checkpoints,
    link_hash,
)
from gateway.audit_review import audit_review

ARCHIVE_FORMAT: Final = "caregateway-audit-archive/1"
EVENTS_FILE: Final = "AuditEvent.ndjson"
REVIEWS_FILE: Final = "audit_review.ndjson"
MANIFEST_FILE: Final = "manifest.json"
REMOVE_CHUNK: Final = 5000  # events removed per transaction (each moves the checkpoint)
_PAGE: Final = 1000


class ArchiveError(Exception):
    """The archive cannot be made (bad arguments, target exists, unwritable); nothing removed."""


class ChainBrokenError(ArchiveError):
    """The chain is broken inside the range to archive; nothing written, nothing removed."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One chain's archived run of events: ``first_seq..last_seq``."""

    chain_id: str
    first_seq: int
    last_seq: int
    prev_hash: str  # the hash the first event links onto (genesis or an earlier archive's last)
    last_hash: str

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1

    def as_json(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "prevHash": self.prev_hash,
            "lastHash": self.last_hash,
            "count": self.count,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Segment:
        segment = cls(
            chain_id=str(value["chainId"]),
            first_seq=int(value["firstSeq"]),
            last_seq=int(value["lastSeq"]),
            prev_hash=str(value["prevHash"]),
            last_hash=str(value["lastHash"]),
        )
        if segment.count < 1 or int(value["count"]) != segment.count:
            raise ValueError(f"segment {segment.chain_id}: count does not match its seq range")
        return segment


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


@dataclass(frozen=True, slots=True)
class ArchiveCheck:
    """What :func:`verify_archive` found."""

    ok: bool
    events: int = 0
    segments: tuple[Segment, ...] = ()
    reason: str | None = None
    manifest_sha256: str | None = None
    hashes: dict[tuple[str, int], str] = field(default_factory=dict)  # the ``wanted`` ones


def retention_cutoff(retention_days: int, now: datetime | None = None) -> datetime:
    """The instant before which events are past retention."""
    if retention_days < 1:
        raise ArchiveError("CAREGW_AUDIT_RETENTION_DAYS must be at least 1")
    return (now or datetime.now(UTC)) - timedelta(days=retention_days)


# --- writing an archive ---------------------------------------------------------------------


@dataclass(slots=True)
class _Writer:
    """Writes one archive's files into a temporary directory, hashing as it goes."""

    directory: Path
    events: IO[bytes] = field(init=False)
    reviews: IO[bytes] = field(init=False)
    events_sha: Any = field(default_factory=hashlib.sha256)
    reviews_sha: Any = field(default_factory=hashlib.sha256)
    event_lines: int = 0
    review_lines: int = 0

    def __post_init__(self) -> None:
        self.events = (self.directory / EVENTS_FILE).open("xb")
        self.reviews = (self.directory / REVIEWS_FILE).open("xb")

    def event(self, stored: bytes) -> None:
        line = stored + b"\n"
        self.events.write(line)
        self.events_sha.update(line)
        self.event_lines += 1

    def review(self, review: Mapping[str, Any]) -> None:
        line = orjson.dumps(review, option=orjson.OPT_SORT_KEYS) + b"\n"
        self.reviews.write(line)
        self.reviews_sha.update(line)
        self.review_lines += 1

    def finish(self, manifest: dict[str, Any]) -> str:
        """Flush both files to disk, write the manifest; return the manifest's SHA-256."""
        for handle in (self.events, self.reviews):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        manifest["files"] = {
            EVENTS_FILE: {"sha256": self.events_sha.hexdigest(), "lines": self.event_lines},
            REVIEWS_FILE: {"sha256": self.reviews_sha.hexdigest(), "lines": self.review_lines},
        }
        body = orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        with (self.directory / MANIFEST_FILE).open("xb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        return hashlib.sha256(body).hexdigest()

    def abandon(self) -> None:
        for handle in (self.events, self.reviews):
            handle.close()


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
    writer: _Writer | None,
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
        reviewed = await _reviewed(conn, [r["id"] for r in rows if r["break_glass"]])
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
                writer.event(_as_bytes(row["resource"]))
            for review in await _reviews_of(conn, [r["id"] for r in taken]):
                writer.review(review)
                scan.reviews += 1
    if expected - 1 > start_seq:
        scan.boundaries[(chain, expected - 1)] = prev
        scan.segments.append(Segment(chain, start_seq + 1, expected - 1, first_prev, prev))


async def _reviewed(conn: AsyncConnection, event_ids: Sequence[str]) -> set[str]:
    if not event_ids:
        return set()
    query = select(audit_review.c.event_id).where(audit_review.c.event_id.in_(event_ids))
    return set((await conn.execute(query)).scalars())


async def _reviews_of(conn: AsyncConnection, event_ids: Sequence[str]) -> list[dict[str, Any]]:
    query = (
        select(audit_review)
        .where(audit_review.c.event_id.in_(event_ids))
        .order_by(audit_review.c.reviewed_at, audit_review.c.id)
    )
    out: list[dict[str, Any]] = []
    for row in (await conn.execute(query)).mappings():
        review = dict(row)
        review["reviewed_at"] = review["reviewed_at"].isoformat()
        out.append(review)
    return out


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
    writer: _Writer | None = None
    if out_dir is not None:
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            staging = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
            staging.mkdir()
            writer = _Writer(staging)
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
            _discard(staging)
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
        _fsync_dir(out_dir.parent)
    except BaseException:
        if writer is not None:
            writer.abandon()
        _discard(staging)
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


# --- checking archives ----------------------------------------------------------------------


def verify_archive(path: Path, wanted: Collection[tuple[str, int]] = ()) -> ArchiveCheck:
    """Check one archive without the database: file hashes, line counts, every chain link.

    ``wanted`` names ``(chain, seq)`` links whose hash to report (to compare a recorded head).
    """
    try:
        body = (path / MANIFEST_FILE).read_bytes()
        manifest = orjson.loads(body)
        if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
            return ArchiveCheck(ok=False, reason=f"{path}: not a {ARCHIVE_FORMAT} archive")
        segments = tuple(Segment.from_json(s) for s in manifest["chains"])
        files = manifest["files"]
        for name in (EVENTS_FILE, REVIEWS_FILE):
            data = (path / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != files[name]["sha256"]:
                return ArchiveCheck(ok=False, reason=f"{path / name}: SHA-256 does not match")
            if data.count(b"\n") != int(files[name]["lines"]):
                return ArchiveCheck(ok=False, reason=f"{path / name}: line count does not match")
        lines = (path / EVENTS_FILE).read_bytes().splitlines()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return ArchiveCheck(ok=False, reason=f"{path}: unreadable ({type(exc).__name__}: {exc})")
    if len(lines) != sum(s.count for s in segments):
        return ArchiveCheck(ok=False, reason=f"{path}: events do not match the chain ranges")
    position = 0
    hashes: dict[tuple[str, int], str] = {}
    for segment in segments:
        prev = segment.prev_hash
        for offset in range(segment.count):
            prev = link_hash(prev, lines[position])
            if (segment.chain_id, segment.first_seq + offset) in wanted:
                hashes[(segment.chain_id, segment.first_seq + offset)] = prev
            try:
                event = orjson.loads(lines[position])
            except orjson.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or event.get("resourceType") != "AuditEvent":
                return ArchiveCheck(
                    ok=False,
                    reason=f"{path}: line {position + 1} is not an AuditEvent "
                    f"(chain {segment.chain_id} seq {segment.first_seq + offset})",
                )
            position += 1
        if prev != segment.last_hash:
            return ArchiveCheck(
                ok=False,
                reason=f"{path}: chain {segment.chain_id} seq {segment.first_seq}.."
                f"{segment.last_seq} does not hash to the manifest's last hash",
            )
    return ArchiveCheck(
        ok=True,
        events=len(lines),
        segments=segments,
        manifest_sha256=hashlib.sha256(body).hexdigest(),
        hashes=hashes,
    )


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


def check_continuity(
    archives: Iterable[ArchiveCheck],
    checkpoints_by_chain: Mapping[str, Sequence[tuple[int, str, str]]],
) -> str | None:
    """Why ``archives`` and the database's checkpoints are not one chain from genesis, or None.

    Every chain with a checkpoint must be covered from seq 1 to its newest checkpoint by the
    archives' segments, each linking onto the one before, and each checkpoint must name the
    manifest of the archive that holds the events it removed.
    """
    by_chain: dict[str, list[tuple[Segment, str | None]]] = {}
    for archive in archives:
        for segment in archive.segments:
            by_chain.setdefault(segment.chain_id, []).append((segment, archive.manifest_sha256))
    for chain in sorted(set(by_chain) | set(checkpoints_by_chain)):
        segments = sorted(by_chain.get(chain, []), key=lambda item: item[0].first_seq)
        seq, prev = 0, GENESIS_HASH
        ends: dict[int, tuple[str, str | None]] = {}
        for segment, manifest in segments:
            if segment.first_seq != seq + 1 or segment.prev_hash != prev:
                return (
                    f"chain {chain}: the archives do not link at seq {seq + 1} "
                    f"(an archive starts at seq {segment.first_seq})"
                )
            seq, prev = segment.last_seq, segment.last_hash
            ends[seq] = (prev, manifest)
        for cp_seq, cp_hash, cp_manifest in checkpoints_by_chain.get(chain, []):
            if cp_seq > seq:
                return (
                    f"chain {chain}: events up to seq {cp_seq} were removed but no archive "
                    "given holds them"
                )
            end = ends.get(cp_seq)
            # A removal checkpoint falls inside a segment when it removed a chunk of a large
            # archive; only the segment's last checkpoint can be matched to its hash here.
            if end is not None and (end[0] != cp_hash or end[1] != cp_manifest):
                return f"chain {chain}: the checkpoint at seq {cp_seq} does not match its archive"
    return None


# --- helpers --------------------------------------------------------------------------------


def _as_bytes(stored: str | bytes) -> bytes:
    return stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)


def _discard(staging: Path | None) -> None:
    if staging is None or not staging.exists():
        return
    for child in staging.iterdir():
        child.unlink()
    staging.rmdir()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

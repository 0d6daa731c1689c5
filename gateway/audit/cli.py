"""``caregateway audit verify | export | archive``.

Exit codes: ``0`` done / chain whole, ``1`` a link is broken (printing which, or which archive
does not check out), ``2`` the store cannot be read or the command cannot be carried out
(``specs/behaviour.md`` fixes them for ``verify``; ``export`` and ``archive`` follow suit).
Messages name the failure kind, never the database URL (it may hold a password).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.archive import (
    ArchiveCheck,
    ArchiveError,
    ArchiveResult,
    ChainBrokenError,
    archive_events,
    check_continuity,
    checkpoints,
    retention_cutoff,
    verify_archive,
)
from gateway.audit.monthly import archive_month
from gateway.audit.partitions import next_month, parse_month, partitions
from gateway.audit.store import DEFAULT_CHAIN, AuditStore, VerifyResult
from gateway.db import make_engine, missing_sqlite_file

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_UNREADABLE = 2


@dataclass(frozen=True, slots=True)
class Head:
    """A chain head recorded earlier (printed by ``verify``), to check it is still there."""

    chain_id: str
    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Head:
        """``CHAIN:SEQ:HASH`` or ``SEQ:HASH`` (the default chain)."""
        parts = text.split(":")
        if len(parts) == 2:
            parts = [DEFAULT_CHAIN, *parts]
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 64:
            raise ValueError(f"--expect-head: expected CHAIN:SEQ:HASH, got {text!r}")
        return cls(parts[0], int(parts[1]), parts[2].lower())


@dataclass(frozen=True, slots=True)
class _Verified:
    result: VerifyResult
    checkpoints: dict[str, list[tuple[int, str, str]]]
    stored: dict[tuple[str, int], str | None]  # hashes at the expected heads' seqs


class NoStore(OSError):
    """The configured SQLite file does not exist: nothing to read (and nothing is created)."""


def _engine_for_existing(database_url: str) -> AsyncEngine:
    if missing_sqlite_file(database_url):
        raise NoStore("no database file at CAREGW_DATABASE_URL")
    return make_engine(database_url)


async def _verify(database_url: str, heads: Sequence[Head]) -> _Verified:
    engine = _engine_for_existing(database_url)
    try:
        store = AuditStore(engine)
        result = await store.verify()
        stored = {(h.chain_id, h.seq): await store.hash_at(h.chain_id, h.seq) for h in heads}
        return _Verified(result, await checkpoints(engine), stored)
    finally:
        await engine.dispose()


def _check_head(head: Head, verified: _Verified, archives: Sequence[ArchiveCheck]) -> str | None:
    """Why ``head`` is no longer on its chain, or None; ``"archived"`` when it cannot be told."""
    now = verified.result.heads.get(head.chain_id)
    if now is None or now[0] < head.seq:
        ends = "has no events" if now is None else f"ends at seq {now[0]}"
        return (
            f"chain {head.chain_id} {ends} but seq {head.seq} was recorded as its head: "
            "the newest events were removed"
        )
    key = (head.chain_id, head.seq)
    found = verified.stored.get(key)
    for archive in archives:
        found = found or archive.hashes.get(key)
    for seq, digest, _ in verified.checkpoints.get(head.chain_id, []):
        found = found or (digest if seq == head.seq else None)
    if found is None:
        return "archived"
    if found != head.hash:
        return f"chain {head.chain_id} seq {head.seq} does not have the recorded hash"
    return None


def verify_main(
    database_url: str,
    *,
    archives: Sequence[Path] = (),
    expect_heads: Sequence[str] = (),
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Verify the trail at ``database_url`` (and ``archives``, and recorded heads); print;
    return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        heads = [Head.parse(text) for text in expect_heads]
    except ValueError as exc:
        print(f"audit verify: {exc}", file=err)
        return EXIT_UNREADABLE
    try:
        verified = asyncio.run(_verify(database_url, heads))
    except (SQLAlchemyError, OSError, ValueError) as exc:
        return _unreadable("verify", exc, err)
    result, marks = verified.result, verified.checkpoints
    if not result.ok:
        print(
            f"audit verify: BROKEN at chain {result.chain_id} seq {result.broken_seq} "
            f"(event {result.broken_id}): {result.reason}; {result.checked} events checked "
            "before it",
            file=out,
        )
        return EXIT_BROKEN
    checks: list[ArchiveCheck] = []
    wanted = {(h.chain_id, h.seq) for h in heads}
    for path in archives:
        check = verify_archive(path, wanted)
        if not check.ok:
            print(f"audit verify: BROKEN archive: {check.reason}", file=out)
            return EXIT_BROKEN
        checks.append(check)
    if archives:
        gap = check_continuity(checks, marks)
        if gap is not None:
            print(f"audit verify: BROKEN: {gap}", file=out)
            return EXIT_BROKEN
    notes: list[str] = []
    for head in heads:
        problem = _check_head(head, verified, checks)
        if problem == "archived":
            notes.append(
                f"  recorded head chain {head.chain_id} seq {head.seq}: archived; pass the "
                "--archive that holds it to compare its hash"
            )
        elif problem is not None:
            print(f"audit verify: BROKEN: {problem}", file=out)
            return EXIT_BROKEN
        else:
            notes.append(
                f"  recorded head chain {head.chain_id} seq {head.seq}: present, same hash"
            )
    line = f"audit verify: ok, {result.checked} events, chain whole"
    if result.archived:
        line += f"; {result.archived} earlier events archived" + (
            f" and checked in {len(checks)} archive(s)"
            if checks
            else " (pass --archive to check them)"
        )
    print(line, file=out)
    for chain, (seq, digest) in sorted(result.heads.items()):
        # Record the head somewhere else (a ticket, a signed log) to detect later removal of
        # the newest events, which leaves a shorter chain that is still whole.
        print(f"  chain {chain} head: seq {seq} hash {digest}", file=out)
    for note in notes:
        print(note, file=out)
    return EXIT_OK


def parse_cutoff(text: str) -> datetime:
    """An ISO date (midnight UTC) or date-time (UTC if no offset) for ``--before``."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ArchiveError(f"--before: not an ISO date or date-time: {text!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def _archive(
    database_url: str,
    out_dir: Path | None,
    *,
    before: datetime,
    month: datetime | None,
    remove: bool,
    include_unreviewed: bool,
    retention_days: int | None,
) -> ArchiveResult:
    engine = _engine_for_existing(database_url)
    try:
        if month is not None:
            return await archive_month(
                engine,
                out_dir,
                month=month,
                remove=remove,
                include_unreviewed=include_unreviewed,
                retention_days=retention_days,
            )
        return await archive_events(
            engine,
            out_dir,
            before=before,
            remove=remove,
            include_unreviewed=include_unreviewed,
            retention_days=retention_days,
        )
    finally:
        await engine.dispose()


def archive_main(
    database_url: str,
    out_dir: Path | None,
    *,
    retention_days: int,
    before: str | None = None,
    partition: str | None = None,
    remove: bool,
    include_unreviewed: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``audit export`` (``remove=False``) and ``audit archive`` (``remove=True``)."""
    out = out or sys.stdout
    err = err or sys.stderr
    verb = "archive" if remove else "export"
    try:
        month = None
        if partition is not None:
            if before is not None:
                raise ArchiveError("give --before or --partition, not both")
            try:
                month = parse_month(partition)
            except ValueError as exc:
                raise ArchiveError(str(exc)) from exc
            cutoff = next_month(month)
        elif before is not None:
            cutoff = parse_cutoff(before)
        elif remove:
            cutoff = retention_cutoff(retention_days)
        else:
            cutoff = datetime.now(UTC)
        result = asyncio.run(
            _archive(
                database_url,
                out_dir,
                before=cutoff,
                month=month,
                remove=remove,
                include_unreviewed=include_unreviewed or not remove,
                retention_days=retention_days if remove else None,
            )
        )
    except ChainBrokenError as exc:
        print(f"audit {verb}: {exc}", file=out)
        return EXIT_BROKEN
    except ArchiveError as exc:
        print(f"audit {verb}: {exc}", file=err)
        return EXIT_UNREADABLE
    except (SQLAlchemyError, OSError, ValueError) as exc:
        return _unreadable(verb, exc, err)
    _report(verb, result, out_dir, out)
    return EXIT_OK


def _unreadable(verb: str, exc: Exception, err: TextIO) -> int:
    """Say the store cannot be read, naming the failure's kind (never the URL); exit 2."""
    why = str(exc) if isinstance(exc, NoStore) else type(exc).__name__
    print(f"audit {verb}: cannot read the audit store ({why})", file=err)
    return EXIT_UNREADABLE


def _report(verb: str, result: ArchiveResult, out_dir: Path | None, out: TextIO) -> None:
    when = result.cutoff.isoformat()
    if out_dir is None:
        print(f"audit {verb}: dry run: {result.events} events recorded before {when}", file=out)
    elif result.path is None:
        print(f"audit {verb}: nothing recorded before {when}; no archive written", file=out)
    else:
        print(
            f"audit {verb}: {result.events} events and {result.reviews} reviews recorded before "
            f"{when} written to {result.path}"
            + (f"; {result.removed} removed from the database" if result.removed else ""),
            file=out,
        )
    if result.dropped_partition is not None:
        print(f"  partition {result.dropped_partition} detached and dropped", file=out)
    for segment in result.segments:
        print(
            f"  chain {segment.chain_id}: seq {segment.first_seq}..{segment.last_seq} "
            f"(last hash {segment.last_hash})",
            file=out,
        )
    for reason in result.held_back:
        print(f"  held back: {reason}", file=out)


async def _partition_rows(database_url: str) -> list[tuple[str, int]]:
    engine = _engine_for_existing(database_url)
    try:
        async with engine.connect() as conn:
            found = await partitions(conn)
            return [
                (p.name, int(await conn.scalar(text(f"SELECT count(*) FROM {p.name}")) or 0))
                for p in found
            ]
    finally:
        await engine.dispose()


def partitions_main(database_url: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``audit partitions``: each partition of ``audit_event`` and its rows (PostgreSQL)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        rows = asyncio.run(_partition_rows(database_url))
    except (SQLAlchemyError, OSError) as exc:
        return _unreadable("partitions", exc, err)
    if not rows:
        print("audit partitions: audit_event is not partitioned here (one plain table)", file=out)
    for name, count in rows:
        print(f"{name}\t{count}", file=out)
    return EXIT_OK

"""What an archive is on disk, written and checked without the database.

    <dir>/AuditEvent.ndjson    the events: the exact stored (hashed) bytes, one per line, in
                               chain order (FHIR Bulk Data NDJSON)
    <dir>/audit_review.ndjson  IG reviews of those events (one JSON object per line)
    <dir>/manifest.json        per chain: first/last seq, the hash before the first event and
                               of the last; per file: SHA-256 and line count

:class:`ArchiveWriter` writes the files into a staging directory, hashing as it goes, and
flushes them to disk; :func:`verify_archive` checks an archive on its own (file hashes, line
counts, every chain link); :func:`check_continuity` checks that a set of archives and the
database's checkpoints form one unbroken chain from genesis. Archiving itself (which events,
removing them, the checkpoints) is :mod:`gateway.audit.archive`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from gateway.audit.rows import GENESIS_HASH, link_hash

ARCHIVE_FORMAT: Final = "caregateway-audit-archive/1"
EVENTS_FILE: Final = "AuditEvent.ndjson"
REVIEWS_FILE: Final = "audit_review.ndjson"
MANIFEST_FILE: Final = "manifest.json"


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
class ArchiveCheck:
    """What :func:`verify_archive` found."""

    ok: bool
    events: int = 0
    segments: tuple[Segment, ...] = ()
    reason: str | None = None
    manifest_sha256: str | None = None
    hashes: dict[tuple[str, int], str] = field(default_factory=dict)  # the ``wanted`` ones


@dataclass(slots=True)
class ArchiveWriter:
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


def as_bytes(stored: str | bytes) -> bytes:
    return stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)


def discard(staging: Path | None) -> None:
    if staging is None or not staging.exists():
        return
    for child in staging.iterdir():
        child.unlink()
    staging.rmdir()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

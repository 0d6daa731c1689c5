"""Retention: export and archive old audit events with the hash chain still checkable.

Real SQLite files throughout. Each test builds a trail with events recorded at known times,
runs the export/archive step and checks the archive's bytes, the rows left in the database,
the checkpoint the chain resumes from, and ``verify`` with and without the archives.
"""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway import cli
from gateway.audit import archive as archive_module
from gateway.audit.archive import ArchiveError, ChainBrokenError, archive_events
from gateway.audit.archive_files import EVENTS_FILE, MANIFEST_FILE, REVIEWS_FILE, verify_archive
from gateway.audit.cli import EXIT_BROKEN, EXIT_OK, EXIT_UNREADABLE, archive_main, verify_main
from gateway.audit.events import build_audit_event
from gateway.audit.reviews import ReviewStore
from gateway.audit.store import GENESIS_HASH, AuditStore
from gateway.db import create_schema, make_engine
from gateway.settings import get_settings
from tests.gateway.test_audit_events import BASE, make_record

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RETENTION_DAYS = 30
CUTOFF = NOW - timedelta(days=RETENTION_DAYS)


def url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def append(db: Path, *recorded: datetime, **overrides: Any) -> list[str]:
    """Append one event per ``recorded`` time (in order, one chain); return their ids."""
    engine = make_engine(url(db))
    await create_schema(engine)
    store = AuditStore(engine)
    ids = [
        await store.append(build_audit_event(make_record(recorded=when, **overrides), BASE))
        for when in recorded
    ]
    await store.close()
    await engine.dispose()
    return ids


def days_before_cutoff(*days: int) -> list[datetime]:
    return [CUTOFF - timedelta(days=d) for d in days]


def rows(db: Path) -> list[tuple[int, str, str, str]]:
    """``(seq, id, resource, hash)`` of every stored event in chain order."""
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT seq, id, resource, hash FROM audit_event ORDER BY seq"))


def checkpoints(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT seq, hash FROM audit_checkpoint ORDER BY seq"))


async def run_archive(db: Path, out: Path | None, **kwargs: Any) -> Any:
    engine = make_engine(url(db))
    try:
        kwargs.setdefault("before", CUTOFF)
        kwargs.setdefault("remove", True)
        kwargs.setdefault("retention_days", RETENTION_DAYS)
        kwargs.setdefault("now", NOW)
        return await archive_events(engine, out, **kwargs)
    finally:
        await engine.dispose()


def verify(db: Path, *archives: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = verify_main(url(db), archives=archives, out=out, err=err)
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """Five events past retention (oldest first), then three within it."""
    db = tmp_path / "audit.db"
    recorded = days_before_cutoff(50, 40, 30, 20, 1) + [
        CUTOFF + timedelta(days=1),
        NOW - timedelta(hours=1),
        NOW,
    ]
    asyncio.run(append(db, *recorded))
    return db


def test_archive_moves_events_past_retention_into_a_verifiable_archive(
    trail: Path, tmp_path: Path
) -> None:
    before = rows(trail)
    out = tmp_path / "archive-1"
    result = asyncio.run(run_archive(trail, out))

    assert result.path == out and result.events == 5 and result.removed == 5
    lines = (out / EVENTS_FILE).read_bytes().splitlines()
    # The archive holds exactly the bytes that were hashed, in chain order.
    assert lines == [r[2].encode("utf-8") for r in before[:5]]
    assert all(orjson.loads(line)["resourceType"] == "AuditEvent" for line in lines)
    manifest = orjson.loads((out / MANIFEST_FILE).read_bytes())
    assert manifest["chains"] == [
        {
            "chainId": "main",
            "firstSeq": 1,
            "lastSeq": 5,
            "prevHash": GENESIS_HASH,
            "lastHash": before[4][3],
            "count": 5,
        }
    ]
    assert manifest["retentionDays"] == RETENTION_DAYS and manifest["removedFromDatabase"] is True
    # The database keeps the three recent events and resumes the chain at a checkpoint.
    assert rows(trail) == before[5:]
    assert checkpoints(trail) == [(5, before[4][3])]
    assert verify_archive(out).ok

    code, text = verify(trail)
    assert code == EXIT_OK, text
    assert "ok, 3 events" in text and "5 earlier events archived" in text
    assert f"chain main head: seq 8 hash {before[7][3]}" in text
    code, text = verify(trail, out)
    assert code == EXIT_OK and "checked in 1 archive(s)" in text, text


def test_new_events_link_onto_the_checkpoint_when_everything_was_archived(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    asyncio.run(append(db, *days_before_cutoff(3, 2, 1)))
    first = tmp_path / "a1"
    asyncio.run(run_archive(db, first))
    assert rows(db) == [] and checkpoints(db)[0][0] == 3

    asyncio.run(append(db, NOW))
    [(seq, _, _, _)] = rows(db)
    assert seq == 4  # not 1: the chain goes on from the archived prefix
    assert verify(db)[0] == EXIT_OK
    assert verify(db, first)[0] == EXIT_OK


def test_a_second_archive_continues_the_first_and_both_are_needed(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    asyncio.run(append(db, *days_before_cutoff(60, 50)))
    first = tmp_path / "a1"
    asyncio.run(run_archive(db, first, before=CUTOFF - timedelta(days=55)))
    asyncio.run(append(db, *days_before_cutoff(10, 5), NOW))
    second = tmp_path / "a2"
    result = asyncio.run(run_archive(db, second))
    assert [(s.first_seq, s.last_seq) for s in result.segments] == [(2, 4)]

    code, text = verify(db, first, second)
    assert code == EXIT_OK, text
    code, text = verify(db, second)
    assert code == EXIT_BROKEN and "do not link at seq 1" in text, text


def test_an_edited_archive_fails_verify(trail: Path, tmp_path: Path) -> None:
    out = tmp_path / "archive"
    asyncio.run(run_archive(trail, out))
    events = out / EVENTS_FILE
    events.write_bytes(events.read_bytes().replace(b"gp-1", b"gp-9", 1))

    assert not verify_archive(out).ok
    code, text = verify(trail, out)
    assert code == EXIT_BROKEN and "SHA-256 does not match" in text


def test_an_archive_with_a_rehashed_file_still_fails_on_the_chain(
    trail: Path, tmp_path: Path
) -> None:
    """Someone who edits an event and fixes the manifest's file hash breaks the chain links."""
    import hashlib

    out = tmp_path / "archive"
    asyncio.run(run_archive(trail, out))
    events = out / EVENTS_FILE
    edited = events.read_bytes().replace(b"gp-1", b"gp-9", 1)
    events.write_bytes(edited)
    manifest = orjson.loads((out / MANIFEST_FILE).read_bytes())
    manifest["files"][EVENTS_FILE]["sha256"] = hashlib.sha256(edited).hexdigest()
    (out / MANIFEST_FILE).write_bytes(orjson.dumps(manifest))

    check = verify_archive(out)
    assert not check.ok and "does not hash to the manifest's last hash" in str(check.reason)


def test_refuses_to_remove_events_younger_than_retention(trail: Path, tmp_path: Path) -> None:
    before = rows(trail)
    out = tmp_path / "archive"
    with pytest.raises(ArchiveError, match="younger than the retention period"):
        asyncio.run(run_archive(trail, out, before=NOW))
    assert not out.exists() and rows(trail) == before and checkpoints(trail) == []


def test_export_writes_the_same_archive_and_removes_nothing(trail: Path, tmp_path: Path) -> None:
    before = rows(trail)
    out = tmp_path / "export"
    result = asyncio.run(run_archive(trail, out, before=NOW + timedelta(seconds=1), remove=False))
    assert result.events == 8 and result.removed == 0
    assert (out / EVENTS_FILE).read_bytes().splitlines() == [r[2].encode() for r in before]
    assert rows(trail) == before and checkpoints(trail) == []
    assert verify_archive(out).ok


def test_an_existing_directory_is_never_overwritten(trail: Path, tmp_path: Path) -> None:
    out = tmp_path / "archive"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work", encoding="utf-8")
    with pytest.raises(ArchiveError, match="already exists"):
        asyncio.run(run_archive(trail, out))
    assert (out / "keep.txt").read_text(encoding="utf-8") == "earlier work"
    assert len(rows(trail)) == 8


def test_a_broken_chain_is_not_archived(trail: Path, tmp_path: Path) -> None:
    with sqlite3.connect(trail) as conn:
        conn.execute(
            "UPDATE audit_event SET resource = replace(resource, 'gp-1', 'gp-9') WHERE seq = 3"
        )
    before = rows(trail)
    out = tmp_path / "archive"
    with pytest.raises(ChainBrokenError, match="broken at seq 3"):
        asyncio.run(run_archive(trail, out))
    assert not out.exists() and rows(trail) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_unreviewed_break_glass_event_holds_back_the_archive(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    ids = asyncio.run(append(db, *days_before_cutoff(9, 8)))
    [btg] = asyncio.run(
        append(db, *days_before_cutoff(7), break_glass=True, break_glass_reason="Collapsed at home")
    )
    asyncio.run(append(db, *days_before_cutoff(6)))

    first = tmp_path / "a1"
    result = asyncio.run(run_archive(db, first))
    assert result.events == 2 and result.removed == 2
    assert any(btg in reason and "no review yet" in reason for reason in result.held_back)
    assert [r[1] for r in rows(db)][0] == btg  # still on the queue
    assert [orjson.loads(x)["id"] for x in (first / EVENTS_FILE).read_bytes().splitlines()] == ids

    async def review() -> None:
        engine = make_engine(url(db))
        await ReviewStore(engine).add(
            btg,
            reviewer_sub="ig-1",
            reviewer_org="LA883",
            outcome="appropriate",
            note="Emergency confirmed with the ward.",
            at=NOW,
        )
        await engine.dispose()

    asyncio.run(review())
    second = tmp_path / "a2"
    result = asyncio.run(run_archive(db, second))
    assert result.events == 2 and result.reviews == 1 and result.held_back == ()
    [line] = (second / REVIEWS_FILE).read_bytes().splitlines()
    assert orjson.loads(line)["event_id"] == btg
    assert orjson.loads(line)["note"] == "Emergency confirmed with the ward."
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM audit_review").fetchone() == (0,)
    assert verify(db, first, second)[0] == EXIT_OK


def test_removal_runs_in_chunks_each_moving_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_module, "REMOVE_CHUNK", 3)
    db = tmp_path / "audit.db"
    asyncio.run(append(db, *days_before_cutoff(*range(20, 12, -1)), NOW))
    stored = rows(db)
    out = tmp_path / "archive"
    result = asyncio.run(run_archive(db, out))
    assert result.removed == 8
    assert checkpoints(db) == [(3, stored[2][3]), (6, stored[5][3]), (8, stored[7][3])]
    assert verify(db, out)[0] == EXIT_OK


def test_dry_run_counts_and_writes_nothing(trail: Path, tmp_path: Path) -> None:
    result = asyncio.run(run_archive(trail, None))
    assert result.events == 5 and result.path is None and result.removed == 0
    assert len(rows(trail)) == 8 and checkpoints(trail) == []
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []


def test_verify_names_a_missing_archive(trail: Path, tmp_path: Path) -> None:
    asyncio.run(run_archive(trail, tmp_path / "archive"))
    empty = tmp_path / "not-an-archive"
    empty.mkdir()
    code, text = verify(trail, empty)
    assert code == EXIT_BROKEN and "unreadable" in text


# --- the command line ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Settings are read once per process; each CLI test sets its own environment."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def env(trail: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CAREGW_DATABASE_URL", url(trail))
    monkeypatch.setenv("CAREGW_AUDIT_RETENTION_DAYS", "30")
    yield trail


def test_cli_archive_uses_the_retention_setting(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events are dated around 2026-11-23 minus 30 days; retention 30 days from today removes
    the ones older than that, whatever today is (all of them, on a later date)."""
    out = tmp_path / "cli-archive"
    code = cli.main(["audit", "archive", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == EXIT_OK, text
    archived = len((out / EVENTS_FILE).read_bytes().splitlines())
    assert archived >= 5 and f"{archived} events and 0 reviews" in text
    assert f"{archived} removed from the database" in text
    assert len(rows(env)) == 8 - archived
    assert cli.main(["audit", "verify", "--archive", str(out)]) == EXIT_OK


def test_cli_refuses_a_cut_off_inside_retention(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "too-soon"
    today = datetime.now(UTC).date().isoformat()
    code = cli.main(["audit", "archive", "--out", str(out), "--before", today])
    assert code == EXIT_UNREADABLE
    assert "CAREGW_AUDIT_RETENTION_DAYS" in capsys.readouterr().err
    assert not out.exists() and len(rows(env)) == 8


def test_cli_export_and_bad_cut_off(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert cli.main(["audit", "export", "--out", str(out), "--before", "2026-10-20"]) == EXIT_OK
    assert "4 events" in capsys.readouterr().out  # 50, 40, 30 and 20 days before 2026-10-24
    assert len(rows(env)) == 8
    code = archive_main(
        url(env), tmp_path / "x", retention_days=30, before="last tuesday", remove=False
    )
    assert code == EXIT_UNREADABLE and "not an ISO date" in capsys.readouterr().err


def test_cli_export_of_an_unreadable_store_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    monkeypatch.setenv("CAREGW_DATABASE_URL", url(garbage))
    assert cli.main(["audit", "export", "--out", str(tmp_path / "x")]) == EXIT_UNREADABLE
    err = capsys.readouterr().err
    assert "cannot read the audit store" in err and str(garbage) not in err
    assert not (tmp_path / "x").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".x.partial")]


# --- recorded heads: removing the newest events -------------------------------------------


def verify_heads(db: Path, *heads: str, archives: tuple[Path, ...] = ()) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = verify_main(url(db), archives=archives, expect_heads=heads, out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def printed_head(db: Path) -> str:
    """The ``main:SEQ:HASH`` that ``verify`` prints for the chain's head now."""
    _, text = verify(db)
    line = next(x for x in text.splitlines() if "chain main head:" in x)
    words = line.split()
    return f"main:{words[4]}:{words[6]}"


def test_a_recorded_head_detects_removal_of_the_newest_events(trail: Path) -> None:
    head = printed_head(trail)
    assert head == f"main:8:{rows(trail)[-1][3]}"
    asyncio.run(append(trail, NOW))  # the trail grows: the recorded head is still on it
    code, text = verify_heads(trail, head)
    assert code == EXIT_OK and "seq 8: present, same hash" in text, text

    with sqlite3.connect(trail) as conn:
        conn.execute("DELETE FROM audit_event WHERE seq >= 7")
    assert verify(trail)[0] == EXIT_OK  # a shorter chain is still whole...
    code, text = verify_heads(trail, head)
    assert code == EXIT_BROKEN  # ...but not the chain the head was recorded on
    assert "ends at seq 6 but seq 8 was recorded as its head" in text


def test_a_recorded_head_with_another_hash_fails(trail: Path) -> None:
    code, text = verify_heads(trail, "main:8:" + "ab" * 32)
    assert code == EXIT_BROKEN and "seq 8 does not have the recorded hash" in text
    code, text = verify_heads(trail, "8:not-a-hash")
    assert code == EXIT_UNREADABLE and "CHAIN:SEQ:HASH" in text


def test_an_archived_head_is_compared_in_its_archive(trail: Path, tmp_path: Path) -> None:
    old_head = f"main:4:{rows(trail)[3][3]}"  # seq 4 goes into the archive (not its last)
    out = tmp_path / "archive"
    asyncio.run(run_archive(trail, out))
    code, text = verify_heads(trail, old_head)
    assert code == EXIT_OK and "seq 4: archived; pass the --archive" in text
    code, text = verify_heads(trail, old_head, archives=(out,))
    assert code == EXIT_OK and "seq 4: present, same hash" in text
    code, _ = verify_heads(trail, "main:4:" + "0" * 64, archives=(out,))
    assert code == EXIT_BROKEN


def test_verify_reads_a_trail_from_before_archiving_without_changing_it(trail: Path) -> None:
    """A database made before the checkpoint table existed verifies, and stays as it was
    (``verify`` may run against a read-only replica)."""
    with sqlite3.connect(trail) as conn:
        conn.execute("DROP TABLE audit_checkpoint")
    code, text = verify(trail)
    assert code == EXIT_OK and "ok, 8 events" in text, text
    with sqlite3.connect(trail) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "audit_checkpoint" not in tables

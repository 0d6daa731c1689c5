"""The audit store on real SQLite files: durable group commit, hash chain, verify, search."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from gateway.audit import MonitoringConfig, access_report_csv, run_rules
from gateway.audit.errors import AuditUnavailable
from gateway.audit.events import build_audit_event
from gateway.audit.store import GENESIS_HASH, AuditStore, canonical_bytes, link_hash
from gateway.db import create_schema, make_engine
from tests.gateway.audit_support import assert_append_unavailable, started_store
from tests.gateway.test_audit_events import BASE, NHS, T0, make_record
from tests.gateway.test_audit_package import NO_RELATIONSHIP, http_event, legacy_event

OTHER_NHS = "9990000026"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def event(**overrides: Any) -> dict[str, Any]:
    return build_audit_event(make_record(**overrides), BASE)


def rows(path: Path, sql: str = "SELECT seq, id, prev_hash, hash FROM audit_event") -> list[Any]:
    """Read with the stdlib driver on a fresh connection: what is on disk, not in a cache."""
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql + " ORDER BY seq"))


def execute(path: Path, sql: str, *params: Any) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[AuditStore]:
    async with started_store(sqlite_url(db_path)) as audit:
        yield audit


# --- durability and the chain ----------------------------------------------------------------


async def test_sqlite_file_is_wal_with_full_sync(store: AuditStore, db_path: Path) -> None:
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL


async def test_append_stores_exact_bytes_and_links_the_chain(
    store: AuditStore, db_path: Path
) -> None:
    first, second = event(), event(user_sub="gp-2")
    id1 = await store.append(first)
    id2 = await store.append(second)
    assert (id1, id2) == (first["id"], second["id"])

    on_disk = rows(db_path, "SELECT seq, id, prev_hash, hash, resource FROM audit_event")
    assert [r[0] for r in on_disk] == [1, 2]
    assert on_disk[0][4].encode() == canonical_bytes(first)
    assert on_disk[0][2] == GENESIS_HASH
    assert on_disk[0][3] == link_hash(GENESIS_HASH, canonical_bytes(first))
    assert on_disk[1][2] == on_disk[0][3]
    assert on_disk[1][3] == link_hash(on_disk[0][3], canonical_bytes(second))

    assert await store.get(id1) == orjson.loads(canonical_bytes(first))
    assert await store.get("no-such-id") is None
    result = await store.verify()
    assert result.ok and result.checked == 2


async def test_event_without_id_gets_one(store: AuditStore) -> None:
    anonymous = event()
    del anonymous["id"]
    new_id = await store.append(anonymous)
    stored = await store.get(new_id)
    assert stored is not None and stored["id"] == new_id


async def test_only_audit_events_are_accepted(store: AuditStore) -> None:
    with pytest.raises(ValueError):
        await store.append({"resourceType": "Patient", "id": "x"})
    with pytest.raises(ValueError):
        await store.append({**event(), "recorded": "2026-11-23T10:00:00"})  # no timezone


async def test_group_commit_batches_concurrent_appends(store: AuditStore, db_path: Path) -> None:
    before = store.transactions
    events = [event(user_sub=f"user-{i}") for i in range(50)]
    ids = await asyncio.gather(*(store.append(e) for e in events))

    assert sorted(ids) == sorted(e["id"] for e in events)
    committed = store.transactions - before
    assert 1 <= committed < 50, committed
    assert store.events_written == 50
    # Durable: another connection (the stdlib driver) sees every one, in one unbroken chain.
    on_disk = rows(db_path)
    assert [r[0] for r in on_disk] == list(range(1, 51))
    assert {r[1] for r in on_disk} == set(ids)
    assert all(on_disk[i][2] == on_disk[i - 1][3] for i in range(1, 50))
    assert (await store.verify()).checked == 50


async def test_one_by_one_mode_commits_each_event(db_path: Path) -> None:
    engine = make_engine(sqlite_url(db_path))
    await create_schema(engine)
    audit = AuditStore(engine, group_commit=False)
    try:
        await asyncio.gather(*(audit.append(event(user_sub=f"u{i}")) for i in range(10)))
        assert audit.transactions == 10
        assert (await audit.verify()).checked == 10
    finally:
        await audit.close()
        await engine.dispose()


async def test_close_drains_queued_events(db_path: Path) -> None:
    engine = make_engine(sqlite_url(db_path))
    await create_schema(engine)
    audit = AuditStore(engine)
    await audit.start()
    tasks = [asyncio.create_task(audit.append(event(user_sub=f"u{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # every task has queued its event
    await audit.close()
    assert len(rows(db_path)) == 20  # committed before close() returned
    assert len(set(await asyncio.gather(*tasks))) == 20
    with pytest.raises(AuditUnavailable):
        await audit.append(event())
    await engine.dispose()


async def test_two_writers_on_one_chain_do_not_fork_it(db_path: Path) -> None:
    """Two replicas sharing one database and one chain: the writer re-reads the head."""
    engines = [make_engine(sqlite_url(db_path)) for _ in range(2)]
    await create_schema(engines[0])
    stores = [AuditStore(e) for e in engines]
    try:
        await asyncio.gather(
            *(stores[i % 2].append(event(user_sub=f"u{i}")) for i in range(40)),
        )
        result = await stores[0].verify()
        assert result.ok and result.checked == 40
    finally:
        for s in stores:
            await s.close()
        for e in engines:
            await e.dispose()


async def test_chain_survives_restart(db_path: Path) -> None:
    for _ in range(2):
        engine = make_engine(sqlite_url(db_path))
        await create_schema(engine)
        audit = AuditStore(engine)
        await asyncio.gather(*(audit.append(event()) for _ in range(5)))
        await audit.close()
        await engine.dispose()
    assert [r[0] for r in rows(db_path)] == list(range(1, 11))


# --- failure: no audit, no data, nothing half-written -----------------------------------------


async def test_read_only_store_refuses_with_audit_unavailable(db_path: Path) -> None:
    engine = make_engine(sqlite_url(db_path))
    await create_schema(engine)
    writer = AuditStore(engine)
    await writer.append(event())
    await writer.close()
    await engine.dispose()

    read_only = make_engine(f"sqlite+aiosqlite:///file:{db_path}?mode=ro&uri=true")
    audit = AuditStore(read_only)
    try:
        results = await asyncio.gather(
            *(audit.append(event()) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, AuditUnavailable) for r in results), results
        assert all(r.status == 503 for r in results if isinstance(r, AuditUnavailable))
        with pytest.raises(AuditUnavailable):
            await audit.append_one_by_one(event())
    finally:
        await audit.close()
        await read_only.dispose()
    assert len(rows(db_path)) == 1


async def test_refused_event_fails_alone_and_leaves_nothing_half_written(
    store: AuditStore, db_path: Path
) -> None:
    """One event the database refuses fails alone: its caller hears, no row of it stays, and
    the innocent events of the same batch are committed on the unbroken chain."""
    await store.append(event(user_sub="before"))
    execute(
        db_path,
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_event "
        "WHEN NEW.agent_sub = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    batch = [event(user_sub=f"ok-{i}") for i in range(10)] + [event(user_sub="poison")]
    results = await asyncio.gather(*(store.append(e) for e in batch), return_exceptions=True)

    assert isinstance(results[-1], AuditUnavailable), results[-1]
    assert results[:-1] == [e["id"] for e in batch[:-1]]
    stored = rows(db_path, "SELECT seq, agent_sub FROM audit_event")
    assert [r[0] for r in stored] == list(range(1, 12))
    subs = {r[1] for r in stored}
    assert "poison" not in subs and {f"ok-{i}" for i in range(10)} <= subs
    execute(db_path, "DROP TRIGGER refuse_poison")
    # The store carries on after a failure, on the same unbroken chain.
    await store.append(event(user_sub="after"))
    assert [r[0] for r in rows(db_path)] == list(range(1, 13))
    assert (await store.verify()).ok


async def test_disposed_database_file_removed_gives_audit_unavailable(tmp_path: Path) -> None:
    """The database directory vanishing under a running store fails closed."""
    folder = tmp_path / "gone"
    folder.mkdir()
    engine = make_engine(sqlite_url(folder / "audit.db"))
    await create_schema(engine)
    audit = AuditStore(engine)
    await audit.append(event())
    await engine.dispose()
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    await assert_append_unavailable(audit, event())


# --- tamper evidence ---------------------------------------------------------------------------


async def fill(store: AuditStore, n: int = 5) -> list[str]:
    ids = []
    for i in range(n):
        ids.append(await store.append(event(user_sub=f"user-{i}")))
    return ids


async def test_edited_json_is_reported_at_its_seq(store: AuditStore, db_path: Path) -> None:
    ids = await fill(store)
    execute(
        db_path,
        "UPDATE audit_event SET resource = replace(resource, '\"0\"', '\"4\"') WHERE seq = 3",
    )
    result = await store.verify()
    assert not result.ok
    assert (result.broken_seq, result.broken_id) == (3, ids[2])
    assert result.checked == 2
    assert result.reason is not None and "hash" in result.reason


async def test_edited_and_rehashed_row_breaks_the_next_link(
    store: AuditStore, db_path: Path
) -> None:
    """Recomputing the edited row's own hash is not enough: the next row points at the old one."""
    await fill(store)
    (resource, prev) = rows(db_path, "SELECT resource, prev_hash FROM audit_event WHERE seq = 2")[0]
    forged = resource.replace("user-1", "someone-else")
    execute(
        db_path,
        "UPDATE audit_event SET resource = ?, agent_sub = ?, hash = ? WHERE seq = 2",
        forged,
        "someone-else",
        link_hash(prev, forged.encode()),
    )
    result = await store.verify()
    assert not result.ok and result.broken_seq == 3


async def test_deleted_row_is_reported(store: AuditStore, db_path: Path) -> None:
    await fill(store)
    execute(db_path, "DELETE FROM audit_event WHERE seq = 3")
    result = await store.verify()
    assert not result.ok
    assert result.broken_seq == 3
    assert result.reason is not None and "missing" in result.reason


async def test_edited_search_column_is_reported(store: AuditStore, db_path: Path) -> None:
    """The indexed columns must match the hashed event, or search would lie to the IG lead."""
    await fill(store)
    execute(db_path, "UPDATE audit_event SET patient = ? WHERE seq = 4", OTHER_NHS)
    result = await store.verify()
    assert not result.ok and result.broken_seq == 4
    assert result.reason is not None and "patient" in result.reason


async def test_empty_store_verifies(store: AuditStore) -> None:
    result = await store.verify()
    assert result.ok and result.checked == 0


# --- search -----------------------------------------------------------------------------------


async def test_search_filters(store: AuditStore) -> None:
    await store.append(event(recorded=T0))
    await store.append(
        event(
            recorded=T0 + timedelta(hours=1),
            user_sub="sw-1",
            user_role="LA-SW",
            user_org="THURROCK",
            purpose="CAREMGT",
        )
    )
    await store.append(
        event(
            recorded=T0 + timedelta(hours=2),
            patient_nhs=OTHER_NHS,
            outcome="4",
            decision_effect="deny",
            reasons=("no-legitimate-relationship",),
        )
    )
    await store.append(
        event(
            recorded=T0 + timedelta(hours=3),
            purpose="ETREAT",
            break_glass=True,
            break_glass_reason="emergency",
            user_sub="ed-1",
            user_org="RAT",
        )
    )

    def who(found: list[dict[str, Any]]) -> list[str]:
        return [e["agent"][0]["who"]["identifier"]["value"] for e in found]

    assert who(await store.search(patient=NHS)) == ["ed-1", "sw-1", "gp-1"]  # newest first
    assert who(await store.search(patient=OTHER_NHS)) == ["gp-1"]
    assert who(await store.search(agent="sw-1")) == ["sw-1"]
    assert who(await store.search(agent_org="RAT")) == ["ed-1"]
    assert who(await store.search(outcome="4")) == ["gp-1"]
    assert who(await store.search(purpose="CAREMGT")) == ["sw-1"]
    assert who(await store.search(break_glass=True)) == ["ed-1"]
    assert len(await store.search(break_glass=False)) == 3
    window = await store.search(date_ge=T0 + timedelta(minutes=30), date_le=T0 + timedelta(hours=2))
    assert [e["recorded"][11:16] for e in window] == ["12:00", "11:00"]
    assert who(await store.search(patient=NHS, agent="gp-1", purpose="TREAT")) == ["gp-1"]
    assert await store.search(patient=NHS, agent="sw-1", outcome="4") == []
    assert await store.count(patient=NHS) == 3
    assert await store.count() == 4


async def test_search_pages_with_count_and_offset(store: AuditStore) -> None:
    for i in range(7):
        await store.append(event(recorded=T0 + timedelta(minutes=i), user_sub=f"u{i}"))
    pages = [await store.search(count=3, offset=o) for o in (0, 3, 6)]
    subs = [[e["agent"][0]["who"]["identifier"]["value"] for e in p] for p in pages]
    assert subs == [["u6", "u5", "u4"], ["u3", "u2", "u1"], ["u0"]]


async def test_locked_database_times_out_as_audit_unavailable(db_path: Path) -> None:
    """A database that hangs (here: another writer holds the lock) fails closed in time."""
    engine = make_engine(sqlite_url(db_path))
    await create_schema(engine)
    audit = AuditStore(engine, timeout_s=0.5)
    await audit.append(event())
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
        with pytest.raises(AuditUnavailable):
            await audit.append(event())
        with pytest.raises(AuditUnavailable):
            await AuditStore(engine, group_commit=False, timeout_s=0.5).append(event())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # Once the lock is gone the store works again and the chain is whole (the timed-out
    # event may or may not have been committed after its caller gave up: either is safe).
    await audit.append(event())
    result = await audit.verify()
    assert result.ok and result.checked >= 2
    await audit.close()
    await engine.dispose()


async def test_close_with_timeout_refuses_what_it_cannot_commit(db_path: Path) -> None:
    engine = make_engine(sqlite_url(db_path))
    await create_schema(engine)
    audit = AuditStore(engine, timeout_s=None)
    await audit.append(event())
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        tasks = [asyncio.create_task(audit.append(event())) for _ in range(5)]
        await asyncio.sleep(0.05)
        await audit.close(timeout_s=0.3)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, AuditUnavailable) for r in results), results
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await engine.dispose()
    assert len(rows(db_path)) == 1


# --- events of every age read back -------------------------------------------------------


async def test_a_stored_old_event_reads_back_in_the_report_and_the_rules(
    store: AuditStore,
) -> None:
    new = http_event(403, "deny", (NO_RELATIONSHIP,))
    old = legacy_event(http_event(403, "deny", (NO_RELATIONSHIP,)))
    permitted = event(patient_nhs=OTHER_NHS)
    for stored in (permitted, old, new):
        await store.append(stored)
    found = await store.search(patient=NHS, count=10)
    assert {e["id"] for e in found} == {old["id"], new["id"]}
    [alert] = [a for a in run_rules(found, MonitoringConfig()) if a.rule == NO_RELATIONSHIP]
    assert set(alert.event_ids) == {old["id"], new["id"]}
    report = list(csv.DictReader(io.StringIO(access_report_csv(found))))
    # the new event's effect and reason come from its extensions; the old event has no
    # extension, so its reason is read from its text and its effect is not known
    assert {r["decision/reasons"] for r in report} == {
        "deny; no-legitimate-relationship",
        NO_RELATIONSHIP,
    }
    assert (await store.verify()).ok

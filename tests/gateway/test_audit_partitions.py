"""The audit trail partitioned by month on a real PostgreSQL server.

What must hold: a date-bounded search reads only the partitions of its months (EXPLAIN);
an event lands in its month's partition, one without a partition in the default one, moved
out when the month's partition is made; the search answers exactly what SQLite answers for
the same trail; migration 0005 converts a trail made at revision 0004 without losing a row
or breaking the chain; a month is exported, archived and its partition dropped only after a
verified archive, keeping the chain whole.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from gateway import schema
from gateway.audit.archive import ArchiveError, check_continuity, checkpoints, verify_archive
from gateway.audit.cli import archive_main, partitions_main, verify_main
from gateway.audit.events import build_audit_event
from gateway.audit.monthly import archive_month
from gateway.audit.partitions import ensure_partitions, months_between, partitions
from gateway.audit.store import AuditFilters, AuditStore, search_query
from gateway.db import make_engine
from tests.gateway.postgres_server import fresh_database
from tests.gateway.test_audit_events import BASE, make_record

PATIENTS = ("9990000018", "9990000026", "9990000034")
SEP, OCT, NOV = (datetime(2020, m, 1, tzinfo=UTC) for m in (9, 10, 11))


class Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <statement>``, with the statement's own bound parameters."""

    inherit_cache = False

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.statement, **kw))


def _relations(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(str(plan["Relation Name"]))
        for value in plan.values():
            found |= _relations(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _relations(value)
    return found


def event(**overrides: Any) -> dict[str, Any]:
    return build_audit_event(make_record(**overrides), BASE)


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A new database migrated to head."""
    url = await fresh_database(postgres_url)
    engine = make_engine(url)
    await schema.upgrade(engine)
    try:
        yield url, engine
    finally:
        await engine.dispose()


async def _trail(store: AuditStore, months: list[datetime]) -> list[dict[str, Any]]:
    """Events on three people by three users through ``months``, appended in time order,
    with one event of each month's last second committed after the next month's first."""
    made: list[dict[str, Any]] = []
    for index, month in enumerate(months):
        for day in range(0, 28, 3):
            at = month + timedelta(days=day, hours=index)
            step = day // 3
            made.append(
                event(
                    recorded=at,
                    patient_nhs=PATIENTS[step % 3],
                    resource_ids=(PATIENTS[step % 3],),
                    user_sub=f"user-{step % 4}",
                    user_org=("F81001", "LA883")[step % 2],
                    break_glass=day == 9,
                    break_glass_reason="unconscious in ED" if day == 9 else None,
                    outcome="4" if day == 12 else "0",
                )
            )
        if index + 1 < len(months):
            boundary = months[index + 1]
            made.append(event(recorded=boundary + timedelta(milliseconds=5)))
            made.append(event(recorded=boundary - timedelta(milliseconds=5)))
    for item in made:
        await store.append(item)
    return made


async def _where(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, tableoid::regclass::text FROM audit_event"))
        return {str(i): str(t) for i, t in rows}


async def test_a_date_bounded_search_reads_only_the_partitions_of_its_months(
    pg: tuple[str, AsyncEngine],
) -> None:
    _, engine = pg
    async with engine.begin() as conn:
        await ensure_partitions(conn, months_between(SEP, datetime(2021, 2, 1, tzinfo=UTC)))
    filters: AuditFilters = {
        "patient": PATIENTS[0],
        "date_ge": OCT + timedelta(days=3),
        "date_le": NOV + timedelta(days=2),
    }
    async with engine.connect() as conn:
        plan = (await conn.execute(Explain(search_query(**filters)))).scalar_one()
        every = (await conn.execute(Explain(search_query(patient=PATIENTS[0])))).scalar_one()
    assert _relations(plan) == {"audit_event_2020_10", "audit_event_2020_11"}
    assert {"audit_event_2020_09", "audit_event_2021_01", "audit_event_default"} <= _relations(
        every
    )


async def test_an_event_lands_in_its_month_and_one_without_a_partition_waits_in_the_default(
    pg: tuple[str, AsyncEngine],
) -> None:
    _, engine = pg
    future = datetime(2031, 3, 14, 9, 30, tzinfo=UTC)
    async with engine.begin() as conn:
        assert await ensure_partitions(conn, [future]) == ["audit_event_2031_03"]
        assert await ensure_partitions(conn, [future]) == []  # made once
    store = AuditStore(engine)
    try:
        in_march = await store.append(event(recorded=future))
        in_april = await store.append(event(recorded=future + timedelta(days=31)))
    finally:
        await store.close()
    where = await _where(engine)
    assert where[in_march] == "audit_event_2031_03"
    assert where[in_april] == "audit_event_default"
    async with engine.begin() as conn:
        assert await ensure_partitions(conn, [future + timedelta(days=31)]) == [
            "audit_event_2031_04"
        ]
    assert (await _where(engine))[in_april] == "audit_event_2031_04"  # moved, not copied
    assert len(await _where(engine)) == 2
    assert (await AuditStore(engine).verify()).ok


async def test_serve_start_makes_this_month_and_the_next(pg: tuple[str, AsyncEngine]) -> None:
    from gateway.audit.partitions import ensure_current, next_month, partition_name

    _, engine = pg
    now = datetime(2033, 12, 5, tzinfo=UTC)
    made = await ensure_current(engine, now=now)
    assert made == ["audit_event_2033_12", "audit_event_2034_01"]
    async with engine.connect() as conn:
        names = [p.name for p in await partitions(conn)]
    assert partition_name(next_month(now.replace(day=1))) in names
    assert names[-1] == "audit_event_default"


FILTER_SETS: list[AuditFilters] = [
    {"patient": PATIENTS[1]},
    {"agent": "user-2"},
    {"agent_org": "LA883", "date_ge": OCT, "date_le": NOV},
    {"date_ge": OCT + timedelta(days=5), "date_le": OCT + timedelta(days=20)},
    {"break_glass": True},
    {"outcome": "4", "purpose": "TREAT"},
    {"patient": PATIENTS[0], "date_ge": SEP + timedelta(days=10), "break_glass": False},
]


async def test_the_search_answers_the_same_events_as_on_sqlite(
    pg: tuple[str, AsyncEngine], tmp_path: Path
) -> None:
    _, engine = pg
    lite = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    await schema.upgrade(lite)
    async with engine.begin() as conn:
        await ensure_partitions(conn, [SEP])  # OCT and NOV wait in the default partition
    on_pg, on_lite = AuditStore(engine), AuditStore(lite)
    try:
        made = await _trail(on_lite, [SEP, OCT, NOV])
        for item in made:
            await on_pg.append(item)
        for filters in FILTER_SETS:
            for page in (0, 5):
                want = await on_lite.search(count=5, offset=page, **filters)
                got = await on_pg.search(count=5, offset=page, **filters)
                assert [e["id"] for e in got] == [e["id"] for e in want], filters
            assert await on_pg.count(**filters) == await on_lite.count(**filters) > 0
    finally:
        await on_pg.close()
        await on_lite.close()
        await lite.dispose()


async def test_migration_0005_converts_a_trail_made_at_0004_keeping_every_row_and_the_chain(
    postgres_url: str,
) -> None:
    url = await fresh_database(postgres_url)
    engine = make_engine(url)
    try:
        await schema.upgrade(engine, "0004")
        store = AuditStore(engine)
        made = await _trail(store, [SEP, OCT, NOV])
        await store.close()
        before = await store.verify()
        assert before.ok and before.checked == len(made)
        async with engine.connect() as conn:
            kind = "SELECT relkind::text FROM pg_class WHERE relname = 'audit_event'"
            assert await conn.scalar(text(kind)) == "r"

        assert (await schema.upgrade(engine)).up_to_date
        where = await _where(engine)
        assert set(where) == {e["id"] for e in made}
        for item in made:
            month = item["recorded"][:7].replace("-", "_")
            assert where[item["id"]] == f"audit_event_{month}"
        after = await AuditStore(engine).verify()
        assert after.ok and after.heads == before.heads
        out = io.StringIO()
        assert await asyncio.to_thread(verify_main, url, out=out) == 0
        seq, digest = before.heads["main"]
        assert f"chain main head: seq {seq} hash {digest}" in out.getvalue()
        async with engine.connect() as conn:
            assert await conn.scalar(text(kind)) == "p"
            assert await conn.run_sync(lambda c: [] == _differences(c))
    finally:
        await engine.dispose()


def _differences(sync: Any) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    opts = {"compare_type": True, "include_name": schema.include_name}
    return list(
        compare_metadata(MigrationContext.configure(sync, opts=opts), schema.target_metadata())
    )


async def test_a_month_is_exported_then_archived_and_its_partition_dropped(
    pg: tuple[str, AsyncEngine], tmp_path: Path
) -> None:
    url, engine = pg
    async with engine.begin() as conn:
        await ensure_partitions(conn, [SEP, OCT, NOV])
    store = AuditStore(engine)
    made = await _trail(store, [SEP, OCT, NOV])
    await store.close()
    late_september = made[[e["recorded"][:7] for e in made].index("2020-10") + 1]
    assert late_september["recorded"].startswith("2020-09-30T23:59:59")  # after an Oct one
    everything = {e["id"] for e in made}

    exported = await archive_month(engine, tmp_path / "oct-export", month=OCT, remove=False)
    october = {e["id"] for e in made if e["recorded"].startswith("2020-10")}
    lines = (tmp_path / "oct-export" / "AuditEvent.ndjson").read_bytes().splitlines()
    assert october <= {orjson.loads(line)["id"] for line in lines}
    assert verify_archive(tmp_path / "oct-export").ok and exported.removed == 0

    with pytest.raises(ArchiveError, match="archive that month first"):
        await archive_month(engine, tmp_path / "nov", month=NOV, remove=True)

    out = io.StringIO()
    code = await asyncio.to_thread(
        archive_main,
        url,
        tmp_path / "sep",
        retention_days=30,
        partition="2020-09",
        remove=True,
        include_unreviewed=True,
        out=out,
    )
    assert code == 0, out.getvalue()
    assert "partition audit_event_2020_09 detached and dropped" in out.getvalue()
    check = verify_archive(tmp_path / "sep")
    assert check.ok
    archived = {
        orjson.loads(line)["id"]
        for line in (tmp_path / "sep" / "AuditEvent.ndjson").read_bytes().splitlines()
    }
    september = {e["id"] for e in made if e["recorded"].startswith("2020-09")}
    assert september <= archived and late_september["id"] in archived
    assert archived - september  # the October event committed before September's last one
    left = await _where(engine)
    assert set(left) == everything - archived
    async with engine.connect() as conn:
        names = [p.name for p in await partitions(conn)]
    assert "audit_event_2020_09" not in names and "audit_event_2020_10" in names
    assert check_continuity([check], await checkpoints(engine)) is None
    assert (
        await asyncio.to_thread(verify_main, url, archives=[tmp_path / "sep"], out=io.StringIO())
        == 0
    )
    listing = io.StringIO()
    assert await asyncio.to_thread(partitions_main, url, out=listing) == 0
    assert f"audit_event_2020_10\t{sum(t == 'audit_event_2020_10' for t in left.values())}" in (
        listing.getvalue()
    )

    # The next month follows on: its archive links onto the first one's last event.
    assert (
        await asyncio.to_thread(
            archive_main,
            url,
            tmp_path / "oct",
            retention_days=30,
            partition="2020-10",
            remove=True,
            include_unreviewed=True,
            out=io.StringIO(),
        )
        == 0
    )
    second = verify_archive(tmp_path / "oct")
    assert check_continuity([check, second], await checkpoints(engine)) is None
    assert (await AuditStore(engine).verify()).ok


async def test_an_unreviewed_break_glass_event_keeps_the_months_partition(
    pg: tuple[str, AsyncEngine], tmp_path: Path
) -> None:
    _, engine = pg
    async with engine.begin() as conn:
        await ensure_partitions(conn, [SEP, OCT])
    store = AuditStore(engine)
    await _trail(store, [SEP, OCT])
    await store.close()
    result = await archive_month(engine, tmp_path / "sep", month=SEP, remove=True)
    assert result.held_back and result.dropped_partition is None
    async with engine.connect() as conn:
        assert "audit_event_2020_09" in [p.name for p in await partitions(conn)]
        rest = await conn.scalar(text("SELECT count(*) FROM audit_event_2020_09"))
    assert rest and rest > 0 and result.removed > 0  # removed up to the held event, as rows
    assert (await AuditStore(engine).verify()).ok

"""ConsentStore and BreakGlassStore on a real SQLite file: ids, versions, no caching."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from consent import parse_consents
from gateway.db import Base, make_engine, make_session_factory
from gateway.errors import NotFound, UnprocessableEntity
from gateway.policy.store import (
    UKCORE_CONSENT_PROFILE,
    BreakGlassStore,
    ConsentDirectiveRow,
    ConsentStore,
    VersionConflict,
)
from simulators.population import SCENARIOS
from tests.consent.factories import objection_body

NHS_A = SCENARIOS["both"].nhs_number or ""
NHS_B = SCENARIOS["community_only"].nhs_number or ""


def objection(nhs: str, status: str = "active") -> dict[str, Any]:
    return objection_body(nhs, status)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'consent.db'}")
    async with eng.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield eng
    await eng.dispose()


async def test_create_assigns_id_version_and_profile(engine: AsyncEngine) -> None:
    at = datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)
    store = ConsentStore(engine, clock=lambda: at)
    given = {**objection(NHS_A), "id": "client-chosen", "meta": {"profile": ["urn:x"]}}
    stored = await store.create(given)
    assert stored["id"] != "client-chosen"
    assert stored["meta"] == {
        "versionId": "1",
        "lastUpdated": "2026-11-23T10:00:00.123Z",
        "profile": ["urn:x", UKCORE_CONSENT_PROFILE],
    }
    assert given["id"] == "client-chosen"  # the caller's dict is not changed
    assert await store.get(stored["id"]) == stored
    assert await store.get("no-such-id") is None


async def test_update_increments_version_and_keeps_one_row(engine: AsyncEngine) -> None:
    store = ConsentStore(engine)
    stored = await store.create(objection(NHS_A))
    second = await store.update(stored["id"], {**stored, "status": "inactive"})
    third = await store.update(stored["id"], {**second, "status": "active"})
    assert (second["meta"]["versionId"], third["meta"]["versionId"]) == ("2", "3")
    assert (await store.get(stored["id"]) or {})["status"] == "active"
    async with make_session_factory(engine)() as session:
        row = await session.get(ConsentDirectiveRow, stored["id"])
        assert row is not None and (row.version, row.status) == (3, "active")
        assert row.created <= row.updated and row.created.tzinfo is not None


async def test_update_unknown_id_is_not_found(engine: AsyncEngine) -> None:
    with pytest.raises(NotFound):
        await ConsentStore(engine).update("missing", objection(NHS_A))


async def test_concurrent_updates_never_share_a_version(engine: AsyncEngine) -> None:
    store = ConsentStore(engine)
    stored = await store.create(objection(NHS_A))
    results = await asyncio.gather(
        *(store.update(stored["id"], {**stored, "status": s}) for s in ["inactive", "active"] * 3)
    )
    versions = sorted(int(r["meta"]["versionId"]) for r in results)
    assert versions == [2, 3, 4, 5, 6, 7]
    final = await store.get(stored["id"])
    assert final is not None and final["meta"]["versionId"] == "7"


async def test_update_at_the_expected_version_writes_it(engine: AsyncEngine) -> None:
    store = ConsentStore(engine)
    stored = await store.create(objection(NHS_A))
    second = await store.update(stored["id"], {**stored, "status": "inactive"}, expected_version=1)
    assert second["meta"]["versionId"] == "2" and second["status"] == "inactive"
    assert await store.get(stored["id"]) == second


async def test_update_at_a_stale_version_is_refused_and_writes_nothing(
    engine: AsyncEngine,
) -> None:
    store = ConsentStore(engine)
    stored = await store.create(objection(NHS_A))
    second = await store.update(stored["id"], {**stored, "status": "inactive"})
    with pytest.raises(VersionConflict) as refused:
        await store.update(stored["id"], {**stored, "status": "active"}, expected_version=1)
    assert (refused.value.expected, refused.value.current) == (1, 2)
    assert refused.value.status == 412 and refused.value.code == "conflict"
    assert 'W/"2"' in refused.value.message
    assert await store.get(stored["id"]) == second
    with pytest.raises(VersionConflict):
        await store.update(stored["id"], second, expected_version=3)


async def test_update_of_an_unknown_id_at_a_version_is_not_found(engine: AsyncEngine) -> None:
    with pytest.raises(NotFound):
        await ConsentStore(engine).update("missing", objection(NHS_A), expected_version=1)


async def test_concurrent_updates_expecting_one_version_let_exactly_one_win(
    engine: AsyncEngine,
) -> None:
    store = ConsentStore(engine)
    stored = await store.create(objection(NHS_A))
    statuses = ["inactive", "rejected", "proposed", "entered-in-error"]
    results = await asyncio.gather(
        *(
            store.update(stored["id"], {**stored, "status": s}, expected_version=1)
            for s in statuses
        ),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, VersionConflict)]
    assert len(won) == 1 and len(lost) == len(statuses) - 1, results
    assert won[0]["meta"]["versionId"] == "2"
    assert all((e.expected, e.current) == (1, 2) for e in lost)
    assert await store.get(stored["id"]) == won[0]


async def test_search_and_active_for_return_every_status_for_that_person_only(
    engine: AsyncEngine,
) -> None:
    store = ConsentStore(engine)
    first = await store.create(objection(NHS_A))
    second = await store.create(objection(NHS_A, status="inactive"))
    await store.create(objection(NHS_B))
    assert [c["id"] for c in await store.search(NHS_A)] == [first["id"], second["id"]]
    assert await store.active_for(NHS_A) == await store.search(NHS_A)
    assert await store.search("9999999999") == []
    # What the store returns is what the pure core parses.
    assert [d.status for d in parse_consents(await store.active_for(NHS_A))] == [
        "active",
        "inactive",
    ]


async def test_a_change_is_seen_by_the_next_read_through_another_store(
    engine: AsyncEngine,
) -> None:
    writer, reader = ConsentStore(engine), ConsentStore(engine)
    stored = await writer.create(objection(NHS_A))
    assert [c["status"] for c in await reader.active_for(NHS_A)] == ["active"]
    await writer.update(stored["id"], {**stored, "status": "inactive"})
    assert [c["status"] for c in await reader.active_for(NHS_A)] == ["inactive"]


async def test_nothing_is_written_without_an_nhs_number(engine: AsyncEngine) -> None:
    store = ConsentStore(engine)
    bad = {k: v for k, v in objection(NHS_A).items() if k != "patient"}
    with pytest.raises(UnprocessableEntity):
        await store.create(bad)
    stored = await store.create(objection(NHS_A))
    with pytest.raises(UnprocessableEntity):
        await store.update(stored["id"], bad)
    assert await store.get(stored["id"]) == stored
    async with make_session_factory(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(ConsentDirectiveRow)) == 1


async def test_store_accepts_a_session_factory(engine: AsyncEngine) -> None:
    store = ConsentStore(make_session_factory(engine))
    stored = await store.create(objection(NHS_B))
    assert await store.get(stored["id"]) == stored


async def test_break_glass_ledger_returns_the_latest_grant(engine: AsyncEngine) -> None:
    ledger = BreakGlassStore(engine)
    assert await ledger.last_grant("user-1", NHS_A) is None
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    await ledger.record("user-1", NHS_A, t0, "unconscious in A&E")
    await ledger.record("user-1", NHS_A, t0 + timedelta(minutes=5), "still in A&E")
    await ledger.record("user-2", NHS_A, t0 + timedelta(hours=1), "other user")
    await ledger.record("user-1", NHS_B, t0 + timedelta(hours=2), "other person")
    latest = await ledger.last_grant("user-1", NHS_A)
    assert latest == t0 + timedelta(minutes=5)
    assert latest is not None and latest.tzinfo is not None
    assert await ledger.last_grant("user-3", NHS_A) is None

"""ConsentStore and BreakGlassStore on a real PostgreSQL server (asyncpg).

The server is the session's ``postgres_url`` (``tests/gateway/postgres_server.py``: a
throwaway server from the local binaries, or ``CAREGW_TEST_POSTGRES_URL``; skipped, saying
why, when neither is possible). Every test empties the consent tables first and asserts on what the
database holds: the JSON read back, the row's columns, versions and timezone-aware times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import Outcome, SourceResult
from consent import load_policy
from gateway.db import make_engine, make_session_factory
from gateway.errors import NotFound
from gateway.policy.decision import PolicyDecider
from gateway.policy.store import (
    UKCORE_CONSENT_PROFILE,
    BreakGlassGrantRow,
    BreakGlassStore,
    ConsentDirectiveRow,
    ConsentStore,
    VersionConflict,
    fhir_instant,
)
from gateway.records.access import RequestContext
from simulators.population import SCENARIOS
from tests.consent.factories import objection_body
from tests.gateway.consent_support import emptied_engine

NHS_A = SCENARIOS["both"].nhs_number or ""
NHS_B = SCENARIOS["community_only"].nhs_number or ""
T0 = datetime(2026, 11, 23, 10, 15, 8, 123456, tzinfo=UTC)
BOUND_S = 60  # no concurrent step may take longer than this


class SteppingClock:
    """A clock the test moves: ``clock()`` is ``now``."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def objection(nhs: str, status: str = "active", **extra: Any) -> dict[str, Any]:
    return {**objection_body(nhs, status), "dateTime": "2026-11-23T10:00:00Z", **extra}


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with emptied_engine(postgres_url, ConsentDirectiveRow, BreakGlassGrantRow) as engine:
        yield engine


async def row_of(engine: AsyncEngine, consent_id: str) -> ConsentDirectiveRow:
    async with make_session_factory(engine)() as session:
        row = await session.get(ConsentDirectiveRow, consent_id)
    assert row is not None
    return row


def assert_row_holds(row: ConsentDirectiveRow, stored: dict[str, Any]) -> None:
    """The row's columns agree with the resource, and the resource is exactly ``stored``."""
    assert orjson.loads(row.resource) == stored
    assert row.id == stored["id"]
    assert str(row.version) == stored["meta"]["versionId"]
    assert row.status == stored["status"]
    assert row.nhs_number == stored["patient"]["identifier"]["value"]
    assert fhir_instant(row.updated) == stored["meta"]["lastUpdated"]
    assert row.created.tzinfo is not None and row.updated.tzinfo is not None
    assert row.created.utcoffset() == timedelta(0) == row.updated.utcoffset()


# --- create, read, list ------------------------------------------------------------------


async def test_create_stores_exactly_what_it_returns(pg: AsyncEngine) -> None:
    store = ConsentStore(pg, clock=SteppingClock(T0))
    given = objection(NHS_A, id="client-chosen", meta={"profile": ["urn:x"]})
    stored = await store.create(given)

    assert stored["id"] != "client-chosen"
    assert stored["meta"] == {
        "versionId": "1",
        "lastUpdated": "2026-11-23T10:15:08.123Z",
        "profile": ["urn:x", UKCORE_CONSENT_PROFILE],
    }
    unchanged = {k: v for k, v in given.items() if k not in ("id", "meta")}
    assert {k: v for k, v in stored.items() if k not in ("id", "meta")} == unchanged
    assert await store.get(stored["id"]) == stored
    assert await store.get("no-such-id") is None

    row = await row_of(pg, stored["id"])
    assert_row_holds(row, stored)
    assert row.created == row.updated == T0  # microseconds survive timestamptz


async def test_search_lists_one_persons_consents_oldest_first(pg: AsyncEngine) -> None:
    clock = SteppingClock(T0)
    store = ConsentStore(pg, clock=clock)
    first = await store.create(objection(NHS_A))
    clock.now += timedelta(minutes=1)
    other = await store.create(objection(NHS_B))
    clock.now += timedelta(minutes=1)
    second = await store.create(objection(NHS_A, status="inactive"))

    found = await store.search(NHS_A)
    assert found == [first, second]
    assert await store.active_for(NHS_A) == found
    assert await store.search(NHS_B) == [other]
    assert await store.search("9999999999") == []


# --- update and versions -----------------------------------------------------------------


async def test_update_replaces_the_resource_and_counts_versions(pg: AsyncEngine) -> None:
    clock = SteppingClock(T0)
    store = ConsentStore(pg, clock=clock)
    stored = await store.create(objection(NHS_A))
    clock.now = T0 + timedelta(hours=1)
    second = await store.update(stored["id"], {**stored, "status": "inactive"})
    clock.now = T0 + timedelta(hours=2, microseconds=1)
    third = await store.update(stored["id"], {**second, "status": "active"}, expected_version=2)

    assert [c["meta"]["versionId"] for c in (stored, second, third)] == ["1", "2", "3"]
    assert second["meta"]["lastUpdated"] == fhir_instant(T0 + timedelta(hours=1))
    assert third["status"] == "active"
    assert {k: v for k, v in third.items() if k != "meta"} == {
        k: v for k, v in stored.items() if k != "meta"
    }
    assert await store.get(stored["id"]) == third
    row = await row_of(pg, stored["id"])
    assert_row_holds(row, third)
    assert (row.created, row.updated) == (T0, T0 + timedelta(hours=2, microseconds=1))


async def test_update_at_a_stale_version_is_refused_and_changes_nothing(
    pg: AsyncEngine,
) -> None:
    store = ConsentStore(pg)
    stored = await store.create(objection(NHS_A))
    second = await store.update(stored["id"], {**stored, "status": "inactive"})

    with pytest.raises(VersionConflict) as refused:
        await store.update(stored["id"], {**stored, "status": "rejected"}, expected_version=1)
    assert (refused.value.expected, refused.value.current) == (1, 2)
    assert refused.value.status == 412 and 'W/"2"' in refused.value.message
    assert await store.get(stored["id"]) == second
    assert_row_holds(await row_of(pg, stored["id"]), second)

    with pytest.raises(NotFound):
        await store.update("no-such-id", objection(NHS_A), expected_version=1)
    with pytest.raises(NotFound):
        await store.update("no-such-id", objection(NHS_A))


async def test_concurrent_updates_expecting_one_version_one_wins_across_engines(
    postgres_url: str,
    pg: AsyncEngine,
) -> None:
    """Eight writers on two engines (two gateway processes) all expect version 1."""
    other = make_engine(postgres_url)
    try:
        stores = [ConsentStore(pg), ConsentStore(other)]
        stored = await stores[0].create(objection(NHS_A))
        statuses = ["inactive", "rejected", "proposed", "entered-in-error"] * 2
        results = await asyncio.wait_for(
            asyncio.gather(
                *(
                    stores[i % 2].update(stored["id"], {**stored, "status": s}, expected_version=1)
                    for i, s in enumerate(statuses)
                ),
                return_exceptions=True,
            ),
            timeout=BOUND_S,
        )
    finally:
        await other.dispose()

    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, VersionConflict)]
    assert len(won) == 1 and len(lost) == len(statuses) - 1, results
    assert won[0]["meta"]["versionId"] == "2"
    assert {(e.expected, e.current) for e in lost} == {(1, 2)}
    assert await stores[0].get(stored["id"]) == won[0]
    assert_row_holds(await row_of(pg, stored["id"]), won[0])


async def test_concurrent_updates_without_a_version_each_get_their_own(
    pg: AsyncEngine,
) -> None:
    """Five writers (one fewer than the store's retries) all land, on versions 2 to 6."""
    store = ConsentStore(pg)
    stored = await store.create(objection(NHS_A))
    statuses = ["inactive", "active", "inactive", "active", "inactive"]
    results = await asyncio.wait_for(
        asyncio.gather(*(store.update(stored["id"], {**stored, "status": s}) for s in statuses)),
        timeout=BOUND_S,
    )
    assert sorted(int(r["meta"]["versionId"]) for r in results) == [2, 3, 4, 5, 6]
    last = next(r for r in results if r["meta"]["versionId"] == "6")
    assert await store.get(stored["id"]) == last
    assert_row_holds(await row_of(pg, stored["id"]), last)


# --- break-glass -------------------------------------------------------------------------


async def test_break_glass_ledger_returns_the_latest_grant(pg: AsyncEngine) -> None:
    ledger = BreakGlassStore(pg)
    assert await ledger.last_grant("user-1", NHS_A) is None
    await ledger.record("user-1", NHS_A, T0, "unconscious in A&E")
    await ledger.record("user-1", NHS_A, T0 + timedelta(minutes=5), "still in A&E")
    await ledger.record("user-2", NHS_A, T0 + timedelta(hours=1), "other user")
    await ledger.record("user-1", NHS_B, T0 + timedelta(hours=2), "other person")

    latest = await ledger.last_grant("user-1", NHS_A)
    assert latest == T0 + timedelta(minutes=5)
    assert latest is not None and latest.utcoffset() == timedelta(0)
    assert await ledger.last_grant("user-2", NHS_A) == T0 + timedelta(hours=1)
    assert await ledger.last_grant("user-3", NHS_A) is None

    async with make_session_factory(pg)() as session:
        rows = (
            await session.scalars(
                select(BreakGlassGrantRow).order_by(BreakGlassGrantRow.granted_at)
            )
        ).all()
    assert [(r.sub, r.nhs_number, r.granted_at, r.reason) for r in rows] == [
        ("user-1", NHS_A, T0, "unconscious in A&E"),
        ("user-1", NHS_A, T0 + timedelta(minutes=5), "still in A&E"),
        ("user-2", NHS_A, T0 + timedelta(hours=1), "other user"),
        ("user-1", NHS_B, T0 + timedelta(hours=2), "other person"),
    ]
    assert all(r.granted_at.tzinfo is not None for r in rows)


def emergency(reason: str | None) -> RequestContext:
    """A clinician at an organisation with no relationship to the person, purpose ETREAT."""
    return RequestContext(
        sub="clinician-0007",
        role="R8000",
        org="Y99999",
        client_kind="user",
        purpose="ETREAT",
        request_id="req-1",
        break_glass_reason=reason,
    )


def held_by_gp(nhs: str) -> SourceResult:
    patient = {
        "resourceType": "Patient",
        "id": f"community.{nhs}",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
    }
    return SourceResult("community", "RAT", "health", Outcome.FOUND, resources=(patient,))


async def test_break_glass_grant_is_recorded_looked_up_and_expires(pg: AsyncEngine) -> None:
    """A grant at T0 lets the same user back in without a reason until the window ends."""
    policy = load_policy()
    window = policy.break_glass.duration
    clock = SteppingClock(T0)
    decider = PolicyDecider(policy, ConsentStore(pg), BreakGlassStore(pg), clock=clock)
    results = [held_by_gp(NHS_A)]

    without = await decider.decision(emergency(None), NHS_A, results)
    assert not without.break_glass and without.effect == "deny"
    assert await BreakGlassStore(pg).last_grant("clinician-0007", NHS_A) is None

    granted = await decider.decision(emergency("collapsed in clinic"), NHS_A, results)
    assert granted.break_glass and granted.effect != "deny"
    assert granted.break_glass_until == T0 + window
    assert await BreakGlassStore(pg).last_grant("clinician-0007", NHS_A) == T0

    clock.now = T0 + window - timedelta(microseconds=1)
    still = await decider.decision(emergency(None), NHS_A, results)
    assert still.break_glass and still.break_glass_until == T0 + window

    clock.now = T0 + window
    expired = await decider.decision(emergency(None), NHS_A, results)
    assert not expired.break_glass and expired.effect == "deny"
    assert "no-legitimate-relationship" in expired.reasons
    assert await BreakGlassStore(pg).last_grant("clinician-0007", NHS_A) == T0
    assert await BreakGlassStore(pg).last_grant("clinician-0007", NHS_B) is None


async def test_a_remembered_verdict_still_meets_every_new_directive(pg: AsyncEngine) -> None:
    """The decider remembers a verdict for the very same answers and directives in force,
    but reads the directives for every call: a new objection, and one coming into force
    later, each apply to the very next call."""
    clock = SteppingClock(T0)
    decider = PolicyDecider(load_policy(), ConsentStore(pg), BreakGlassStore(pg), clock=clock)
    results = [held_by_gp(NHS_A)]
    custodian = RequestContext(
        sub="nurse-0001", role="R8000", org="RAT", client_kind="user", purpose="TREAT",
        request_id="req-2",
    )  # fmt: skip
    first = await decider(custodian, NHS_A, results)
    assert first.effect == "permit"
    assert await decider(custodian, NHS_A, results) is first  # remembered

    starts = T0 + timedelta(hours=1)
    later = objection(NHS_A, provision={"type": "deny", "period": {"start": starts.isoformat()}})
    await ConsentStore(pg).create(later)
    assert (await decider(custodian, NHS_A, results)).effect == "permit"  # not yet in force
    clock.now = starts + timedelta(seconds=1)
    objected = await decider(custodian, NHS_A, results)
    assert objected.effect == "deny" and "patient-objected" in objected.reasons

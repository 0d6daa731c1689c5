"""Every version of a Consent kept, on SQLite and PostgreSQL (issue 9, finding 2).

The ``consent_directive_version`` row is written in the transaction of the directive's own
INSERT or conditional UPDATE: a version is never current without being kept, and never kept
without having been current. Each test runs on an SQLite file and on the session's
PostgreSQL server (``postgres_url``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import make_session_factory
from gateway.policy.store import (
    ConsentDirectiveRow,
    ConsentStore,
    ConsentVersionRow,
    VersionConflict,
)
from simulators.population import SCENARIOS
from tests.consent.factories import objection_body
from tests.gateway.consent_support import emptied_engine

NHS_A = SCENARIOS["both"].nhs_number or ""
BOUND_S = 60


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'consent.db'}"
    async with emptied_engine(url, ConsentDirectiveRow, ConsentVersionRow) as eng:
        yield eng


async def kept(engine: AsyncEngine, consent_id: str) -> list[ConsentVersionRow]:
    async with make_session_factory(engine)() as session:
        rows = await session.scalars(
            select(ConsentVersionRow)
            .where(ConsentVersionRow.id == consent_id)
            .order_by(ConsentVersionRow.version)
        )
        return list(rows)


def objection(status: str = "active") -> dict[str, Any]:
    return objection_body(NHS_A, status)


async def test_every_version_is_kept_as_it_was_served(engine: AsyncEngine) -> None:
    store = ConsentStore(engine)
    v1 = await store.create(objection())
    v2 = await store.update(v1["id"], {**v1, "status": "inactive"})
    v3 = await store.update(v1["id"], {**v2, "status": "active"}, expected_version=2)

    assert await store.history(v1["id"]) == [v3, v2, v1]
    for n, expected in enumerate((v1, v2, v3), start=1):
        assert await store.version(v1["id"], n) == expected
    assert await store.version(v1["id"], 4) is None
    assert await store.history("no-such-id") == []

    rows = await kept(engine, v1["id"])
    assert [(r.version, r.status, r.nhs_number) for r in rows] == [
        (1, "active", NHS_A),
        (2, "inactive", NHS_A),
        (3, "active", NHS_A),
    ]
    assert [orjson.loads(r.resource) for r in rows] == [v1, v2, v3]
    assert all(r.recorded.tzinfo is not None for r in rows)


async def test_a_refused_change_keeps_no_version(engine: AsyncEngine) -> None:
    store = ConsentStore(engine)
    v1 = await store.create(objection())
    v2 = await store.update(v1["id"], {**v1, "status": "inactive"})
    with pytest.raises(VersionConflict):
        await store.update(v1["id"], {**v1, "status": "rejected"}, expected_version=1)
    assert await store.history(v1["id"]) == [v2, v1]
    assert [r.version for r in await kept(engine, v1["id"])] == [1, 2]


async def test_a_version_that_cannot_be_kept_leaves_the_directive_unchanged(
    engine: AsyncEngine,
) -> None:
    """The version INSERT fails (a row for version 2 is already there): the conditional
    UPDATE of the same transaction is rolled back with it — nothing is half-written."""
    store = ConsentStore(engine)
    v1 = await store.create(objection())
    async with make_session_factory(engine)() as session, session.begin():
        session.add(
            ConsentVersionRow(
                id=v1["id"],
                version=2,
                nhs_number=NHS_A,
                status="planted",
                resource="{}",
                recorded=datetime.now(UTC),
            )
        )
    for expected in (None, 1):
        with pytest.raises(IntegrityError):
            await store.update(v1["id"], {**v1, "status": "inactive"}, expected_version=expected)
        assert await store.get(v1["id"]) == v1
    async with make_session_factory(engine)() as session:
        row = await session.get(ConsentDirectiveRow, v1["id"])
        assert row is not None and (row.version, row.status) == (1, "active")


async def test_concurrent_changes_each_keep_their_own_version(engine: AsyncEngine) -> None:
    store = ConsentStore(engine)
    v1 = await store.create(objection())
    statuses = ["inactive", "active"] * 3
    results = await asyncio.wait_for(
        asyncio.gather(*(store.update(v1["id"], {**v1, "status": s}) for s in statuses)),
        timeout=BOUND_S,
    )
    by_version = {int(r["meta"]["versionId"]): r for r in results}
    assert sorted(by_version) == [2, 3, 4, 5, 6, 7]
    rows = await kept(engine, v1["id"])
    assert [r.version for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    for r in rows[1:]:
        assert orjson.loads(r.resource) == by_version[r.version]


async def test_a_consent_stored_before_versions_were_kept_has_its_current_one(
    engine: AsyncEngine,
) -> None:
    store = ConsentStore(engine)
    v1 = await store.create(objection())
    v2 = await store.update(v1["id"], {**v1, "status": "inactive"})
    async with engine.begin() as conn:  # as a database from before the version table
        await conn.execute(delete(ConsentVersionRow).where(ConsentVersionRow.id == v1["id"]))
    assert await store.history(v1["id"]) == [v2]
    assert await store.version(v1["id"], 2) == v2
    assert await store.version(v1["id"], 1) is None
    v3 = await store.update(v1["id"], {**v2, "status": "active"})
    assert await store.history(v1["id"]) == [v3]  # from now on every version is kept
    assert [r.version for r in await kept(engine, v1["id"])] == [3]

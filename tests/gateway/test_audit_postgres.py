"""The audit store on a real PostgreSQL server (asyncpg).

The server is the session's ``postgres_url`` (``tests/gateway/postgres_server.py``): a
throwaway server from the local binaries, or ``CAREGW_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.audit.archive import archive_events
from gateway.audit.archive_files import verify_archive
from gateway.audit.events import build_audit_event
from gateway.audit.store import AuditStore
from gateway.db import make_engine
from tests.gateway.audit_support import assert_append_unavailable, started_store
from tests.gateway.postgres_server import free_port
from tests.gateway.test_audit_events import BASE, NHS, T0, make_record


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[AuditStore]:
    async with started_store(postgres_url, emptied=True) as store:
        yield store


def event(**overrides: Any) -> dict[str, Any]:
    return build_audit_event(make_record(**overrides), BASE)


async def test_postgres_group_commit_chain_and_verify(pg_store: AuditStore) -> None:
    ids = await asyncio.gather(*(pg_store.append(event(user_sub=f"u{i}")) for i in range(50)))
    assert len(set(ids)) == 50
    assert pg_store.transactions < 50
    result = await pg_store.verify()
    assert result.ok and result.checked == 50

    async with pg_store.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE audit_event SET resource = "
                'replace(resource, \'"outcome":"0"\', \'"outcome":"4"\') WHERE seq = 9'
            )
        )
    broken = await pg_store.verify()
    assert not broken.ok and broken.broken_seq == 9


async def test_postgres_search_by_patient_and_date(pg_store: AuditStore) -> None:
    for hours in range(4):
        await pg_store.append(event(recorded=T0 + timedelta(hours=hours)))
    found = await pg_store.search(
        patient=NHS, date_ge=T0 + timedelta(hours=1), date_le=T0 + timedelta(hours=2)
    )
    assert [e["recorded"][11:13] for e in found] == ["12", "11"]


async def test_postgres_two_writers_one_chain(postgres_url: str, pg_store: AuditStore) -> None:
    other_engine = make_engine(postgres_url)
    other = AuditStore(other_engine)
    try:
        stores = [pg_store, other]
        await asyncio.gather(*(stores[i % 2].append(event(user_sub=f"u{i}")) for i in range(40)))
        result = await pg_store.verify()
        assert result.ok and result.checked == 40
    finally:
        await other.close()
        await other_engine.dispose()


async def test_postgres_unreachable_fails_closed() -> None:
    engine = make_engine(f"postgresql+asyncpg://audit@127.0.0.1:{free_port()}/postgres")
    await assert_append_unavailable(AuditStore(engine), event())


async def test_postgres_archive_while_the_gateway_keeps_writing(
    pg_store: AuditStore, tmp_path: Path
) -> None:
    """Old events move to an archive while new ones are appended; the chain stays whole."""
    old = T0 - timedelta(days=400)
    await asyncio.gather(
        *(pg_store.append(event(recorded=old, user_sub=f"u{i}")) for i in range(30))
    )

    async def keep_writing() -> None:
        for i in range(30):
            await pg_store.append(event(recorded=datetime.now(UTC), user_sub=f"new{i}"))

    archived, _ = await asyncio.gather(
        archive_events(
            pg_store.engine,
            tmp_path / "archive",
            before=T0 - timedelta(days=365),
            remove=True,
            retention_days=365,
            now=T0,
        ),
        keep_writing(),
    )
    assert archived.events == 30 and archived.removed == 30
    assert verify_archive(tmp_path / "archive").ok
    result = await pg_store.verify()
    assert result.ok and result.archived == 30 and result.checked == 30
    assert result.heads["main"][0] == 60

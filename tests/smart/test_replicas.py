"""Two replicas on one PostgreSQL share launch contexts, codes, the jti store and revocations.

Each "replica" is its own engine (its own connection pool) on the same database, as two
gateway processes behind a load balancer would be. Concurrent redemption of one code or one
launch: exactly one replica wins.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.db import create_schema, make_engine
from gateway.smart.store import CODE_TTL, LAUNCH_TTL, SmartStore
from tests.gateway.postgres_server import postgres_url  # noqa: F401  (a session fixture)


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[SmartStore, SmartStore]]:  # noqa: F811
    first, second = make_engine(postgres_url), make_engine(postgres_url)
    await create_schema(first)
    try:
        yield SmartStore(first), SmartStore(second)
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_launch_made_on_one_replica_is_redeemed_once_on_any(
    replicas: tuple[SmartStore, SmartStore],
) -> None:
    a, b = replicas
    launch = await a.put("launch", {"sub": "dr-1", "patient": "9434765919"}, LAUNCH_TTL)
    assert (await b.peek("launch", launch)) == {"sub": "dr-1", "patient": "9434765919"}
    results = await asyncio.gather(*(s.redeem("launch", launch) for s in (a, b, a, b)))
    assert sum(r is not None for r in results) == 1
    assert (await a.state_of("launch", launch))[0] == "used"


async def test_a_code_is_single_use_across_replicas(
    replicas: tuple[SmartStore, SmartStore],
) -> None:
    a, b = replicas
    code = await a.put("code", {"client_id": "app"}, CODE_TTL)
    results = await asyncio.gather(b.redeem("code", code), a.redeem("code", code))
    assert sorted(r is None for r in results) == [False, True]


async def test_a_jti_seen_by_one_replica_is_a_replay_on_the_other(
    replicas: tuple[SmartStore, SmartStore],
) -> None:
    a, b = replicas
    jti, expires = uuid.uuid4().hex, datetime.now(UTC) + timedelta(minutes=5)
    assert await a.record_jti("ehr", jti, expires) is True
    assert await b.record_jti("ehr", jti, expires) is False
    assert await b.record_jti("other-client", jti, expires) is True  # per client


async def test_a_revocation_on_one_replica_is_seen_by_the_other(
    replicas: tuple[SmartStore, SmartStore],
) -> None:
    a, b = replicas
    jti = uuid.uuid4().hex
    assert await b.is_revoked(jti) is False
    await a.revoke(jti, datetime.now(UTC) + timedelta(hours=1))
    await a.revoke(jti, datetime.now(UTC) + timedelta(hours=1))  # twice is harmless
    assert await b.is_revoked(jti) is True

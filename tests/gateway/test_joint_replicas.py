"""Two gateway replicas sharing one database (an SQLite file; PostgreSQL), and one Redis.

- Two updates of one plan at the same version, one sent to each replica at the same time:
  exactly one is written (``200``, version 2), the other is told ``412`` with the current
  ETag, both are audited, and the store holds exactly two versions.
- A write on one replica evicts the person from the other replica's own in-process cache
  tier (Redis pub/sub), so its next read shows the new version.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from gateway.joint.store import JointPlanVersionRow
from simulators.runner import RunningSources, source_configs
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome, running_gateway
from tests.gateway.joint_support import (
    GP,
    NHS,
    SOCIAL_WORKER,
    JointClient,
    activity,
    audit_of,
    changed,
    entity_refs,
    fresh_database,
    plan_body,
    subtype_of,
)
from tests.gateway.test_cache_e2e import CacheSecrets, local_tier, make_cache, wait_until
from tests.redis_server import RedisServer, own_redis_server  # noqa: F401

BOUND_S = 60


@asynccontextmanager
async def two_replicas(
    kind: str,
    running: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    folder: Path,
    postgres_url: str | None,
    **kw: Any,
) -> AsyncIterator[tuple[Gateway, Gateway]]:
    configs = source_configs(running)
    caches = kw.pop("caches", (None, None))
    async with (
        fresh_database(kind, folder, postgres_url) as url,
        running_gateway(configs, *signing_key, database_url=url, cache=caches[0]) as a,
        running_gateway(configs, *signing_key, database_url=url, cache=caches[1]) as b,
    ):
        yield a, b


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_two_replicas_one_version_exactly_one_update_wins(
    kind: str,
    request: pytest.FixtureRequest,
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    tmp_path: Path,
) -> None:
    pg = request.getfixturevalue("postgres_url") if kind == "postgresql" else None
    async with (
        asyncio.timeout(BOUND_S),
        two_replicas(kind, running_sources, signing_key, tmp_path, pg) as (a, b),
    ):
        on_a, on_b = JointClient(a), JointClient(b)
        plan = assert_fhir(await on_a.post(plan_body()), 201)
        pid = plan["id"]
        for _ in range(3):  # three rounds: each time both replicas race from one version
            current = assert_fhir(await on_b.get(f"/CarePlan/{pid}", SOCIAL_WORKER))
            version = current["meta"]["versionId"]
            gp_body = changed(current, title=f"GP change after v{version}")
            sw_body = changed(
                current, activity=[*current["activity"], activity(f"after v{version}")]
            )
            answers = await asyncio.gather(
                on_a.put(pid, gp_body, GP, if_match=f'W/"{version}"'),
                on_b.put(pid, sw_body, SOCIAL_WORKER, if_match=f'W/"{version}"'),
            )
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [200, 412], [r.text for r in answers]
            won = next(r for r in answers if r.status_code == 200)
            lost = next(r for r in answers if r.status_code == 412)
            new = str(int(version) + 1)
            assert won.headers["ETag"] == lost.headers["ETag"] == f'W/"{new}"'
            assert_outcome(lost, 412, "conflict")
            for resp, outcome in ((won, "0"), (lost, "4")):
                # Both replicas append to the one audit trail in the shared database.
                event = await audit_of(a, resp)
                assert subtype_of(event) == "update" and event["outcome"] == outcome
            winner = assert_fhir(won)
            assert winner["meta"]["versionId"] == new
            read = assert_fhir(await on_a.get(f"/CarePlan/{pid}/_history/{new}"))
            assert read == winner  # what was kept is what the winner was told
        history = assert_fhir(await on_b.get(f"/CarePlan/{pid}/_history"))
        assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == [
            "4", "3", "2", "1"
        ]  # fmt: skip
        sessions = a.joint._sessions  # the rows themselves: no version written twice
        async with sessions() as session:
            kept = await session.scalar(select(func.count()).where(JointPlanVersionRow.id == pid))
        assert kept == 4


async def test_a_write_on_one_replica_evicts_the_person_from_the_others_cache(
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    own_redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    secrets = CacheSecrets.generate()
    cache_a, index = make_cache(own_redis_server.url, secrets, local_ttl_s=60)
    cache_b, _ = make_cache(own_redis_server.url, secrets, local_ttl_s=60)
    async with (
        asyncio.timeout(BOUND_S),
        two_replicas(
            "sqlite", running_sources, signing_key, tmp_path, None, caches=(cache_a, cache_b)
        ) as (a, b),
    ):
        on_a, on_b = JointClient(a), JointClient(b)
        plan = assert_fhir(await on_a.post(plan_body()), 201)
        first = assert_fhir(await on_b.get("/CarePlan", SOCIAL_WORKER, patient=NHS))
        mine = [e["resource"] for e in first["entry"] if e["resource"]["id"] == plan["id"]]
        assert [p["meta"]["versionId"] for p in mine] == ["1"]
        hits = cache_b.stats.hits
        again = assert_fhir(await on_b.get("/CarePlan", SOCIAL_WORKER, patient=NHS))
        assert cache_b.stats.hits > hits  # B serves the person from its cache
        assert [e["resource"]["id"] for e in again["entry"]] == [
            e["resource"]["id"] for e in first["entry"]
        ]

        joint_key = index.record_key("joint", NHS)
        assert await local_tier(cache_b).get(joint_key) is not None  # B holds the plan
        updated = await on_a.put(
            plan["id"], changed(plan, title="Updated on replica A"), GP, if_match='W/"1"'
        )
        assert_fhir(updated, 200)

        async def dropped_by_b() -> bool:
            return await local_tier(cache_b).get(joint_key) is None

        await wait_until(dropped_by_b, "replica B dropped the person from its own tier")
        with redis.Redis.from_url(own_redis_server.url) as raw:  # the shared tier
            assert not raw.exists(joint_key)  # the joint entry is gone ...
            assert raw.exists(index.record_key("socialcare", NHS))  # ... the source's stays
        after = assert_fhir(await on_b.get("/CarePlan", SOCIAL_WORKER, patient=NHS))
        shown = [e["resource"] for e in after["entry"] if e["resource"]["id"] == plan["id"]]
        assert [(p["meta"]["versionId"], p["title"]) for p in shown] == [
            ("2", "Updated on replica A")
        ]
        assert f"CarePlan/{plan['id']}/_history/2" in entity_refs(await audit_of(a, updated))

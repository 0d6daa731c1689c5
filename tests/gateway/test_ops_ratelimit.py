"""Per-client rate limits (``CAREGW_RATE_LIMIT``): shared by replicas through Redis.

Two ``caregateway serve`` processes share one real ``redis-server`` (each has its own
SQLite audit trail) with ``CAREGW_RATE_LIMIT=5/minute``. One user alternating between the
replicas gets five answers in all, not five from each; the sixth, on either replica, is a
``429`` OperationOutcome with ``Retry-After``, audited with the user and the reason. Another
user, and a system client, each have allowances of their own. Without Redis the same
algorithm runs in process (tested on its own, with a clock the test moves), and a Redis
that cannot be reached falls back to it rather than failing requests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.embedded import free_port
from gateway.ops import Operations
from gateway.ops.ratelimit import (
    LocalLimiter,
    RateLimit,
    RateLimiter,
    TooManyRequests,
    parse_rate_limit,
)
from gateway.settings import ConfigurationError, Settings
from simulators.runner import RunningSources
from tests.adapters.support import ManualClock
from tests.gateway.serve_support import Replica, ReplicaSet, sqlite_events
from tests.redis_server import RedisServer, own_redis_server  # noqa: F401  (fixture)

LIMIT = 5


@pytest.fixture
async def pair(
    running_sources: RunningSources,
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> AsyncIterator[tuple[ReplicaSet, Replica, Replica]]:
    replicas = ReplicaSet(
        tmp_path,
        running_sources,
        CAREGW_REDIS_URL=own_redis_server.url,
        CAREGW_RATE_LIMIT=f"{LIMIT}/minute",
    )
    a, b = replicas.replica("a"), replicas.replica("b")
    try:
        a.spawn()
        b.spawn()
        await a.wait_live()
        await b.wait_live()
        yield replicas, a, b
    finally:
        replicas.stop_all()


async def test_two_replicas_share_one_allowance_and_429_is_audited(
    pair: tuple[ReplicaSet, Replica, Replica],
) -> None:
    replicas, a, b = pair
    number, gp = replicas.gp_of("both")
    user = replicas.token(sub="ratelimit-gp-1", org=gp)
    other = replicas.token(sub="ratelimit-gp-2", org=gp)
    system = replicas.token(
        sub="epr-system",
        org=gp,
        role=None,
        scopes=("system/*.rs",),
        client_kind="system",
        client_id="epr-gp",
    )
    async with httpx.AsyncClient(timeout=15) as client:

        async def read(replica: Replica, auth: dict[str, str], rid: str) -> httpx.Response:
            return await client.get(
                f"{replica.base_url}/Patient/{number}", headers={**auth, "X-Request-ID": rid}
            )

        # Five in all, alternating replicas: the allowance is one, not one per replica.
        for i in range(LIMIT):
            resp = await read((a, b)[i % 2], user, f"rl-user-{i}")
            assert resp.status_code == 200, resp.text
            assert resp.json()["resourceType"] == "Patient"
        for replica, rid in ((b, "rl-user-over-b"), (a, "rl-user-over-a")):
            refused = await read(replica, user, rid)
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"].startswith("application/fhir+json")
            retry = int(refused.headers["Retry-After"])
            assert 1 <= retry <= 60 // LIMIT
            issue = refused.json()["issue"][0]
            assert refused.json()["resourceType"] == "OperationOutcome"
            assert issue["code"] == "throttled"
            assert issue["details"]["coding"][0]["code"] == "rate-limited"
            assert "Patient" not in refused.text and number not in refused.text
            assert refused.headers["X-Request-ID"] == rid

        # Another user and a system client have allowances of their own.
        for i in range(LIMIT):
            assert (await read((b, a)[i % 2], other, f"rl-other-{i}")).status_code == 200
        for i in range(LIMIT):
            resp = await read((a, b)[i % 2], system, f"rl-system-{i}")
            assert resp.status_code == 200, resp.text
        assert (await read(b, system, "rl-system-over")).status_code == 429
        assert (await read(a, other, "rl-other-over")).status_code == 429

    # The refusals are audited where they were answered: the user, outcome 4, the reason.
    events = {
        rid: json.loads(text)
        for db in ("a", "b")
        for text in sqlite_events(replicas.folder / f"{db}.db")
        for rid in _request_ids(json.loads(text))
    }
    for rid, sub in (("rl-user-over-a", "ratelimit-gp-1"), ("rl-user-over-b", "ratelimit-gp-1")):
        event = events[rid]
        assert event["outcome"] == "4"
        assert event["outcomeDesc"].startswith("HTTP 429")
        assert "rate-limited" in event["outcomeDesc"]
        assert any(
            agent.get("who", {}).get("identifier", {}).get("value") == sub
            for agent in event["agent"]
        ), event["agent"]
    assert events["rl-system-over"]["outcomeDesc"].startswith("HTTP 429")
    assert events["rl-user-4"]["outcomeDesc"].startswith("HTTP 200")


def _request_ids(event: dict[str, object]) -> list[str]:
    found: list[str] = []
    for entity in event.get("entity", ()):  # type: ignore[attr-defined]
        if entity.get("type", {}).get("code") == "XrequestId":
            found.append(entity["what"]["identifier"]["value"])
    return found


def test_local_limiter_allows_a_burst_then_one_per_interval() -> None:
    clock = ManualClock(1000.0)
    limiter = LocalLimiter(RateLimit(6, 60.0), clock)
    assert [limiter.hit("k") for _ in range(6)] == [0] * 6
    wait = limiter.hit("k")
    assert wait == 10_000_000  # one request back every 10 s
    assert limiter.hit("other") == 0  # callers are counted apart
    clock.now += 9.9
    assert limiter.hit("k") > 0
    clock.now += 0.1
    assert limiter.hit("k") == 0
    assert limiter.hit("k") > 0
    clock.now += 60
    assert [limiter.hit("k") for _ in range(6)] == [0] * 6  # idle: the full burst again


async def test_unreachable_redis_falls_back_to_the_process_limit() -> None:
    class Caller:
        sub = "fallback-user"
        client_kind = "user"
        client_id = None

    limiter = RateLimiter(RateLimit(2, 60.0), f"redis://127.0.0.1:{free_port()}/0")
    try:
        await limiter.check(Caller())
        await limiter.check(Caller())
        with pytest.raises(TooManyRequests) as refused:
            await limiter.check(Caller())
    finally:
        await limiter.aclose()
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "30"
    assert limiter.redis_failures == 1  # then the process limit for REDIS_RETRY_S
    assert limiter.refused["user"] == 1


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("600/minute", RateLimit(600, 60.0)),
        ("10/s", RateLimit(10, 1.0)),
        ("5 / hours", RateLimit(5, 3600.0)),
        ("1/second", RateLimit(1, 1.0)),
    ],
)
def test_rate_limit_forms(text: str, limit: RateLimit) -> None:
    assert parse_rate_limit(text) == limit


@pytest.mark.parametrize("text", ["600", "0/minute", "ten/minute", "5/fortnight", "-1/s"])
def test_a_bad_rate_limit_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigurationError, match="CAREGW_RATE_LIMIT"):
        Operations.from_settings(Settings(rate_limit=text))


async def test_a_restarted_redis_is_used_again_on_the_next_check(
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    class Caller:
        sub = "restart-user"
        client_kind = "user"
        client_id = None

    limiter = RateLimiter(RateLimit(3, 60.0), own_redis_server.url)
    try:
        await limiter.check(Caller())
        await limiter.check(Caller())
        own_redis_server.restart()  # empty again: no persistence in the test server
        for _ in range(3):  # the pooled connection is dead: retried once on a new one
            await limiter.check(Caller())
        with pytest.raises(TooManyRequests):
            await limiter.check(Caller())
    finally:
        await limiter.aclose()
    assert limiter.redis_failures == 0

"""Source pools that cannot be lost: cancelled fetches against the real community simulator.

Finding: under load with source timeouts, a gateway ended holding all ``max_connections``
sockets to a source, owned by no request, and failed every later fetch after the full timeout
until restart (encode/httpcore#1093: a request cancelled inside httpcore's pool, after the
pool gave it a connection, leaves that connection behind). Fetch deadlines are cancellations,
so the test makes many of them, at scattered moments, against a source slower than the
deadline; then the source is made fast again and must answer.

These tests drive real httpx/httpcore against the simulator on loopback; cancellation timing
is scattered by the fetch pattern itself, so they poll with deadlines and never sleep to wait.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.base import Outcome, SourceConfig
from adapters.community.adapter import CommunityAdapter
from adapters.pool import BoundedClient, _busy_connections
from gateway.records.service import RecordService
from simulators.runner import RunningSources
from tests.adapters import _sources
from tests.adapters._sources import nhs, reset, source_config

TIMEOUT_S = 0.3
CONNECTIONS = 2
LOAD_S = 3.0  # bounded load phase; on the unfixed client every slot leaked well within it
WORKERS = 24


def community(running: RunningSources, **changes: Any) -> SourceConfig:
    return source_config(running, "community-fhir-stu3", **changes)


async def control(running: RunningSources, **settings: Any) -> None:
    await _sources.control(running, "community-fhir-stu3", **settings)


def patient_search(running: RunningSources) -> tuple[str, dict[str, str]]:
    """The community source's search for the ``both`` person, and the headers it needs."""
    config = community(running)
    url = f"{config.base_url}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs('both')}"
    return url, {"Authorization": f"Bearer {config.bearer_token}"}


@pytest.fixture
async def sources(running_sources: RunningSources) -> AsyncIterator[RunningSources]:
    await reset(running_sources, "community-fhir-stu3")
    yield running_sources
    await reset(running_sources, "community-fhir-stu3")


async def scattered_cancellations(
    fetch: Any, seconds: float, workers: int, seed: int = 20260913
) -> None:
    """``workers`` loops calling ``fetch()`` until ``seconds`` have passed, each call after a
    short random pause, so deadlines expire at every point of an exchange."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def worker() -> None:
        while loop.time() < end:
            await asyncio.sleep(rng.random() * TIMEOUT_S / 10)  # scatter, not synchronise
            await fetch()

    await asyncio.gather(*(worker() for _ in range(workers)))


async def poll_until_found(service: RecordService, adapter: CommunityAdapter, nhs_no: str) -> int:
    """Fetch until the source answers FOUND; the number of fetches it took (at most 10)."""
    for attempt in range(1, 11):
        result = await service._ask(adapter, nhs_no)
        if result.outcome is Outcome.FOUND:
            return attempt
    raise AssertionError("the source did not answer again within 10 fetches")


@pytest.mark.slow
async def test_cancelled_fetches_under_load_leave_the_source_reachable(
    sources: RunningSources,
) -> None:
    config = community(sources, timeout_s=TIMEOUT_S, max_connections=CONNECTIONS)
    adapter = CommunityAdapter(config)
    service = RecordService([adapter], {config.name: TIMEOUT_S})  # its own deadline cancels too
    number = nhs("community_only")
    try:
        # Slower than the deadline in total (three rounds of requests), so fetches time out
        # while requests are at every stage: waiting, connecting, sending, reading.
        await control(sources, latency_ms=int(TIMEOUT_S * 400))
        await scattered_cancellations(lambda: service._ask(adapter, number), LOAD_S, WORKERS)
        await control(sources, latency_ms=0)

        attempts = await poll_until_found(service, adapter, number)
        assert attempts <= 3
        result = await service._ask(adapter, number)
        assert result.outcome is Outcome.FOUND
        assert [r["resourceType"] for r in result.resources].count("Patient") == 1

        http = adapter._http
        assert isinstance(http, BoundedClient)
        # Every connection of the pool is idle or owned by an exchange in flight: none lost.
        busy = _busy_connections(http._pool.http)
        assert busy is not None and busy <= http.in_flight
    finally:
        await adapter.aclose()


async def leak_connections(inner: httpx.AsyncClient, url: str, want: int) -> int:
    """Cancel requests inside ``inner``'s pool (bypassing the bulkhead, as the unfixed client
    did) until ``want`` connections are owned by no request; the number lost."""
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    end = loop.time() + 15.0

    async def one() -> None:
        try:
            async with asyncio.timeout(rng.random() * 0.05):
                await inner.get(url)
        except (TimeoutError, httpx.HTTPError):
            pass

    while loop.time() < end:
        await asyncio.gather(*(one() for _ in range(12)))
        lost = _busy_connections(inner) or 0
        if lost >= want:
            return lost
    return _busy_connections(inner) or 0


@pytest.mark.slow
async def test_a_pool_that_lost_its_connections_is_replaced(sources: RunningSources) -> None:
    url, headers = patient_search(sources)
    await control(sources, latency_ms=20)
    async with BoundedClient(max_in_flight=CONNECTIONS, timeout=httpx.Timeout(0.5)) as client:
        old = client._pool
        lost = await leak_connections(old.http, url, CONNECTIONS)
        assert lost == CONNECTIONS, "could not reproduce the lost connections"
        await control(sources, latency_ms=0)

        # The first request finds no free connection (PoolTimeout); the pool is replaced.
        with pytest.raises(httpx.PoolTimeout):
            await client.get(url, headers=headers)
        assert client.renewals == 1 and client._pool is not old
        answer = await client.get(url, headers=headers)
        assert answer.status_code == 200 and answer.json()["resourceType"] == "Bundle"

        # The old pool is closed once drained, and its lost sockets with it.
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        while not old.http.is_closed and loop.time() < end:
            await asyncio.sleep(0.02)
        assert old.http.is_closed
        assert _busy_connections(old.http) == 0


async def test_consecutive_timeouts_with_no_progress_replace_the_pool(
    sources: RunningSources,
) -> None:
    url, headers = patient_search(sources)
    async with BoundedClient(
        max_in_flight=2, stall_after=3, stall_window_s=0.2, timeout=httpx.Timeout(0.2)
    ) as client:
        assert (await client.get(url, headers=headers)).status_code == 200
        await control(sources, latency_ms=600)
        for _ in range(2):
            with pytest.raises(httpx.ReadTimeout):
                await client.get(url, headers=headers)
        assert client.renewals == 0  # two are not yet a stall
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, headers=headers)
        assert client.renewals == 1
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, headers=headers)
        assert client.renewals == 1  # the count starts again on the new pool
        await control(sources, latency_ms=0)
        answer = await client.get(url, headers=headers)
        assert answer.status_code == 200 and answer.json()["resourceType"] == "Bundle"


async def test_answers_in_between_mean_progress_not_a_stall(sources: RunningSources) -> None:
    url, headers = patient_search(sources)
    async with BoundedClient(
        max_in_flight=2, stall_after=2, stall_window_s=0.0, timeout=httpx.Timeout(0.2)
    ) as client:
        for _ in range(3):
            await control(sources, latency_ms=600)
            with pytest.raises(httpx.ReadTimeout):
                await client.get(url, headers=headers)
            await control(sources, latency_ms=0)
            assert (await client.get(url, headers=headers)).status_code == 200
        assert client.renewals == 0

"""The bounded HTTP client every source adapter uses: at most N exchanges in flight at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from adapters.base import SourceConfig
from adapters.http_source import BoundedClient
from adapters.resilience import deadline_scope
from adapters.socialcare import SocialCareAdapter


class Gate:
    """A transport handler that holds every request until released, counting concurrency."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.seen = 0
        self.release = asyncio.Event()
        self.changed = asyncio.Condition()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        async with self.changed:
            self.in_flight += 1
            self.seen += 1
            self.most = max(self.most, self.in_flight)
            self.changed.notify_all()
        await self.release.wait()
        async with self.changed:
            self.in_flight -= 1
            self.changed.notify_all()
        return httpx.Response(200, json={"path": request.url.path})

    async def wait_for(self, in_flight: int) -> None:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: self.in_flight == in_flight), timeout=5
            )


async def test_no_more_than_max_in_flight_and_all_answered_in_order() -> None:
    gate = Gate()
    async with BoundedClient(max_in_flight=4, transport=httpx.MockTransport(gate)) as client:
        calls = [asyncio.create_task(client.get(f"http://source.test/r/{i}")) for i in range(25)]
        await gate.wait_for(4)
        # The other 21 wait on the client's semaphore, not in the transport.
        assert gate.seen == 4 and gate.most == 4
        gate.release.set()
        answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=10)
    assert [a.json()["path"] for a in answers] == [f"/r/{i}" for i in range(25)]
    assert gate.most == 4 and gate.seen == 25


async def test_a_cancelled_waiter_gives_back_nothing_it_did_not_take() -> None:
    gate = Gate()
    async with BoundedClient(max_in_flight=1, transport=httpx.MockTransport(gate)) as client:
        first = asyncio.create_task(client.get("http://source.test/a"))
        await gate.wait_for(1)
        waiting = asyncio.create_task(client.get("http://source.test/b"))
        await asyncio.sleep(0)  # let it reach the semaphore (a scheduling step, not a wait)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.release.set()
        assert (await first).json()["path"] == "/a"
        assert (await client.get("http://source.test/c")).json()["path"] == "/c"
    assert gate.most == 1 and gate.seen == 2


def test_the_bound_comes_from_the_source_config() -> None:
    config = SourceConfig(
        name="socialcare",
        kind="social-care-api",
        base_url="http://source.test",
        organisation="LA883",
        max_connections=7,
    )
    adapter = SocialCareAdapter(config)
    assert isinstance(adapter._http, BoundedClient) and adapter._http.max_in_flight == 7
    asyncio.run(adapter.aclose())


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedClient(max_in_flight=0)


async def test_a_cancelled_caller_never_cancels_the_exchange_it_started() -> None:
    """The caller stops waiting at once; the exchange runs to its end and only then gives its
    slot back, so no cancellation ever lands inside the transport (httpcore's pool)."""
    gate = Gate()
    async with BoundedClient(max_in_flight=1, transport=httpx.MockTransport(gate)) as client:
        caller = asyncio.create_task(client.get("http://source.test/slow"))
        await gate.wait_for(1)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert gate.in_flight == 1 and client.in_flight == 1  # still running, slot still held
        second = asyncio.create_task(client.get("http://source.test/next"))
        await asyncio.sleep(0)  # a scheduling step: it reaches the semaphore
        assert gate.seen == 1  # it waits for the slot, not in the transport
        gate.release.set()
        assert (await second).json()["path"] == "/next"
    assert gate.seen == 2 and gate.most == 1 and gate.in_flight == 0


async def test_exchanges_get_no_more_time_than_the_fetch_deadline_has_left() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.extensions["timeout"]))
        return httpx.Response(200, json={})

    async with BoundedClient(
        max_in_flight=2, timeout=httpx.Timeout(30.0), transport=httpx.MockTransport(handler)
    ) as client:
        await client.get("http://source.test/free")
        async with deadline_scope(1.0):
            await client.get("http://source.test/bounded")
    assert seen[0] == dict.fromkeys(("connect", "read", "write", "pool"), 30.0)
    assert set(seen[1]) == {"connect", "read", "write", "pool"}
    assert all(0 < value <= 1.0 for value in seen[1].values())


def test_a_stall_threshold_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedClient(max_in_flight=1, stall_after=0)

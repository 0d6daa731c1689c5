"""SocialCareClient over httpx.MockTransport: headers, paging, status mapping, retry, breaker.

:class:`FakeCouncil` is a small in-memory social care API (also used by the adapter tests).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.base import Outcome
from adapters.resilience import CircuitBreaker, SourceFault, deadline_scope
from adapters.socialcare.client import SocialCareClient

BASE = "http://council.test/api/v1"
KEY = "test-key"


@dataclass
class FakeCouncil:
    """In-memory council API. ``faults`` maps a path to statuses served before real answers."""

    people: list[dict[str, Any]] = field(default_factory=list)
    plans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    involvements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    faults: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    delay_s: float = 0.0
    delay_paths: tuple[str, ...] = ()
    requests: list[httpx.Request] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport(), timeout=httpx.Timeout(2.0))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/v1")
        self.hits[path] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s and (not self.delay_paths or path.startswith(self.delay_paths)):
                await asyncio.sleep(self.delay_s)
            return self._answer(request, path)
        finally:
            self.in_flight -= 1

    def _answer(self, request: httpx.Request, path: str) -> httpx.Response:
        if request.headers.get("X-Api-Key") != KEY:
            return httpx.Response(401, json={"error": "unauthorized"})
        queued = self.faults.get(path)
        if queued:
            status, headers = queued.pop(0)
            return httpx.Response(status, json={"error": "fault"}, headers=headers)
        parts = path.strip("/").split("/")
        params = request.url.params
        if parts == ["people"]:
            wanted = params.get("nhsNumber")
            found = [p for p in self.people if _digits(p.get("nhsNumber")) == wanted]
            return self._page(found, params.get("cursor"))
        if parts == ["changes"]:
            return self._page(self.changes, params.get("cursor"))
        if len(parts) >= 2 and parts[0] == "people":
            pid = parts[1]
            if not any(p["personId"] == pid for p in self.people):
                return httpx.Response(404, json={"error": "not_found"})
            if len(parts) == 2:
                return httpx.Response(
                    200, json=next(p for p in self.people if p["personId"] == pid)
                )
            if parts[2] == "support-plans":
                return self._page(self.plans.get(pid, []), params.get("cursor"))
            if parts[2] == "involvements":
                return self._page(self.involvements.get(pid, []), params.get("cursor"))
        return httpx.Response(404, json={"error": "not_found"})

    def _page(self, items: list[dict[str, Any]], cursor: str | None) -> httpx.Response:
        offset = int(cursor or 0)
        end = offset + self.page_size
        nxt = str(end) if end < len(items) else None
        return httpx.Response(200, json={"items": items[offset:end], "next": nxt})


def _digits(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.replace(" ", "").replace("-", "")


@pytest.fixture
async def council() -> AsyncIterator[FakeCouncil]:
    yield FakeCouncil(
        people=[{"personId": f"P{i}", "nhsNumber": "9434765919"} for i in range(5)],
        plans={"P0": [{"planId": f"SP-{i}"} for i in range(5)]},
    )


def make(council: FakeCouncil, key: str | None = KEY, **breaker: Any) -> SocialCareClient:
    return SocialCareClient(council.client(), BASE, CircuitBreaker(**breaker), api_key=key)


async def test_api_key_header_and_paths(council: FakeCouncil) -> None:
    client = make(council)
    await client.person("P1")
    (request,) = council.requests
    assert request.headers["X-Api-Key"] == KEY
    assert str(request.url) == f"{BASE}/people/P1"


async def test_person_id_is_one_path_segment(council: FakeCouncil) -> None:
    with pytest.raises(SourceFault) as info:
        await make(council).person("../changes")
    assert info.value.outcome is Outcome.NOT_FOUND
    assert council.requests[0].url.raw_path.startswith(b"/api/v1/people/..%2Fchanges")


async def test_paging_follows_next_cursors(council: FakeCouncil) -> None:
    people = await make(council).people("9434765919")
    assert [p["personId"] for p in people] == [f"P{i}" for i in range(5)]
    assert len(council.requests) == 3
    assert [r.url.params.get("cursor") for r in council.requests] == [None, "2", "4"]
    assert all(r.url.params["nhsNumber"] == "9434765919" for r in council.requests)
    plans = await make(council).support_plans("P0")
    assert len(plans) == 5


async def test_changes_sends_since(council: FakeCouncil) -> None:
    council.changes = [{"personId": "P1", "nhsNumber": "9434765919", "changedAt": "x"}]
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert len(await make(council).changes(since)) == 1
    assert council.requests[0].url.params["since"] == since.isoformat()
    with pytest.raises(ValueError):
        await make(council).changes(datetime(2026, 11, 1))


async def test_endless_paging_is_bad_data() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [], "next": "again"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = SocialCareClient(http, BASE, CircuitBreaker(), KEY)
    with pytest.raises(SourceFault) as info:
        await client.list("people")
    assert info.value.outcome is Outcome.BAD_DATA


@pytest.mark.parametrize(
    ("status", "outcome", "detail"),
    [
        (404, Outcome.NOT_FOUND, "HTTP 404"),
        (503, Outcome.UNAVAILABLE, "HTTP 503"),
        (500, Outcome.UNAVAILABLE, "HTTP 500"),
        (400, Outcome.UNAVAILABLE, "HTTP 400"),
        (403, Outcome.UNAVAILABLE, "refused"),
        (429, Outcome.UNAVAILABLE, "rate limited"),
    ],
)
async def test_status_mapping(
    council: FakeCouncil, status: int, outcome: Outcome, detail: str
) -> None:
    council.faults["/people/P1"] = [(status, {})]
    with pytest.raises(SourceFault) as info:
        await make(council).person("P1")
    assert info.value.outcome is outcome
    assert detail in info.value.detail
    assert council.hits["/people/P1"] == 1  # no retry without Retry-After, none for 503


async def test_wrong_api_key_is_refused(council: FakeCouncil) -> None:
    for key in (None, "wrong"):
        with pytest.raises(SourceFault) as info:
            await make(council, key=key).person("P1")
        assert info.value.outcome is Outcome.UNAVAILABLE
        assert "401" in info.value.detail


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b"not json", Outcome.BAD_DATA),
        (b"[1, 2]", Outcome.BAD_DATA),
        (b'{"x": 1}', Outcome.BAD_DATA),
    ],
)
async def test_bad_bodies(body: bytes, outcome: Outcome) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = SocialCareClient(http, BASE, CircuitBreaker(), KEY)
    with pytest.raises(SourceFault) as info:
        await client.people("9434765919")
    assert info.value.outcome is outcome


async def test_429_with_retry_after_is_retried_once_then_succeeds(council: FakeCouncil) -> None:
    council.faults["/people/P1"] = [(429, {"Retry-After": "0"})]
    person = await make(council).person("P1")
    assert person["personId"] == "P1"
    assert council.hits["/people/P1"] == 2


async def test_429_twice_is_unavailable(council: FakeCouncil) -> None:
    council.faults["/people/P1"] = [(429, {"Retry-After": "0"})] * 3
    with pytest.raises(SourceFault) as info:
        await make(council).person("P1")
    assert info.value.outcome is Outcome.UNAVAILABLE
    assert council.hits["/people/P1"] == 2


@pytest.mark.parametrize("retry_after", ["30", "soon", "Wed, 21 Oct 2099 07:28:00 GMT"])
async def test_long_or_unreadable_retry_after_is_not_waited_for(
    council: FakeCouncil, retry_after: str
) -> None:
    council.faults["/people/P1"] = [(429, {"Retry-After": retry_after})]
    with pytest.raises(SourceFault) as info:
        await make(council).person("P1")
    assert info.value.outcome is Outcome.UNAVAILABLE
    assert council.hits["/people/P1"] == 1  # no wait, no retry


async def test_retry_after_must_fit_the_deadline(council: FakeCouncil) -> None:
    council.faults["/people/P1"] = [(429, {"Retry-After": "1"})]
    async with deadline_scope(1.0):
        with pytest.raises(SourceFault):
            await make(council).person("P1")
    assert council.hits["/people/P1"] == 1


def raising(error: type[httpx.TransportError], text: str) -> SocialCareClient:
    """A client whose every request fails in httpx with ``error``."""

    async def handler(request: httpx.Request) -> httpx.Response:
        raise error(text, request=request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SocialCareClient(http, BASE, CircuitBreaker(), KEY)


async def test_timeouts_are_timed_out() -> None:
    with pytest.raises(SourceFault) as info:
        await raising(httpx.ReadTimeout, "slow").person("P1")
    assert info.value.outcome is Outcome.TIMED_OUT


async def test_connection_errors_are_unavailable() -> None:
    with pytest.raises(SourceFault) as info:
        await raising(httpx.ConnectError, "refused").person("P1")
    assert info.value.outcome is Outcome.UNAVAILABLE


async def test_circuit_opens_after_repeated_failures_and_not_for_404(council: FakeCouncil) -> None:
    now = [0.0]
    client = SocialCareClient(
        council.client(), BASE, CircuitBreaker(threshold=3, reset_s=10, clock=lambda: now[0]), KEY
    )
    for _ in range(5):
        with pytest.raises(SourceFault):
            await client.person("nobody")  # 404s: healthy answers
    council.faults["/people/P1"] = [(503, {})] * 3
    for _ in range(3):
        with pytest.raises(SourceFault):
            await client.person("P1")
    before = len(council.requests)
    with pytest.raises(SourceFault) as info:
        await client.person("P1")
    assert info.value.outcome is Outcome.UNAVAILABLE
    assert "circuit open" in info.value.detail
    assert len(council.requests) == before  # not even sent
    now[0] = 11.0  # half-open: one trial goes through and closes the circuit
    assert (await client.person("P1"))["personId"] == "P1"
    assert (await client.person("P2"))["personId"] == "P2"


async def test_error_details_carry_no_body_text() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": "person 9434765919 exploded"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = SocialCareClient(http, BASE, CircuitBreaker(), KEY)
    with pytest.raises(SourceFault) as info:
        await client.person("P1")
    assert info.value.detail == "HTTP 500"

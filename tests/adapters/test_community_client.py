"""The community HTTP client against ``httpx.MockTransport``: headers, paging, status mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters.base import Outcome
from adapters.community.client import CommunityClient
from adapters.resilience import CircuitBreaker, CircuitOpen, SourceFault, deadline_scope

BASE = "http://community.test/fhir"
TOKEN = "static-token"
NHS = "9991000003"

Handler = Callable[[httpx.Request], httpx.Response]


def make(handler: Handler, breaker: CircuitBreaker | None = None) -> CommunityClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=httpx.Timeout(1.0))
    return CommunityClient(http, BASE, breaker or CircuitBreaker(), TOKEN)


def bundle(ids: list[str], next_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "CarePlan", "id": i}, "search": {"mode": "match"}}
            for i in ids
        ],
    }
    if next_url:
        body["link"] = [{"relation": "self", "url": "x"}, {"relation": "next", "url": next_url}]
    return body


def outcome(code: str, diagnostics: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


async def test_sends_bearer_token_and_fhir_accept() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Patient", "id": "C1"})

    body = await make(handler).read("Patient", "C1")
    assert body["id"] == "C1"
    (request,) = seen
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/fhir+json"
    assert str(request.url) == f"{BASE}/Patient/C1"


async def test_search_follows_next_links_across_pages() -> None:
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        offset = int(request.url.params.get("_offset", "0"))
        pages = {0: (["a", "b"], f"{BASE}/CarePlan?subject=Patient/C1&_offset=2"),
                 2: (["c"], "CarePlan?subject=Patient/C1&_offset=3"),
                 3: (["d"], None)}  # fmt: skip
        ids, nxt = pages[offset]
        return httpx.Response(200, json=bundle(ids, nxt))

    found = await make(handler).search("CarePlan", {"subject": "Patient/C1"})
    assert [r["id"] for r, mode in found] == ["a", "b", "c", "d"]
    assert {mode for _, mode in found} == {"match"}
    assert len(requests) == 3
    assert requests[0] == f"{BASE}/CarePlan?subject=Patient%2FC1"


async def test_next_link_to_another_host_is_refused_so_the_token_stays_home() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json=bundle(["a"], "http://evil.test/fhir/CarePlan?p=2"))

    with pytest.raises(SourceFault) as err:
        await make(handler).search("CarePlan", {"subject": "Patient/C1"})
    assert err.value.outcome is Outcome.BAD_DATA
    assert hosts == ["community.test"]


async def test_search_that_is_not_a_bundle_is_bad_data() -> None:
    client = make(lambda r: httpx.Response(200, json={"resourceType": "Patient"}))
    with pytest.raises(SourceFault) as err:
        await client.search("Patient", {})
    assert err.value.outcome is Outcome.BAD_DATA


@pytest.mark.parametrize(
    ("status", "body", "expected", "detail"),
    [
        (404, outcome("not-found", f"no Patient {NHS}"), Outcome.NOT_FOUND, "HTTP 404"),
        (
            401,
            outcome("login", "token missing"),
            Outcome.UNAVAILABLE,
            "refused by source (HTTP 401)",
        ),
        (403, None, Outcome.UNAVAILABLE, "refused by source (HTTP 403)"),
        (500, outcome("exception", f"crash on {NHS}"), Outcome.UNAVAILABLE, "HTTP 500 (exception)"),
        (503, outcome("transient", "busy"), Outcome.UNAVAILABLE, "HTTP 503 (transient)"),
        (429, None, Outcome.UNAVAILABLE, "HTTP 429"),
        (400, {"not": "fhir"}, Outcome.UNAVAILABLE, "HTTP 400"),
    ],
)
async def test_statuses_map_to_outcomes_without_diagnostics(
    status: int, body: dict[str, Any] | None, expected: Outcome, detail: str
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json=body) if body else httpx.Response(status)

    with pytest.raises(SourceFault) as err:
        await make(handler).read("Patient", "C1")
    assert err.value.outcome is expected
    assert err.value.detail == detail
    assert NHS not in str(err.value)
    assert calls == 1  # no Retry-After: no retry


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]"])
async def test_non_object_json_is_bad_data(body: bytes) -> None:
    with pytest.raises(SourceFault) as err:
        await make(lambda r: httpx.Response(200, content=body)).read("Patient", "C1")
    assert err.value.outcome is Outcome.BAD_DATA


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured_once(status: int) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(status, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"resourceType": "Patient", "id": "C1"})

    assert (await make(handler).read("Patient", "C1"))["id"] == "C1"
    assert calls == 2


async def test_retry_after_only_once_then_unavailable() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(429, headers={"Retry-After": "0"})

    with pytest.raises(SourceFault) as err:
        await make(handler).read("Patient", "C1")
    assert err.value.outcome is Outcome.UNAVAILABLE and calls == 2


@pytest.mark.parametrize("retry_after", ["30", "Wed, 21 Oct 2099 07:28:00 GMT", "soon"])
async def test_retry_after_beyond_the_deadline_is_not_waited_for(retry_after: str) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, headers={"Retry-After": retry_after})

    async with deadline_scope(2.0):
        with pytest.raises(SourceFault) as err:
            await make(handler).read("Patient", "C1")
    assert err.value.outcome is Outcome.UNAVAILABLE and calls == 1  # no wait, no retry


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ReadTimeout("slow"), Outcome.TIMED_OUT),
        (httpx.ConnectTimeout("slow"), Outcome.TIMED_OUT),
        (httpx.ConnectError("refused"), Outcome.UNAVAILABLE),
        (httpx.RemoteProtocolError("reset"), Outcome.UNAVAILABLE),
    ],
)
async def test_transport_errors_are_mapped(exc: Exception, expected: Outcome) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(SourceFault) as err:
        await make(handler).read("Patient", "C1")
    assert err.value.outcome is expected


async def test_circuit_opens_after_repeated_failures_and_stops_calling() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    now = [0.0]
    breaker = CircuitBreaker(threshold=2, reset_s=10.0, clock=lambda: now[0])
    client = make(handler, breaker)
    for _ in range(2):
        with pytest.raises(SourceFault):
            await client.read("Patient", "C1")
    with pytest.raises(CircuitOpen):
        await client.read("Patient", "C1")
    assert calls == 2 and breaker.state == "open"
    now[0] = 11.0  # half-open: one trial goes through
    with pytest.raises(SourceFault):
        await client.read("Patient", "C1")
    assert calls == 3


async def test_not_found_does_not_count_against_the_breaker() -> None:
    breaker = CircuitBreaker(threshold=1)
    client = make(lambda r: httpx.Response(404), breaker)
    for _ in range(3):
        with pytest.raises(SourceFault):
            await client.read("Patient", "C1")
    assert breaker.state == "closed"

"""Fault control on both simulators: failures, Retry-After, latency and request counters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fhir.resources.STU3.operationoutcome import OperationOutcome

from simulators.runner import RunningSources

SOCIAL_PATH = "/people/P900001"
COMMUNITY_PATH = "/Patient/C900001"


@pytest_asyncio.fixture(autouse=True)
async def reset_controls(running_sources: RunningSources) -> AsyncIterator[None]:
    urls = (running_sources.social_care_url, running_sources.community_url)
    async with httpx.AsyncClient() as client:
        for url in urls:
            (await client.post(f"{url}/_control/reset")).raise_for_status()
        yield
        for url in urls:
            (await client.post(f"{url}/_control/reset")).raise_for_status()


@pytest.fixture(params=["social", "community"])
def target(
    request: pytest.FixtureRequest, social: httpx.AsyncClient, community: httpx.AsyncClient
) -> tuple[httpx.AsyncClient, str]:
    if request.param == "social":
        return social, SOCIAL_PATH
    return community, COMMUNITY_PATH


async def test_fail_count_then_recover(target: tuple[httpx.AsyncClient, str]) -> None:
    client, path = target
    change = await client.post("/_control", json={"fail_status": 503, "fail_count": 2})
    assert change.json()["fail_count"] == 2
    statuses = [(await client.get(path)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    state = (await client.get("/_control")).json()
    assert state["requests"] == {path: 3}
    assert state["fail_count"] == 0


async def test_fail_until_reset(target: tuple[httpx.AsyncClient, str]) -> None:
    client, path = target
    await client.post("/_control", json={"fail_status": 503, "fail_count": None})
    assert [(await client.get(path)).status_code for _ in range(3)] == [503, 503, 503]
    await client.post("/_control/reset")
    assert (await client.get(path)).status_code == 200
    assert (await client.get("/_control")).json()["requests"] == {path: 1}


async def test_429_carries_retry_after(target: tuple[httpx.AsyncClient, str]) -> None:
    client, path = target
    await client.post("/_control", json={"fail_status": 429, "fail_count": 1, "retry_after_s": 3})
    response = await client.get(path)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"


async def test_fault_bodies_follow_each_spec(
    social: httpx.AsyncClient, community: httpx.AsyncClient
) -> None:
    for client in (social, community):
        await client.post("/_control", json={"fail_status": 503, "fail_count": 1})
    assert (await social.get(SOCIAL_PATH)).json() == {"error": "unavailable"}
    response = await community.get(COMMUNITY_PATH)
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    OperationOutcome.model_validate(outcome)
    assert outcome["issue"][0]["code"] == "transient"


async def test_latency_is_applied(target: tuple[httpx.AsyncClient, str]) -> None:
    client, path = target
    state = (await client.post("/_control", json={"latency_ms": 1500})).json()
    assert state["latency_ms"] == 1500
    # A client that will not wait as long as the simulated slowness gives up.
    with pytest.raises(httpx.ReadTimeout):
        await client.get(path, timeout=httpx.Timeout(5.0, read=0.05))
    # The control endpoints themselves are never delayed.
    assert (await client.get("/_control", timeout=5.0)).status_code == 200


async def test_partial_update_keeps_other_settings(target: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = target
    await client.post("/_control", json={"latency_ms": 5})
    state = (await client.post("/_control", json={"fail_status": 503})).json()
    assert state["latency_ms"] == 5 and state["fail_status"] == 503
    assert (await client.post("/_control", json={"fail_status": 200})).status_code == 400


async def test_counters_count_each_path_and_unauthorised_calls(
    running_sources: RunningSources, social: httpx.AsyncClient
) -> None:
    await social.get("/people", params={"nhsNumber": "9991000003"})
    await social.get("/people", params={"nhsNumber": "9991000070"})
    await social.get("/people/P900001/support-plans")
    async with httpx.AsyncClient(base_url=running_sources.social_care_url) as anonymous:
        assert (await anonymous.get("/people/P900001")).status_code == 401
    state = (await social.get("/_control")).json()
    assert state["requests"] == {
        "/people": 2,
        "/people/P900001/support-plans": 1,
        "/people/P900001": 1,
    }

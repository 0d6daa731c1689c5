"""A source that fails or is too slow gives a partial answer that names it; none → 503."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from simulators.population import SCENARIOS
from tests.gateway.harness import Gateway
from tests.gateway.source_faults import fresh_gateway, set_control


@pytest.fixture
async def fast_timeout_gateway(
    running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    """A fresh gateway (own circuit breakers) whose sources time out after 0.3 s.

    Both simulators are reset before and after, whatever earlier tests left behind."""
    async with fresh_gateway(running_sources, signing_key, timeout_s=0.3) as gw:
        yield gw


def _number() -> str:
    number = SCENARIOS["both"].nhs_number
    assert number is not None
    return number


def _incomplete(bundle: dict[str, Any]) -> list[str]:
    return [
        issue["details"]["text"]
        for e in bundle.get("entry", ())
        if e["search"]["mode"] == "outcome"
        for issue in e["resource"]["issue"]
        if issue["code"] == "incomplete"
    ]


async def test_one_source_down_gives_partial_bundle(
    fast_timeout_gateway: Gateway, running_sources: Any
) -> None:
    await set_control(running_sources.community_url, fail_status=503)
    resp = await fast_timeout_gateway.get(f"/Patient/{_number()}/$everything")
    assert resp.status_code == 200
    bundle = resp.json()
    texts = _incomplete(bundle)
    assert len(texts) == 1 and "community" in texts[0]
    sources = {
        e["resource"]["meta"].get("source")
        for e in bundle["entry"]
        if e["search"]["mode"] == "match"
    }
    assert "urn:caregateway:source:community" not in sources
    assert "urn:caregateway:source:socialcare" in sources
    read = await fast_timeout_gateway.get(f"/Patient/{_number()}")
    assert read.status_code == 200 and read.headers["X-Incomplete-Sources"] == "community"


async def test_slow_source_beyond_timeout_gives_partial_bundle(
    fast_timeout_gateway: Gateway, running_sources: Any
) -> None:
    await set_control(running_sources.social_care_url, latency_ms=1500)
    resp = await fast_timeout_gateway.get("/CarePlan", params={"patient": _number()})
    assert resp.status_code == 200
    bundle = resp.json()
    texts = _incomplete(bundle)
    assert len(texts) == 1 and "socialcare" in texts[0] and "timed-out" in texts[0]
    plans = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert plans and all(p["meta"]["source"] == "urn:caregateway:source:community" for p in plans)
    assert bundle["total"] == len(plans)


async def test_no_source_answering_is_503(
    fast_timeout_gateway: Gateway, running_sources: Any
) -> None:
    await set_control(running_sources.community_url, fail_status=503)
    await set_control(running_sources.social_care_url, fail_status=503)
    resp = await fast_timeout_gateway.get(f"/Patient/{_number()}")
    assert resp.status_code == 503
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "transient"
    assert "community" in body["issue"][0]["diagnostics"]

"""The cold path against the real simulators: which requests go together, how many there
are, connections kept alive, and each resource validated once.

Requests in flight are counted by the simulator (``most_in_flight`` of ``/_control``) and,
for which request overlapped which, by the adapter's own client: counters, never clocks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from adapters import context, validation
from adapters.base import Outcome, SourceKind
from adapters.community import _common
from adapters.community.adapter import CommunityAdapter
from adapters.netio import AsyncioBackend
from adapters.pool import BoundedClient
from adapters.resilience import CircuitBreaker
from adapters.socialcare.adapter import SocialCareAdapter
from adapters.socialcare.client import SocialCareClient
from simulators.runner import RunningSources
from tests.adapters import _sources
from tests.adapters._sources import closing, nhs, of_type, source_config

COMMUNITY: SourceKind = "community-fhir-stu3"
SOCIAL: SourceKind = "social-care-api"
#: Long enough that requests sent together are all held by the simulator at once.
HOLD_MS = 300


async def _control_state(running: RunningSources, kind: SourceKind) -> dict[str, Any]:
    url = running.community_url if kind == COMMUNITY else running.social_care_url
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{url}/_control")
    state: dict[str, Any] = answer.json()
    return state


@pytest.fixture
async def community(running_sources: RunningSources) -> AsyncIterator[CommunityAdapter]:
    await _sources.reset(running_sources, COMMUNITY)
    adapter = CommunityAdapter(source_config(running_sources, COMMUNITY, timeout_s=5.0))
    async for made in closing(adapter, running_sources, COMMUNITY):
        yield made


@pytest.fixture
async def social(running_sources: RunningSources) -> AsyncIterator[SocialCareAdapter]:
    await _sources.reset(running_sources, SOCIAL)
    adapter = SocialCareAdapter(source_config(running_sources, SOCIAL, timeout_s=5.0))
    async for made in closing(adapter, running_sources, SOCIAL):
        yield made


def overlaps(adapter: CommunityAdapter) -> dict[str, set[str]]:
    """For each path the adapter's client GETs, the paths already in flight when it began."""
    client = adapter._client
    original = client.get
    in_flight: set[str] = set()
    seen: dict[str, set[str]] = {}

    async def get(path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        seen[path] = set(in_flight)
        in_flight.add(path)
        try:
            return await original(path, params)
        finally:
            in_flight.discard(path)

    client.get = get  # type: ignore[method-assign]
    return seen


async def test_a_patients_plans_come_in_one_page_though_the_source_pages_by_two(
    community: CommunityAdapter, running_sources: RunningSources
) -> None:
    result = await community.fetch(nhs("both"))
    assert result.outcome is Outcome.FOUND, result.detail
    assert len(of_type(result.resources, "CarePlan")) == 3  # the simulator's pages hold 2
    requests = (await _control_state(running_sources, COMMUNITY))["requests"]
    assert requests["/CarePlan"] == 1
    assert requests["/CareTeam"] == 1


async def test_the_patients_gp_is_read_alongside_the_care_searches(
    community: CommunityAdapter, running_sources: RunningSources
) -> None:
    seen = overlaps(community)
    await _sources.control(running_sources, COMMUNITY, latency_ms=HOLD_MS)
    result = await community.fetch(nhs("both"))
    assert result.outcome is Outcome.FOUND, result.detail
    # The patient references org-F81001 (GP) and org-RWX; both were asked for while the
    # CarePlan and CareTeam searches were out, not after them.
    for org in ("Organization/org-F81001", "Organization/org-RWX"):
        assert {"CarePlan", "CareTeam"} <= seen[org], seen
    state = await _control_state(running_sources, COMMUNITY)
    assert state["most_in_flight"] >= 4  # the two searches and the two organisations
    # Practitioners named by the plans and teams are known only from their answers.
    practitioners = [p for p in seen if p.startswith("Practitioner/")]
    assert practitioners
    assert all(not ({"CarePlan", "CareTeam"} & seen[p]) for p in practitioners)


async def test_support_plans_and_involvements_are_asked_for_together(
    social: SocialCareAdapter, running_sources: RunningSources
) -> None:
    await _sources.control(running_sources, SOCIAL, latency_ms=HOLD_MS)
    result = await social.fetch(nhs("both"))
    assert result.outcome is Outcome.FOUND, result.detail
    state = await _control_state(running_sources, SOCIAL)
    assert state["most_in_flight"] == 2  # the person's two lists; the lookup came first


async def test_a_patient_is_checked_against_stu3_once_and_each_r4_resource_once(
    community: CommunityAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    stu3_checks: list[str] = []
    r4_checks: list[str] = []

    class CountedPatient:
        @staticmethod
        def model_validate(raw: Any) -> Any:
            stu3_checks.append(raw["resourceType"])
            return _original_patient.model_validate(raw)

    _original_patient = _common._MODELS["Patient"]
    monkeypatch.setitem(_common._MODELS, "Patient", CountedPatient)
    original_validate = validation.validate_resource

    def counted_validate(resource: Mapping[str, Any]) -> None:
        r4_checks.append(f"{resource['resourceType']}/{resource['id']}")
        original_validate(resource)

    monkeypatch.setattr(context, "validate_resource", counted_validate)
    result = await community.fetch(nhs("both"))
    assert result.outcome is Outcome.FOUND, result.detail
    assert stu3_checks == ["Patient"]  # read from the search answer, mapped without a recheck
    assert sorted(r4_checks) == sorted(f"{r['resourceType']}/{r['id']}" for r in result.resources)


def test_a_checked_resource_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"resourceType": "Organization", "id": "org-1", "name": "A practice"}
    checked = _common.parse_stu3(raw, "Organization")
    assert checked == raw and isinstance(checked, _common.Checked)

    class Refusing:
        @staticmethod
        def model_validate(raw: Any) -> Any:
            raise AssertionError("validated twice")

    monkeypatch.setitem(_common._MODELS, "Organization", Refusing)
    assert _common.parse_stu3(checked, "Organization") is checked
    with pytest.raises(_common.ConversionError):  # the type is still checked
        _common.parse_stu3(checked, "Practitioner")


async def test_source_pools_keep_one_connection_alive_on_asyncio_streams(
    running_sources: RunningSources,
) -> None:
    config = source_config(running_sources, SOCIAL)
    http = BoundedClient(max_in_flight=4, timeout=httpx.Timeout(5.0))
    try:
        pool = http._pool.http._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, AsyncioBackend)
        client = SocialCareClient(http, config.base_url, CircuitBreaker(), config.api_key)
        first = await client.people(nhs("both"))
        again = await client.people(nhs("both"))
        assert first == again and first[0]["personId"]
        assert len(pool.connections) == 1  # the second exchange reused the first's socket
    finally:
        await http.aclose()


async def test_failures_through_asyncio_streams_read_as_before(
    running_sources: RunningSources,
) -> None:
    config = source_config(running_sources, SOCIAL, timeout_s=0.2)
    slow = SocialCareAdapter(config)
    try:
        await _sources.control(running_sources, SOCIAL, latency_ms=1_000)
        timed_out = await slow.fetch(nhs("both"))
    finally:
        await _sources.reset(running_sources, SOCIAL)
        await slow.aclose()
    assert timed_out.outcome is Outcome.TIMED_OUT
    refused = SocialCareAdapter(
        source_config(running_sources, SOCIAL, base_url="http://127.0.0.1:9/api/v1")
    )
    try:
        answer = await refused.fetch(nhs("both"))
    finally:
        await refused.aclose()
    assert answer.outcome is Outcome.UNAVAILABLE and answer.detail == "ConnectError"

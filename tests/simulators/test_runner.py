"""Starting and stopping the simulators, and the gateway configuration they give."""

from __future__ import annotations

import httpx
import pytest

from adapters.base import SourceConfig
from simulators.population import SCENARIOS, build_population
from simulators.runner import RunningSources, describe, serve_sources, source_configs


def test_source_configs(running_sources: RunningSources) -> None:
    social, community = source_configs(running_sources)
    assert social == SourceConfig(
        name="socialcare", kind="social-care-api", base_url=running_sources.social_care_url,
        organisation="LA883", api_key=running_sources.api_key, timeout_s=2.0,
    )
    assert community == SourceConfig(
        name="community", kind="community-fhir-stu3", base_url=running_sources.community_url,
        organisation="RWX", bearer_token=running_sources.bearer_token, timeout_s=2.0,
    )
    assert social.care_domain == "social-care" and community.care_domain == "health"


def test_urls_are_loopback(running_sources: RunningSources) -> None:
    assert running_sources.social_care_url.startswith("http://127.0.0.1:")
    assert running_sources.community_url.startswith("http://127.0.0.1:")
    assert running_sources.social_care_url != running_sources.community_url


def test_describe_lists_every_scenario(running_sources: RunningSources) -> None:
    text = describe(running_sources)
    for scenario in SCENARIOS.values():
        assert scenario.key in text
        assert (scenario.nhs_number or scenario.person_ids[0]) in text
    assert running_sources.api_key in text and running_sources.bearer_token in text


async def test_serve_and_stop_a_second_pair() -> None:
    population = build_population(seed=5, size=60)
    async with serve_sources(population=population) as running:
        assert running.population is population
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{running.social_care_url}/people/P900001",
                headers={"X-Api-Key": running.api_key},
            )
        assert response.status_code == 200
        url = running.social_care_url
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/people/P900001")

"""CommunityAdapter against the real community simulator over loopback HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters import nhs_number, ukcore
from adapters.base import Outcome, SourceKind
from adapters.community.adapter import CommunityAdapter
from adapters.community.client import CommunityClient
from adapters.resilience import CircuitBreaker
from simulators.population import SCENARIOS
from simulators.runner import RunningSources
from tests.adapters import _sources
from tests.adapters._sources import nhs, of_type
from tests.adapters.test_community_convert import r4_valid

KIND: SourceKind = "community-fhir-stu3"


config, control, adapter = _sources.bound(KIND, CommunityAdapter)


def nhs_identifier(patient: dict[str, Any]) -> dict[str, Any]:
    (found,) = [i for i in patient["identifier"] if i["system"] == ukcore.NHS_NUMBER_SYSTEM]
    return found


async def test_person_in_both_sources(adapter: CommunityAdapter) -> None:
    result = await adapter.fetch(nhs("both"))
    assert result.outcome is Outcome.FOUND, result.detail
    (patient,) = of_type(result.resources, "Patient")
    assert patient["id"] == f"community.{SCENARIOS['both'].patient_ids[0]}"
    ident = nhs_identifier(patient)
    assert ident["value"] == nhs("both")
    assert ident["extension"][0]["url"] == ukcore.EXT_NHS_VERIFICATION
    assert len({i["system"] for i in patient["identifier"]}) >= 3  # NHS, person id, local ids
    assert patient["generalPractitioner"][0]["identifier"]["value"] == "F81001"
    plans = of_type(result.resources, "CarePlan")
    teams = of_type(result.resources, "CareTeam")
    assert plans and teams
    for plan in plans:
        assert plan["subject"] == {"reference": f"Patient/{nhs('both')}"}
        assert plan["author"]["identifier"] == ukcore.ods_identifier("RWX")
        codes = {(c["system"], c["code"]) for cc in plan["category"] for c in cc["coding"]}
        assert (ukcore.CARE_PLAN_TYPE_SYSTEM, "health") in codes
    team_ids = {f"CareTeam/{t['id']}" for t in teams}
    for plan in plans:
        assert {t["reference"] for t in plan.get("careTeam", ())} <= team_ids
    (provenance,) = of_type(result.resources, "Provenance")
    targets = {t["reference"] for t in provenance["target"]}
    assert targets == {f"{r['resourceType']}/{r['id']}" for r in result.resources[:-1]}
    assert provenance["agent"][0]["who"]["identifier"] == ukcore.ods_identifier("RWX")
    for resource in result.resources:
        r4_valid(resource)


@pytest.mark.parametrize(
    "key", ["both", "community_only", "mental_health_r", "dob_conflict", "deceased"]
)
async def test_scenarios_are_found_and_valid(adapter: CommunityAdapter, key: str) -> None:
    result = await adapter.fetch(nhs(key))
    assert result.outcome is Outcome.FOUND, result.detail
    assert result.resources[0]["resourceType"] == "Patient"
    for resource in result.resources:
        assert resource["meta"]["source"] == ukcore.source_uri("community")
        r4_valid(resource)


async def test_mental_health_plan_is_labelled_restricted(adapter: CommunityAdapter) -> None:
    result = await adapter.fetch(nhs("mental_health_r"))
    labels = [
        label
        for plan in of_type(result.resources, "CarePlan")
        for label in plan["meta"].get("security", ())
    ]
    assert ukcore.security_label("R") in labels
    assert all(label["system"] == ukcore.CONFIDENTIALITY_SYSTEM for label in labels)


async def test_unverified_number_keeps_its_status(adapter: CommunityAdapter) -> None:
    result = await adapter.fetch(nhs("dob_conflict"))
    (patient,) = of_type(result.resources, "Patient")
    coding = nhs_identifier(patient)["extension"][0]["valueCodeableConcept"]["coding"][0]
    assert (coding["system"], coding["code"]) == (ukcore.NHS_VERIFICATION_SYSTEM, "02")


async def test_deceased(adapter: CommunityAdapter) -> None:
    result = await adapter.fetch(nhs("deceased"))
    (patient,) = of_type(result.resources, "Patient")
    assert str(patient["deceasedDateTime"]).startswith("2026-09-14")


async def test_social_care_only_person_is_not_found(adapter: CommunityAdapter) -> None:
    result = await adapter.fetch(nhs("social_only"))
    assert result.outcome is Outcome.NOT_FOUND and result.resources == ()


async def test_general_population_converts_cleanly(
    adapter: CommunityAdapter, running_sources: RunningSources
) -> None:
    """The population's vendor mess (sub-codes, contained resources, every URL/system)."""
    numbers = sorted(
        {
            nhs_number.normalise(p.nhs_number)
            for p in running_sources.population.community_patients
            if p.nhs_number and nhs_number.is_valid(p.nhs_number)
        }
    )[:60]
    found = 0
    for number in numbers:
        result = await adapter.fetch(number)
        assert result.outcome is Outcome.FOUND, result.detail
        found += 1
        for resource in result.resources:
            r4_valid(resource)
    assert found == len(numbers) > 0


async def test_nhs_number_for_resolves_a_source_patient_id(adapter: CommunityAdapter) -> None:
    assert await adapter.nhs_number_for(SCENARIOS["both"].patient_ids[0]) == nhs("both")
    assert await adapter.nhs_number_for("C-no-such-patient") is None


async def test_client_follows_next_links_on_the_real_server(
    running_sources: RunningSources,
) -> None:
    cfg = config(running_sources)
    patient_id = SCENARIOS["both"].patient_ids[0]
    async with httpx.AsyncClient() as http:
        client = CommunityClient(http, cfg.base_url, CircuitBreaker(), cfg.bearer_token)
        all_at_once = await client.search("CarePlan", {"subject": f"Patient/{patient_id}"})
        paged = await client.search("CarePlan", {"subject": f"Patient/{patient_id}", "_count": "1"})
    matches = sorted(r["id"] for r, mode in all_at_once if mode == "match")
    assert len(matches) >= 2
    assert sorted(r["id"] for r, mode in paged if mode == "match") == matches


async def test_503_is_unavailable(
    adapter: CommunityAdapter, running_sources: RunningSources
) -> None:
    await control(running_sources, fail_status=503)
    result = await adapter.fetch(nhs("both"))
    assert result.outcome is Outcome.UNAVAILABLE and "503" in (result.detail or "")


async def test_429_with_retry_after_is_retried_once(
    adapter: CommunityAdapter, running_sources: RunningSources
) -> None:
    await _sources.assert_429_retried_once(adapter, running_sources, KIND)


async def test_slow_source_times_out(running_sources: RunningSources) -> None:
    await control(running_sources, latency_ms=600)
    adapter = CommunityAdapter(config(running_sources, timeout_s=0.3))
    try:
        result = await adapter.fetch(nhs("both"))
    finally:
        await adapter.aclose()
        await control(running_sources, latency_ms=0)
    assert result.outcome is Outcome.TIMED_OUT


async def test_wrong_token_is_refused(running_sources: RunningSources) -> None:
    adapter = CommunityAdapter(config(running_sources, bearer_token="wrong"))
    result = await _sources.fetched_once(adapter, nhs("both"))
    assert result.outcome is Outcome.UNAVAILABLE and "401" in (result.detail or "")

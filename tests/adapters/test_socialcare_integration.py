"""SocialCareAdapter against the real social care simulator over loopback HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapters import ukcore
from adapters.base import Outcome, SourceKind
from adapters.socialcare import SocialCareAdapter
from adapters.validation import validate_resource
from simulators.runner import RunningSources
from tests.adapters import _sources
from tests.adapters._sources import nhs, of_type, reset

KIND: SourceKind = "social-care-api"


config, control, adapter = _sources.bound(KIND, SocialCareAdapter)


def verification(patient: dict[str, Any]) -> str:
    (ident,) = [i for i in patient["identifier"] if i["system"] == ukcore.NHS_NUMBER_SYSTEM]
    return str(ident["extension"][0]["valueCodeableConcept"]["coding"][0]["code"])


def labels(resource: dict[str, Any]) -> list[str]:
    return [s["code"] for s in resource["meta"].get("security", [])]


@pytest.mark.parametrize(
    ("key", "outcome"),
    [
        ("both", Outcome.FOUND),
        ("social_only", Outcome.FOUND),
        ("community_only", Outcome.NOT_FOUND),
        ("duplicate", Outcome.FOUND),
        ("restricted", Outcome.FOUND),
        ("safeguarding", Outcome.FOUND),
        ("deceased", Outcome.FOUND),
        ("dob_conflict", Outcome.FOUND),
    ],
)
async def test_scenarios(adapter: SocialCareAdapter, key: str, outcome: Outcome) -> None:
    result = await adapter.fetch(nhs(key))
    assert result.outcome is outcome, result.detail
    for resource in result.resources:
        validate_resource(resource)
        assert resource["meta"]["source"] == ukcore.source_uri(adapter.name)
    if outcome is Outcome.FOUND:
        assert result.resources[0]["resourceType"] == "Patient"
        assert result.resources[-1]["resourceType"] == "Provenance"


async def test_person_in_both_sources(adapter: SocialCareAdapter) -> None:
    result = await adapter.fetch(nhs("both"))
    (patient,) = of_type(result.resources, "Patient")
    assert patient["id"] == "socialcare.P900001"
    assert verification(patient) == "01"
    assert patient["generalPractitioner"][0]["identifier"]["value"] == "F81001"
    plans = of_type(result.resources, "CarePlan")
    assert plans and all(p["subject"] == {"reference": f"Patient/{nhs('both')}"} for p in plans)
    assert all(p["author"]["identifier"] == ukcore.ods_identifier("LA883") for p in plans)
    (team,) = of_type(result.resources, "CareTeam")
    roles = [
        c["code"]
        for p in team["participant"]
        for r in p.get("role", [])
        for c in r.get("coding", [])
    ]
    assert ukcore.LEAD_PROFESSIONAL in roles
    (provenance,) = of_type(result.resources, "Provenance")
    assert provenance["agent"][0]["who"]["identifier"] == ukcore.ods_identifier("LA883")
    assert len(provenance["target"]) == len(result.resources) - 1


async def test_duplicate_people(adapter: SocialCareAdapter) -> None:
    result = await adapter.fetch(nhs("duplicate"))
    patients = of_type(result.resources, "Patient")
    assert [p["id"] for p in patients] == ["socialcare.P900004", "socialcare.P900005"]
    assert result.resources[0]["resourceType"] == result.resources[1]["resourceType"] == "Patient"
    assert sorted(verification(p) for p in patients) == ["01", "02"]
    assert "duplicate-person" in [i.code for i in result.issues]
    assert len(of_type(result.resources, "Provenance")) == 2


async def test_restricted_person_labels_everything(adapter: SocialCareAdapter) -> None:
    result = await adapter.fetch(nhs("restricted"))
    assert result.resources and all(labels(r) == ["R"] for r in result.resources)


async def test_safeguarding_plan_is_restricted_beside_a_normal_one(
    adapter: SocialCareAdapter,
) -> None:
    result = await adapter.fetch(nhs("safeguarding"))
    plans = of_type(result.resources, "CarePlan")
    by_type = {p["category"][0]["coding"][0]["code"]: labels(p) for p in plans}
    assert by_type["safeguarding-protection"] == ["R"]
    assert [] in by_type.values()
    assert labels(of_type(result.resources, "Patient")[0]) == []


async def test_deceased(adapter: SocialCareAdapter) -> None:
    result = await adapter.fetch(nhs("deceased"))
    assert of_type(result.resources, "Patient")[0]["deceasedDateTime"] == "2026-09-14"


async def test_nhs_number_for(adapter: SocialCareAdapter) -> None:
    assert await adapter.nhs_number_for("P900001") == nhs("both")
    assert await adapter.nhs_number_for("P900006") is None  # malformed, fails Modulus 11
    assert await adapter.nhs_number_for("P900007") is None  # no NHS number
    assert await adapter.nhs_number_for("P999999") is None  # unknown


async def test_changes_feed(adapter: SocialCareAdapter) -> None:
    changed = await adapter.changes(datetime(2000, 1, 1, tzinfo=UTC))
    numbers = {c.nhs_number for c in changed}
    assert nhs("both") in numbers and nhs("duplicate") in numbers
    assert all(c.changed_at.tzinfo is not None for c in changed)


async def test_503_is_unavailable(
    adapter: SocialCareAdapter, running_sources: RunningSources
) -> None:
    await control(running_sources, fail_status=503, fail_count=1)
    result = await adapter.fetch(nhs("both"))
    assert result.outcome is Outcome.UNAVAILABLE


async def test_429_with_retry_after_then_success(
    adapter: SocialCareAdapter, running_sources: RunningSources
) -> None:
    await _sources.assert_429_retried_once(adapter, running_sources, KIND)


async def test_slow_source_times_out(running_sources: RunningSources) -> None:
    made = SocialCareAdapter(config(running_sources, timeout_s=0.3))
    try:
        await control(running_sources, latency_ms=1000)
        result = await made.fetch(nhs("both"))
        assert result.outcome is Outcome.TIMED_OUT
    finally:
        await made.aclose()
        await reset(running_sources, KIND)


async def test_wrong_api_key_is_refused(running_sources: RunningSources) -> None:
    made = SocialCareAdapter(config(running_sources, api_key="wrong"))
    result = await _sources.fetched_once(made, nhs("both"))
    assert result.outcome is Outcome.UNAVAILABLE
    assert result.detail is not None and "401" in result.detail


async def test_general_population_maps_cleanly(
    adapter: SocialCareAdapter, running_sources: RunningSources
) -> None:
    """Every council person with a valid NHS number maps without dropped resources."""
    people = [p for p in running_sources.population.council_people if p.nhs_number][:25]
    bad = 0
    for person in people:
        assert person.nhs_number is not None
        result = await adapter.fetch(person.nhs_number)
        assert result.ok, result.detail
        bad += sum(i.code == "invalid-resource" for i in result.issues)
    assert bad == 0

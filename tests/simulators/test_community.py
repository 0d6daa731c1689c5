"""The community simulator over real HTTP: STU3 content checked with fhir.resources STU3 models."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhir.resources.STU3.bundle import Bundle
from fhir.resources.STU3.careplan import CarePlan
from fhir.resources.STU3.careteam import CareTeam
from fhir.resources.STU3.operationoutcome import OperationOutcome
from fhir.resources.STU3.organization import Organization
from fhir.resources.STU3.patient import Patient
from fhir.resources.STU3.practitioner import Practitioner

from simulators import _vocab as v
from simulators.population import SCENARIOS
from simulators.runner import RunningSources

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
FHIR_JSON = "application/fhir+json"


def _identifier(nhs: str | None) -> dict[str, str]:
    assert nhs is not None
    return {"identifier": f"{NHS_SYSTEM}|{nhs}"}


async def _search_all(client: httpx.AsyncClient, path: str,
                      params: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of a search, each validated as an STU3 Bundle; returns the entries."""
    entries: list[dict[str, Any]] = []
    response = await client.get(path, params=params)
    for _ in range(50):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(FHIR_JSON)
        body = response.json()
        Bundle.model_validate(body)
        assert body["type"] == "searchset"
        entries.extend(body.get("entry", []))
        nxt = [link["url"] for link in body["link"] if link["relation"] == "next"]
        if not nxt:
            return entries
        response = await client.get(nxt[0])
    raise AssertionError("paging did not end")


async def test_bearer_token_required(running_sources: RunningSources) -> None:
    async with httpx.AsyncClient(base_url=running_sources.community_url) as client:
        missing = await client.get("/Patient", params=_identifier(SCENARIOS["both"].nhs_number))
        wrong = await client.get("/Patient/C900001", headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith(FHIR_JSON)
        OperationOutcome.model_validate(response.json())


async def test_patient_search_returns_valid_careconnect_patient(
    community: httpx.AsyncClient,
) -> None:
    entries = await _search_all(community, "/Patient", _identifier(SCENARIOS["both"].nhs_number))
    [entry] = entries
    patient = entry["resource"]
    Patient.model_validate(patient)
    assert patient["id"] == "C900001"
    [nhs] = [i for i in patient["identifier"] if i["system"] == NHS_SYSTEM]
    assert nhs["value"] == SCENARIOS["both"].nhs_number
    status = nhs["extension"][0]["valueCodeableConcept"]["coding"][0]
    assert status["code"] == "01"
    assert any(i["system"] == v.PAS_NUMBER_SYSTEM for i in patient["identifier"])
    assert patient["generalPractitioner"][0]["reference"] == "Organization/org-F81001"


async def test_unknown_number_gives_empty_bundle(community: httpx.AsyncClient) -> None:
    entries = await _search_all(community, "/Patient", _identifier("9990000018"))
    assert entries == []
    other_system = await community.get("/Patient", params={
        "identifier": f"urn:other|{SCENARIOS['both'].nhs_number}"})
    assert other_system.json()["total"] == 0


async def test_read_unknown_resources_is_404_operation_outcome(
    community: httpx.AsyncClient,
) -> None:
    for path in ("/Patient/C999999", "/Organization/nope", "/Practitioner/nope",
                 "/NoSuchType/1"):
        response = await community.get(path)
        assert response.status_code == 404, path
        outcome = response.json()
        OperationOutcome.model_validate(outcome)
        assert outcome["issue"][0]["code"] == "not-found"


async def test_search_without_subject_is_400(community: httpx.AsyncClient) -> None:
    response = await community.get("/CarePlan")
    assert response.status_code == 400
    OperationOutcome.model_validate(response.json())


async def test_care_plans_paged_with_every_status(community: httpx.AsyncClient) -> None:
    first = (await community.get("/CarePlan", params={"subject": "Patient/C900001"})).json()
    assert len(first["entry"]) == 2 and first["total"] == 3
    assert any(link["relation"] == "next" for link in first["link"])
    entries = await _search_all(community, "/CarePlan", {"subject": "Patient/C900001"})
    plans = [e["resource"] for e in entries]
    for plan in plans:
        CarePlan.model_validate(plan)
        assert isinstance(plan["author"], list)
    assert {p["status"] for p in plans} == {"active", "completed", "suspended"}
    contained = [p for p in plans if p.get("contained")]
    referenced = [p for p in plans if not p.get("contained")]
    assert contained and referenced
    assert all(a["reference"].startswith("#") for a in contained[0]["author"])
    assert {a["reference"] for a in referenced[0]["author"]} >= {"Organization/org-RWX"}


async def test_include_care_team(community: httpx.AsyncClient) -> None:
    entries = await _search_all(
        community, "/CarePlan", {"subject": "Patient/C900001", "_include": "CarePlan:care-team"}
    )
    included = [e for e in entries if e["search"]["mode"] == "include"]
    assert [e["resource"]["resourceType"] for e in included] == ["CareTeam"]


async def test_mental_health_plan_is_restricted(community: httpx.AsyncClient) -> None:
    patient_id = SCENARIOS["mental_health_r"].patient_ids[0]
    entries = await _search_all(community, "/CarePlan", {"subject": f"Patient/{patient_id}"})
    labels = {
        e["resource"]["category"][0]["coding"][0]["code"]: e["resource"]["meta"].get("security")
        for e in entries
    }
    assert labels["718347000"] == [
        {"system": "http://hl7.org/fhir/v3/Confidentiality", "code": "R", "display": "restricted"}
    ]
    assert labels["773130005"] is None


async def test_care_teams_and_referenced_resources(community: httpx.AsyncClient) -> None:
    entries = await _search_all(community, "/CareTeam", {"subject": "Patient/C900001"})
    [team] = [e["resource"] for e in entries]
    CareTeam.model_validate(team)
    assert team["participant"]
    for participant in team["participant"]:
        reference = participant["member"]["reference"]
        response = await community.get(f"/{reference}")
        assert response.status_code == 200
        Practitioner.model_validate(response.json())
    org = (await community.get("/Organization/org-RWX")).json()
    Organization.model_validate(org)
    assert org["identifier"] == [
        {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RWX"}
    ]


@pytest.mark.parametrize("key", sorted(k for k, s in SCENARIOS.items() if s.patient_ids))
async def test_scenario_people_are_valid_stu3(
    community: httpx.AsyncClient, key: str
) -> None:
    scenario = SCENARIOS[key]
    patients = await _search_all(community, "/Patient", _identifier(scenario.nhs_number))
    assert [e["resource"]["id"] for e in patients] == list(scenario.patient_ids)
    for patient_id in scenario.patient_ids:
        for path in ("/CarePlan", "/CareTeam"):
            await _search_all(community, path, {"subject": f"Patient/{patient_id}"})


async def test_general_population_sample_is_valid_stu3(
    community: httpx.AsyncClient, running_sources: RunningSources
) -> None:
    sample = running_sources.population.community_patients[:100:10]
    for patient in sample:
        assert patient.nhs_number is not None
        found = await _search_all(community, "/Patient", _identifier(patient.nhs_number))
        assert [e["resource"]["id"] for e in found] == [patient.patient_id]
        for path in ("/CarePlan", "/CareTeam"):
            await _search_all(community, path, {"patient": patient.patient_id})


async def test_dob_conflict_and_deceased(community: httpx.AsyncClient) -> None:
    conflict = (await community.get(f"/Patient/{SCENARIOS['dob_conflict'].patient_ids[0]}"))
    body = conflict.json()
    assert body["birthDate"] == "1941-04-13"
    [nhs] = [i for i in body["identifier"] if i["system"] == NHS_SYSTEM]
    assert nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "02"
    dead = (await community.get(f"/Patient/{SCENARIOS['deceased'].patient_ids[0]}")).json()
    assert dead["deceasedDateTime"] == "2026-09-14"

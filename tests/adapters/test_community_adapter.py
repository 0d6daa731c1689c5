"""CommunityAdapter.fetch / nhs_number_for against an in-memory STU3 server (MockTransport)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters import ukcore
from adapters.base import DataIssue, Outcome, SourceAdapter, SourceConfig
from adapters.community.adapter import CommunityAdapter
from adapters.resilience import CircuitBreaker
from adapters.validation import UKCoreValidationError
from tests.adapters.test_community_convert import (
    NHS,
    care_plan,
    care_team,
    organization,
    patient,
    practitioner,
    r4_valid,
)

BASE = "http://community.test/fhir"
CONFIG = SourceConfig(
    "community", "community-fhir-stu3", BASE, "RWX", timeout_s=1.0, bearer_token="t0ken"
)


class FakeSource:
    """Just enough of the STU3 API: searches by identifier/subject, reads, and counters."""

    def __init__(self) -> None:
        self.patients: list[dict[str, Any]] = [patient()]
        self.plans: dict[str, list[dict[str, Any]]] = {
            "C1": [
                care_plan(),
                care_plan(id="cp-2", author=[{"reference": "Organization/org-rwx"}], contained=[]),
            ]
        }
        self.teams: dict[str, list[dict[str, Any]]] = {"C1": [care_team()]}
        self.others = {
            "Organization/org-gp": organization("org-gp", "F81001", "Tilbury Health Centre"),
            "Organization/org-rwx": organization(),
            "Practitioner/pr-1": practitioner(),
        }
        self.calls: Counter[str] = Counter()
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail: dict[str, int] = {}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/fhir/")
        self.calls[path] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if path.split("/")[0] in self.fail:
            return httpx.Response(self.fail[path.split("/")[0]])
        if request.headers.get("Authorization") != "Bearer t0ken":
            return httpx.Response(401)
        params = request.url.params
        if path == "Patient":
            system, _, value = params["identifier"].partition("|")
            assert system == ukcore.NHS_NUMBER_SYSTEM
            found = [p for p in self.patients if p["identifier"][0]["value"] == value]
            return self.bundle(found)
        if path in ("CarePlan", "CareTeam"):
            pid = params["subject"].removeprefix("Patient/")
            store = self.plans if path == "CarePlan" else self.teams
            return self.bundle(store.get(pid, []))
        kind, _, rid = path.partition("/")
        if kind == "Patient":
            match = [p for p in self.patients if p["id"] == rid]
            return httpx.Response(200, json=match[0]) if match else httpx.Response(404)
        if path in self.others:
            return httpx.Response(200, json=self.others[path])
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})

    @staticmethod
    def bundle(resources: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
            },
        )


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


def adapter_for(source: FakeSource, breaker: CircuitBreaker | None = None) -> CommunityAdapter:
    http = httpx.AsyncClient(transport=httpx.MockTransport(source.handle))
    return CommunityAdapter(CONFIG, http, breaker)


def test_meets_the_protocol(source: FakeSource) -> None:
    adapter = adapter_for(source)
    assert isinstance(adapter, SourceAdapter)
    assert (adapter.name, adapter.organisation, adapter.domain) == ("community", "RWX", "health")


async def test_fetch_returns_validated_uk_core_resources_with_one_provenance(
    source: FakeSource,
) -> None:
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND, result.detail
    assert (result.source, result.organisation, result.domain) == ("community", "RWX", "health")
    assert result.issues == () and result.fetched_at is not None
    kinds = [r["resourceType"] for r in result.resources]
    assert kinds == ["Patient", "CarePlan", "CarePlan", "CareTeam", "Provenance"]
    ids = [f"{r['resourceType']}/{r['id']}" for r in result.resources]
    assert ids[:4] == [
        "Patient/community.C1",
        "CarePlan/community.C1.cp-1",
        "CarePlan/community.C1.cp-2",
        "CareTeam/community.C1.ct-1",
    ]
    provenance = result.resources[-1]
    assert provenance["id"] == "community.C1.provenance"
    assert [t["reference"] for t in provenance["target"]] == ids[:4]
    assert provenance["recorded"] == result.fetched_at.isoformat()
    assert provenance["agent"][0]["who"]["identifier"] == ukcore.ods_identifier("RWX")
    for resource in result.resources:
        assert resource["meta"]["source"] == ukcore.source_uri("community")
        assert {"system": ukcore.CARE_DOMAIN_SYSTEM, "code": "health"} in resource["meta"]["tag"]
        r4_valid(resource)
    patient_out = result.resources[0]
    assert patient_out["generalPractitioner"][0]["identifier"]["value"] == "F81001"
    assert result.resources[2]["author"]["display"] == "Community Trust"


async def test_referenced_resources_are_fetched_once_per_fetch(source: FakeSource) -> None:
    source.plans["C1"].append(care_plan(id="cp-3"))
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert source.calls["Practitioner/pr-1"] == 1
    assert source.calls["Organization/org-rwx"] == 1
    assert source.calls["Organization/org-gp"] == 1
    assert source.calls["Organization/org"] == 0  # contained, never fetched


async def test_unknown_person_is_not_found(source: FakeSource) -> None:
    result = await adapter_for(source).fetch("9991000070")
    assert result.outcome is Outcome.NOT_FOUND and result.resources == ()
    assert result.ok


async def test_duplicate_patients_are_all_returned_and_reported(source: FakeSource) -> None:
    twin = patient()
    twin["id"] = "C2"
    source.patients.append(twin)
    source.plans["C2"] = [care_plan(id="cp-9")]
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    kinds = [r["resourceType"] for r in result.resources]
    assert kinds[:2] == ["Patient", "Patient"] and kinds.count("Provenance") == 2
    assert {r["id"] for r in result.resources if r["resourceType"] == "Provenance"} == {
        "community.C1.provenance",
        "community.C2.provenance",
    }
    (issue,) = result.issues
    assert issue.code == "duplicate-person"
    assert NHS not in issue.text and "Thurlow" not in issue.text


async def test_missing_reference_is_a_data_issue_not_a_failure(source: FakeSource) -> None:
    del source.others["Practitioner/pr-1"]
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    # Found once per kind of resource that holds the reference: a finding about the care team
    # must outlive the care plan's if the plan is withheld from the caller.
    assert sorted((i.code, i.about) for i in result.issues) == [
        ("unresolved-reference", "CarePlan"),
        ("unresolved-reference", "CareTeam"),
    ]


async def test_invalid_stu3_is_bad_data_with_no_identifiers(source: FakeSource) -> None:
    source.plans["C1"][0]["status"] = ["Joan", NHS]
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.BAD_DATA
    assert result.detail and "CarePlan" in result.detail
    assert NHS not in result.detail and "Joan" not in result.detail


@pytest.mark.parametrize(
    ("failing", "status", "expected"),
    [
        ("Patient", 503, Outcome.UNAVAILABLE),
        ("CareTeam", 500, Outcome.UNAVAILABLE),
        ("Organization", 503, Outcome.UNAVAILABLE),
        ("CarePlan", 401, Outcome.UNAVAILABLE),
    ],
)
async def test_source_failures_are_values(
    source: FakeSource, failing: str, status: int, expected: Outcome
) -> None:
    source.fail[failing] = status
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is expected and not result.ok
    assert result.resources == () and result.detail


async def test_wrong_token_is_unavailable(source: FakeSource) -> None:
    config = SourceConfig("community", "community-fhir-stu3", BASE, "RWX", bearer_token="nope")
    http = httpx.AsyncClient(transport=httpx.MockTransport(source.handle))
    result = await CommunityAdapter(config, http).fetch(NHS)
    assert result.outcome is Outcome.UNAVAILABLE and "401" in (result.detail or "")


async def test_overall_deadline_gives_timed_out(source: FakeSource) -> None:
    source.delay = 0.4  # three rounds of 0.4 s > 1.0 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.TIMED_OUT
    assert loop.time() - started < 1.5


async def test_care_plan_and_care_team_searches_run_concurrently(source: FakeSource) -> None:
    source.delay = 0.05
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert source.max_in_flight >= 2


async def test_open_circuit_answers_unavailable_without_calling(source: FakeSource) -> None:
    breaker = CircuitBreaker(threshold=1, reset_s=60)
    source.fail["Patient"] = 503
    adapter = adapter_for(source, breaker)
    assert (await adapter.fetch(NHS)).outcome is Outcome.UNAVAILABLE
    calls = sum(source.calls.values())
    result = await adapter.fetch(NHS)
    assert result.outcome is Outcome.UNAVAILABLE and "circuit" in (result.detail or "")
    assert sum(source.calls.values()) == calls


async def test_nhs_number_for(source: FakeSource) -> None:
    adapter = adapter_for(source)
    assert await adapter.nhs_number_for("C1") == NHS
    assert await adapter.nhs_number_for("C404") is None
    assert await adapter.nhs_number_for("../Organization/org-gp") is None
    source.patients[0]["identifier"][0]["value"] = "9991000004"
    assert await adapter.nhs_number_for("C1") is None


async def test_aclose_closes_only_an_owned_client(source: FakeSource) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(source.handle))
    await CommunityAdapter(CONFIG, http).aclose()
    assert not http.is_closed
    owned = CommunityAdapter(CONFIG)
    await owned.aclose()


async def test_only_references_the_conversion_uses_are_fetched(source: FakeSource) -> None:
    plan = source.plans["C1"][0]
    plan["note"] = [{"text": "n", "authorReference": {"reference": "Practitioner/unused"}}]
    plan["author"].append({"reference": "http://elsewhere.test/fhir/Organization/far"})
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert source.calls["Practitioner/unused"] == 0
    assert not any("far" in path for path in source.calls)


async def test_every_resource_is_validated_and_a_failure_is_left_out(
    source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one rule (``adapters/context.py``): the CareTeam that fails UK Core validation is
    left out and reported by type; the Patient and both plans are still answered."""
    from adapters import context

    seen: list[str] = []

    def validate(resource: dict[str, Any]) -> None:
        seen.append(resource["resourceType"])
        if resource["resourceType"] == "CareTeam":
            raise UKCoreValidationError("CareTeam: status: not in the required value set")

    monkeypatch.setattr(context, "validate_resource", validate)
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert [r["id"] for r in result.resources] == [
        "community.C1",
        "community.C1.cp-1",
        "community.C1.cp-2",
        "community.C1.provenance",
    ]
    assert result.issues == (
        DataIssue(
            "invalid-resource", "a CareTeam failed UK Core validation and was left out", "CareTeam"
        ),
    )
    provenance = result.resources[-1]
    assert [t["reference"] for t in provenance["target"]] == [
        "Patient/community.C1",
        "CarePlan/community.C1.cp-1",
        "CarePlan/community.C1.cp-2",
    ]
    assert seen == ["Patient", "CarePlan", "CarePlan", "CareTeam", "Provenance"]


async def test_a_patient_that_fails_validation_takes_its_record_with_it(
    source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters import context

    def validate(resource: dict[str, Any]) -> None:
        if resource["resourceType"] == "Patient":
            raise UKCoreValidationError("Patient: gender: not in the required value set")

    monkeypatch.setattr(context, "validate_resource", validate)
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.BAD_DATA and result.resources == ()
    assert result.detail == "no person record could be normalised"


async def test_a_labelled_resource_failing_validation_is_reported_as_labelled(
    source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters import context

    source.plans["C1"][1]["meta"] = {
        "security": [{"system": ukcore.STU3_CONFIDENTIALITY_SYSTEM, "code": "R"}]
    }

    def validate(resource: dict[str, Any]) -> None:
        if resource["id"] == "community.C1.cp-2":
            raise UKCoreValidationError("CarePlan: status: not in the required value set")

    monkeypatch.setattr(context, "validate_resource", validate)
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert "community.C1.cp-2" not in {r["id"] for r in result.resources}
    assert result.issues == (
        DataIssue(
            "invalid-resource",
            "a CarePlan failed UK Core validation and was left out",
            "CarePlan",
            labelled=True,
        ),
    )


# --- which resource type each finding is about ----------------------------------------------

Change = Callable[[FakeSource], None]


def _activity_status(source: FakeSource) -> None:
    source.plans["C1"][0]["activity"][0]["detail"]["status"] = "paused"


def _verification(source: FakeSource) -> None:
    source.patients[0]["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0][
        "code"
    ] = "42"


def _second_nhs_number(value: str) -> Change:
    def change(source: FakeSource) -> None:
        source.patients[0]["identifier"].append(
            {"system": ukcore.NHS_NUMBER_SYSTEM, "value": value}
        )

    return change


def _label(kind: str) -> Change:
    def change(source: FakeSource) -> None:
        raw = {
            "Patient": source.patients[0],
            "CarePlan": source.plans["C1"][0],
            "CareTeam": source.teams["C1"][0],
        }[kind]
        raw["meta"] = {"security": [{"system": ukcore.STU3_CONFIDENTIALITY_SYSTEM, "code": "Q"}]}

    return change


def _missing_contained_member(source: FakeSource) -> None:
    source.teams["C1"][0]["participant"][0]["member"] = {"reference": "#nobody"}


def _missing_gp(source: FakeSource) -> None:
    source.patients[0]["generalPractitioner"] = [{"reference": "Organization/missing"}]


def _twin(source: FakeSource) -> None:
    twin = patient()
    twin["id"] = "C2"
    source.patients.append(twin)


def _twin_without_the_number(source: FakeSource) -> None:
    other = patient()
    other["id"] = "C3"
    other["identifier"][0]["system"] = "https://example.org/not-nhs-number"
    source.patients.append(other)


@pytest.mark.parametrize(
    ("change", "code", "text", "about"),
    [
        (
            _activity_status,
            "unknown-code",
            "care plan activity status not recognised",
            "CarePlan",
        ),
        (
            _verification,
            "unknown-code",
            "NHS number verification status not recognised",
            "Patient",
        ),
        (
            _second_nhs_number("9991000004"),
            "invalid-nhs-number",
            "a patient record holds an invalid NHS number",
            "Patient",
        ),
        (
            _second_nhs_number("9434765919"),
            "conflicting-nhs-number",
            "a patient record holds two NHS numbers",
            "Patient",
        ),
        (
            _label("Patient"),
            "unknown-code",
            "confidentiality code not in v3 Confidentiality",
            "Patient",
        ),
        (
            _label("CarePlan"),
            "unknown-code",
            "confidentiality code not in v3 Confidentiality",
            "CarePlan",
        ),
        (
            _label("CareTeam"),
            "unknown-code",
            "confidentiality code not in v3 Confidentiality",
            "CareTeam",
        ),
        (
            _missing_contained_member,
            "unresolved-reference",
            "a contained reference names no contained resource",
            "CareTeam",
        ),
        (
            _missing_gp,
            "unresolved-reference",
            "a referenced Organization was not found",
            "Patient",
        ),
        (
            _twin,
            "duplicate-person",
            "2 patient records share one NHS number",
            "Patient",
        ),
        (
            _twin_without_the_number,
            "nhs-number-mismatch",
            "a matched patient holds another NHS number",
            "Patient",
        ),
    ],
)
async def test_each_finding_names_the_resource_type_it_is_about(
    source: FakeSource, change: Change, code: str, text: str, about: str
) -> None:
    change(source)
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND, result.detail
    assert result.issues == (DataIssue(code, text, about),)


async def test_an_unknown_ethnic_category_keeps_the_record_as_text(source: FakeSource) -> None:
    """One unknown code must not cost the whole source: the category is kept as text (UK
    Core binds it extensibly), the rest of the record is served, and the finding says so."""
    (raw,) = source.patients
    raw["extension"] = [
        {
            "url": ukcore.STU3_EXT_ETHNIC_CATEGORY,
            "valueCodeableConcept": {
                "coding": [{"system": sorted(ukcore.STU3_ETHNIC_CATEGORY_SYSTEMS)[0], "code": "Q9"}]
            },
        }
    ]
    result = await adapter_for(source).fetch(NHS)
    assert result.outcome is Outcome.FOUND, result.detail
    (out,) = [r for r in result.resources if r["resourceType"] == "Patient"]
    ethnic = [e for e in out["extension"] if e["url"] == ukcore.EXT_ETHNIC_CATEGORY]
    assert ethnic == [{"url": ukcore.EXT_ETHNIC_CATEGORY, "valueCodeableConcept": {"text": "Q9"}}]
    assert "CarePlan" in {r["resourceType"] for r in result.resources}
    assert result.issues == (
        DataIssue(
            "unknown-code", "ethnic category code not in UKCore-EthnicCategoryEngland", "Patient"
        ),
    )

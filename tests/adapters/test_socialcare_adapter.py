"""SocialCareAdapter over an in-memory council API: fetch shape, labels, issues, failures."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters import ukcore
from adapters.base import ChangedPerson, DataIssue, Outcome, SourceAdapter, SourceConfig
from adapters.resilience import CircuitBreaker, SourceFault
from adapters.socialcare import SocialCareAdapter
from adapters.validation import validate_resource
from tests.adapters.test_socialcare_client import BASE, KEY, FakeCouncil
from tests.adapters.test_socialcare_mapping import NHS, involvement, person, plan

OTHER_NHS = "9990000018"
CONFIG = SourceConfig("lascare", "social-care-api", BASE, "LA883", timeout_s=1.0, api_key=KEY)


def council(**changes: Any) -> FakeCouncil:
    fake = FakeCouncil(
        people=[person()],
        plans={
            "P000123": [
                plan(),
                plan(planId="SP-2", status="ended", outcomes=[], services=[], needs=[]),
            ]
        },
        involvements={"P000123": [involvement(), involvement(staffId="X1", end="2001-01-01")]},
    )
    for key, value in changes.items():
        setattr(fake, key, value)
    return fake


def adapter(fake: FakeCouncil, **config: Any) -> SocialCareAdapter:
    cfg = SourceConfig(**{**_fields(CONFIG), **config})
    return SocialCareAdapter(cfg, client=fake.client(), breaker=CircuitBreaker(threshold=3))


def _fields(cfg: SourceConfig) -> dict[str, Any]:
    return {f: getattr(cfg, f) for f in cfg.__slots__}


def kinds(resources: tuple[dict[str, Any], ...]) -> list[str]:
    return [r["resourceType"] for r in resources]


def labels(resource: dict[str, Any]) -> list[str]:
    return [s["code"] for s in resource.get("meta", {}).get("security", [])]


def test_is_a_source_adapter() -> None:
    made = adapter(council())
    assert isinstance(made, SourceAdapter)
    assert (made.name, made.organisation, made.domain) == ("lascare", "LA883", "social-care")


async def test_fetch_returns_uk_core_resources_patient_first_provenance_last() -> None:
    result = await adapter(council()).fetch(NHS)
    assert result.outcome is Outcome.FOUND, result.detail
    assert result.ok and result.issues == ()
    assert (result.source, result.organisation, result.domain) == (
        "lascare",
        "LA883",
        "social-care",
    )
    assert result.fetched_at is not None and result.fetched_at.tzinfo is not None
    assert kinds(result.resources) == [
        "Patient",
        "CarePlan",
        "Goal",
        "Goal",
        "CarePlan",
        "CareTeam",
        "Provenance",
    ]
    for resource in result.resources:
        validate_resource(resource)
        assert resource["meta"]["source"] == "urn:caregateway:source:lascare"
        assert {"system": ukcore.CARE_DOMAIN_SYSTEM, "code": "social-care"} in resource["meta"][
            "tag"
        ]
        assert resource["id"].startswith("lascare.P000123")
        assert labels(resource) == []
    *body, provenance = result.resources
    assert provenance["target"] == [{"reference": f"{r['resourceType']}/{r['id']}"} for r in body]
    assert provenance["recorded"] == result.fetched_at.isoformat()
    assert provenance["agent"][0]["who"]["identifier"] == ukcore.ods_identifier("LA883")
    team = result.resources[5]
    assert [p["member"]["identifier"]["value"] for p in team["participant"]] == ["SW0042"]
    # the organisation's name comes from its own involvement
    assert result.resources[1]["author"]["display"] == "Thurrock Council"


async def test_nhs_number_is_normalised_before_asking() -> None:
    fake = council()
    result = await adapter(fake).fetch("943 476-5919")
    assert result.outcome is Outcome.FOUND
    assert fake.requests[0].url.params["nhsNumber"] == NHS


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "123",
        "9434765918",
        "abcdefghij",
        "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",
    ],
)
async def test_invalid_nhs_number_is_not_found_without_asking(bad: str) -> None:
    fake = council()
    result = await adapter(fake).fetch(bad)
    assert result.outcome is Outcome.NOT_FOUND
    assert fake.requests == []


async def test_unknown_person_is_not_found() -> None:
    result = await adapter(council()).fetch(OTHER_NHS)
    assert result.outcome is Outcome.NOT_FOUND
    assert result.resources == ()


async def test_duplicates_return_both_patients_first_and_say_so() -> None:
    fake = council()
    fake.people.append(person(personId="P000999", nhsNumber="943-476-5919"))
    fake.involvements["P000999"] = [involvement(staffId="SW0077")]
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    found = kinds(result.resources)
    assert found[:2] == ["Patient", "Patient"]
    assert found[-2:] == ["Provenance", "Provenance"]
    assert {r["id"] for r in result.resources if r["resourceType"] == "CareTeam"} == {
        "lascare.P000123.careteam",
        "lascare.P000999.careteam",
    }
    assert [i.code for i in result.issues] == ["duplicate-person"]
    assert NHS not in result.issues[0].text


async def test_restricted_person_labels_every_resource() -> None:
    result = await adapter(council(people=[person(restricted=True)])).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert all(labels(r) == ["R"] for r in result.resources)


async def test_restricted_plan_labels_only_that_plan_and_its_goals() -> None:
    fake = council()
    fake.plans["P000123"][0]["confidentiality"] = "restricted"
    result = await adapter(fake).fetch(NHS)
    labelled = {r["id"] for r in result.resources if labels(r) == ["R"]}
    assert labelled == {
        "lascare.P000123.SP-000981",
        "lascare.P000123.SP-000981.g1",
        "lascare.P000123.SP-000981.g2",
    }


async def test_a_resource_that_fails_validation_is_dropped_and_reported() -> None:
    fake = council()
    fake.plans["P000123"].append(plan(planId="X" * 70))  # id longer than FHIR allows
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert "lascare.P000123.SP-000981" in {r["id"] for r in result.resources}
    assert not any("XXXX" in r["id"] for r in result.resources)
    provenance = result.resources[-1]
    assert not any("XXXX" in t["reference"] for t in provenance["target"])
    assert {i.code for i in result.issues} == {"invalid-resource"}
    assert {i.text for i in result.issues} == {
        "a CarePlan failed UK Core validation and was left out",
        "a Goal failed UK Core validation and was left out",
    }


async def test_a_patient_that_fails_validation_is_bad_data() -> None:
    fake = council(people=[person(personId="P_1")])  # '_' is not allowed in a FHIR id
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is Outcome.BAD_DATA
    assert result.resources == ()
    assert result.detail == "no person record could be normalised"


async def test_a_plan_without_an_id_is_reported() -> None:
    fake = council()
    fake.plans["P000123"].append(plan(planId=None))
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert [i.code for i in result.issues] == ["bad-record"]


async def test_matched_person_holding_another_number_is_skipped() -> None:
    fake = council(people=[person(), person(personId="P2", nhsNumberStatus="missing")])
    result = await adapter(fake).fetch(NHS)
    assert kinds(result.resources).count("Patient") == 1
    assert [i.code for i in result.issues] == ["nhs-number-mismatch"]


async def test_person_gone_between_calls_has_no_plans() -> None:
    fake = council()
    fake.faults["/people/P000123/support-plans"] = [(404, {})]
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert "CarePlan" not in kinds(result.resources)


async def test_plans_and_involvements_are_fetched_concurrently() -> None:
    fake = council(delay_s=0.2, delay_paths=("/people/P",))
    fake.people.append(person(personId="P2"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await adapter(fake, timeout_s=2.0).fetch(NHS)
    elapsed = loop.time() - started
    assert result.outcome is Outcome.FOUND
    assert fake.max_in_flight >= 4  # two people x (plans, involvements)
    assert elapsed < 0.6  # serial would be >= 0.8


@pytest.mark.parametrize(
    ("path", "status", "outcome"),
    [
        ("/people", 503, Outcome.UNAVAILABLE),
        ("/people/P000123/involvements", 503, Outcome.UNAVAILABLE),
        ("/people/P000123/support-plans", 500, Outcome.UNAVAILABLE),
        ("/people", 401, Outcome.UNAVAILABLE),
    ],
)
async def test_source_failures_are_failed_results(path: str, status: int, outcome: Outcome) -> None:
    fake = council()
    fake.faults[path] = [(status, {})]
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is outcome
    assert result.resources == ()
    assert result.detail is not None and NHS not in result.detail


async def test_429_then_success_is_found() -> None:
    fake = council()
    fake.faults["/people"] = [(429, {"Retry-After": "0"})]
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is Outcome.FOUND


async def test_slow_source_is_timed_out_within_the_deadline() -> None:
    fake = council(delay_s=5.0, delay_paths=("/people/P",))
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await adapter(fake, timeout_s=0.3).fetch(NHS)
    assert result.outcome is Outcome.TIMED_OUT
    assert loop.time() - started < 1.0
    assert result.detail == "no answer within 0.3s"


async def test_httpx_timeout_is_timed_out() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    made = SocialCareAdapter(
        CONFIG, client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    assert (await made.fetch(NHS)).outcome is Outcome.TIMED_OUT


async def test_circuit_opens_after_repeated_failures() -> None:
    fake = council()
    fake.faults["/people"] = [(503, {})] * 10
    made = adapter(fake)
    for _ in range(3):
        assert (await made.fetch(NHS)).outcome is Outcome.UNAVAILABLE
    sent = len(fake.requests)
    result = await made.fetch(NHS)
    assert result.outcome is Outcome.UNAVAILABLE
    assert result.detail is not None and "circuit open" in result.detail
    assert len(fake.requests) == sent


async def test_care_domain_comes_from_config() -> None:
    result = await adapter(council(), domain="health").fetch(NHS)
    assert all(
        r["meta"]["tag"] == [{"system": ukcore.CARE_DOMAIN_SYSTEM, "code": "health"}]
        for r in result.resources
    )
    assert result.domain == "health"


async def test_historic_involvements_only_means_no_care_team() -> None:
    fake = council(involvements={"P000123": [involvement(end="2001-01-01")]})
    result = await adapter(fake).fetch(NHS)
    assert "CareTeam" not in kinds(result.resources)


async def test_results_round_trip_through_json() -> None:
    from adapters.base import SourceResult

    result = await adapter(council()).fetch(NHS)
    assert SourceResult.from_json(copy.deepcopy(result.to_json())) == result


# --- nhs_number_for and changes -------------------------------------------------------------


async def test_nhs_number_for() -> None:
    fake = council()
    fake.people += [
        person(personId="P2", nhsNumber="9434765918"),
        person(personId="P3", nhsNumber=None, nhsNumberStatus="missing"),
    ]
    made = adapter(fake)
    assert await made.nhs_number_for("P000123") == NHS
    assert await made.nhs_number_for("P2") is None
    assert await made.nhs_number_for("P3") is None
    assert await made.nhs_number_for("P404") is None
    sent = len(fake.requests)
    assert await made.nhs_number_for("../people") is None
    assert await made.nhs_number_for("") is None
    assert len(fake.requests) == sent


async def test_nhs_number_for_raises_when_the_source_fails() -> None:
    fake = council()
    fake.faults["/people/P000123"] = [(503, {})]
    with pytest.raises(SourceFault) as info:
        await adapter(fake).nhs_number_for("P000123")
    assert info.value.outcome is Outcome.UNAVAILABLE
    fake.delay_s = 5.0
    with pytest.raises(SourceFault) as info:
        await adapter(fake, timeout_s=0.2).nhs_number_for("P000123")
    assert info.value.outcome is Outcome.TIMED_OUT


async def test_changes_keep_only_valid_nhs_numbers() -> None:
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    fake = council(
        changes=[
            {"personId": "P1", "nhsNumber": "943 476 5919", "changedAt": "2026-11-23T10:00:00Z"},
            {"personId": "P2", "nhsNumber": "9434765918", "changedAt": "2026-11-23T10:00:00Z"},
            {"personId": "P3", "nhsNumber": None, "changedAt": "2026-11-23T10:00:00Z"},
            {"personId": "P4", "nhsNumber": OTHER_NHS, "changedAt": "not a time"},
            {"personId": "P5", "nhsNumber": OTHER_NHS, "changedAt": "2026-11-23T11:00:00+01:00"},
        ]
    )
    changed = await adapter(fake).changes(at - timedelta(days=1))
    assert changed == [ChangedPerson(NHS, at), ChangedPerson(OTHER_NHS, at)]


async def test_aclose_leaves_a_given_client_open_and_closes_its_own() -> None:
    http = council().client()
    await SocialCareAdapter(CONFIG, client=http).aclose()
    assert not http.is_closed
    own = SocialCareAdapter(CONFIG)
    await own.aclose()
    assert own._http.is_closed


def test_today_is_a_date() -> None:
    assert isinstance(datetime.now(UTC).date(), date)


# --- which resource type each finding is about ----------------------------------------------

_PLAN = "P000123"


Change = Callable[[FakeCouncil], None]


def _change_person(**changes: Any) -> Change:
    def change(fake: FakeCouncil) -> None:
        fake.people[0].update(changes)

    return change


def _change_plan(**changes: Any) -> Change:
    def change(fake: FakeCouncil) -> None:
        fake.plans[_PLAN][0].update(changes)

    return change


def _add_person(**changes: Any) -> Change:
    def change(fake: FakeCouncil) -> None:
        fake.people.append(person(**changes))

    return change


def _add_plan(**changes: Any) -> Change:
    def change(fake: FakeCouncil) -> None:
        fake.plans[_PLAN].append(plan(**changes))

    return change


def _bad_service_status(fake: FakeCouncil) -> None:
    fake.plans[_PLAN][0]["services"][0]["status"] = "whatever"


def _bad_service_start(fake: FakeCouncil) -> None:
    fake.plans[_PLAN][0]["services"][0]["start"] = "2026-13-01"


def _bad_outcome_status(fake: FakeCouncil) -> None:
    fake.plans[_PLAN][0]["outcomes"][0]["status"] = "sort-of"


def _bad_involvement_start(fake: FakeCouncil) -> None:
    fake.involvements[_PLAN][0]["start"] = "2026-02-30"


def _bad_address_date(fake: FakeCouncil) -> None:
    fake.people[0]["addresses"][0]["from"] = "yesterday"


BAD_DATE = "a date in the record is not a valid date and was left out"


@pytest.mark.parametrize(
    ("change", "code", "text", "about"),
    [
        (
            _change_plan(status="paused"),
            "unknown-code",
            "a support plan status is not recognised; recorded as unknown",
            "CarePlan",
        ),
        (
            _bad_service_status,
            "unknown-code",
            "a service status is not recognised; recorded as unknown",
            "CarePlan",
        ),
        (_change_plan(start="2026-05-32"), "bad-date", BAD_DATE, "CarePlan"),
        (_bad_service_start, "bad-date", BAD_DATE, "CarePlan"),
        (
            _add_plan(planId=None),
            "bad-record",
            "a support plan has no plan id and was left out",
            "CarePlan",
        ),
        (
            _bad_outcome_status,
            "unknown-code",
            "an outcome status is not recognised; kept as text",
            "Goal",
        ),
        (_bad_involvement_start, "bad-date", BAD_DATE, "CareTeam"),
        (
            _change_person(gender="3"),
            "unknown-code",
            "a person's gender code is not a Data Dictionary code",
            "Patient",
        ),
        (
            _change_person(ethnicity="Q"),
            "unknown-code",
            "a person's ethnic category code is not recognised",
            "Patient",
        ),
        (
            _change_person(nhsNumberStatus="traced-ish"),
            "unknown-code",
            "an NHS number status is not recognised; recorded as not traced",
            "Patient",
        ),
        (_change_person(birthDate="1936-02-30"), "bad-date", BAD_DATE, "Patient"),
        (_change_person(deathDate="soon"), "bad-date", BAD_DATE, "Patient"),
        (_bad_address_date, "bad-date", BAD_DATE, "Patient"),
        (
            _add_person(personId="P2"),
            "duplicate-person",
            "2 person records share one NHS number",
            "Patient",
        ),
        (
            _add_person(personId=None),
            "bad-record",
            "a matched person has no person id",
            "Patient",
        ),
        (
            _add_person(personId="P3", nhsNumberStatus="missing"),
            "nhs-number-mismatch",
            "a matched person holds another NHS number",
            "Patient",
        ),
    ],
)
async def test_each_finding_names_the_resource_type_it_is_about(
    change: Change, code: str, text: str, about: str
) -> None:
    fake = council()
    change(fake)
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is Outcome.FOUND, result.detail
    assert result.issues == (DataIssue(code, text, about),)


async def test_a_failed_validation_is_about_the_kind_that_failed() -> None:
    fake = council()
    fake.plans["P000123"].append(plan(planId="X" * 70))  # id longer than FHIR allows
    result = await adapter(fake).fetch(NHS)
    assert {(i.code, i.about) for i in result.issues} == {
        ("invalid-resource", "CarePlan"),
        ("invalid-resource", "Goal"),
    }


async def test_the_same_finding_about_two_kinds_is_kept_for_each() -> None:
    fake = council()
    fake.people[0]["birthDate"] = "1936-02-30"
    fake.plans[_PLAN][0]["start"] = "2026-02-30"
    result = await adapter(fake).fetch(NHS)
    assert sorted(i.about or "" for i in result.issues if i.code == "bad-date") == [
        "CarePlan",
        "Patient",
    ]


@pytest.mark.parametrize(
    ("person_restricted", "plan_restricted", "labelled"),
    [(False, False, False), (True, False, True), (False, True, True)],
)
async def test_a_left_out_plan_says_whether_it_was_labelled(
    person_restricted: bool, plan_restricted: bool, labelled: bool
) -> None:
    """Dropped by the adapter, no decision ever sees the plan: the finding says whether the
    plan carried a confidentiality label, so the gateway can keep it out of answers."""
    fake = council(people=[person(restricted=person_restricted)])
    extra = plan(planId=None)
    if plan_restricted:
        extra["confidentiality"] = "restricted"
    fake.plans["P000123"].append(extra)
    result = await adapter(fake).fetch(NHS)
    assert result.outcome is Outcome.FOUND
    assert result.issues == (
        DataIssue(
            "bad-record", "a support plan has no plan id and was left out", "CarePlan", labelled
        ),
    )


async def test_a_labelled_resource_failing_validation_is_reported_as_labelled() -> None:
    fake = council()
    bad = plan(planId="Y" * 70)  # an id longer than FHIR allows
    bad["confidentiality"] = "restricted"
    fake.plans["P000123"].append(bad)
    result = await adapter(fake).fetch(NHS)
    assert {(i.about, i.labelled) for i in result.issues} == {("CarePlan", True), ("Goal", True)}

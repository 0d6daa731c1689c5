"""Every scenario person, and FHIR validation of everything the gateway emits for them.

Real HTTP end to end (gateway → adapters → simulators), with the consent policy on: each
request is made by a caller with a legitimate relationship with the person — a GP (``R8000``)
at the person's registered practice, or a social worker (``LA-SW``) at the council (LA883)
for people the council holds — and the assertions are on the FHIR JSON.

The validation tests cover the valid-NHS-number scenario people plus a fixed sample of the
general population (every ``len // SAMPLE_SIZE``-th NHS number of the seeded population, in
sorted order), each read by every permitted caller so that labelled resources one caller
may not see are still validated through the other. Beyond ``validate_resource`` (R4B models
plus our UK Core checks) they check what the gateway itself promises: UK Core profile,
``meta.source``, care-domain tag, CarePlan/CareTeam code bindings, id rules, unique and
stable ids, and CarePlan ids that resolve.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from adapters import ukcore
from adapters.validation import validate_resource
from gateway.fhir.responses import EXT_ISSUE_SOURCE
from gateway.records.merge import MERGE_WARNING_SYSTEM
from simulators.model import Population
from simulators.population import COMMUNITY_ODS, COUNCIL_ODS, SCENARIOS
from simulators.runner import RunningSources, source_configs
from tests.gateway.harness import Gateway, assert_fhir, running_gateway
from tests.gateway.test_consent_acceptance import RECORDER_SCOPES, naming, post_consent
from tests.support.people import nhs

SOCIAL = "socialcare"
COMMUNITY = "community"
SOURCE_DOMAIN = {SOCIAL: "social-care", COMMUNITY: "health"}
SOURCE_ODS = {SOCIAL: COUNCIL_ODS, COMMUNITY: COMMUNITY_ODS}
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
PROFILE = {
    "Patient": ukcore.PROFILE_PATIENT,
    "CarePlan": ukcore.PROFILE_CAREPLAN,
    "CareTeam": ukcore.PROFILE_CARETEAM,
    "Provenance": ukcore.PROFILE_PROVENANCE,
}
PLAN_TYPES = {
    "care-and-support",
    "reablement",
    "carer-support",
    "safeguarding-protection",
    "health",
}
SAMPLE_SIZE = 20
CONCURRENCY = 4
VALID_SCENARIOS = sorted(k for k, s in SCENARIOS.items() if s.nhs_number is not None)
UNMATCHABLE = ("malformed_nhs", "no_nhs")


# --- helpers ---------------------------------------------------------------------------


def entries(bundle: dict[str, Any], mode: str | None = None) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", ())
        if mode is None or e.get("search", {}).get("mode") == mode
    ]


def of_type(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == kind]


def source_of(resource: dict[str, Any]) -> str:
    uri = str(resource.get("meta", {}).get("source", ""))
    assert uri.startswith("urn:caregateway:source:"), resource.get("id")
    return uri.removeprefix("urn:caregateway:source:")


def outcomes(bundle: dict[str, Any], code: str) -> list[dict[str, Any]]:
    """The issues of the Bundle's OperationOutcome entries with ``issue.code`` = ``code``."""
    return [
        issue for oo in entries(bundle, "outcome") for issue in oo["issue"] if issue["code"] == code
    ]


def issue_text(issue: dict[str, Any]) -> str:
    return " ".join(
        str(t) for t in (issue.get("details", {}).get("text"), issue.get("diagnostics")) if t
    )


def labels(resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {(s["system"], s["code"]) for s in resource.get("meta", {}).get("security", ())}


RESTRICTED = (ukcore.CONFIDENTIALITY_SYSTEM, "R")


def plan_types(plan: dict[str, Any]) -> list[str]:
    return [
        c["code"]
        for cat in plan.get("category", ())
        for c in cat.get("coding", ())
        if c.get("system") == ukcore.CARE_PLAN_TYPE_SYSTEM
    ]


@dataclass(frozen=True)
class Caller:
    role: str
    org: str

    def headers(self, gateway: Gateway) -> dict[str, str]:
        return gateway.headers(role=self.role, org=self.org)


SOCIAL_WORKER = Caller("LA-SW", COUNCIL_ODS)


def gp_caller(population: Population, number: str) -> Caller | None:
    """``R8000`` at the person's registered GP practice (as either source records it)."""
    for person in population.council_people_with(number):
        if person.gp is not None:
            return Caller("R8000", person.gp.ods_code)
    for patient in population.community_patients_with(number):
        if patient.gp is not None:
            return Caller("R8000", patient.gp.ods_code)
    return None


def permitted_callers(population: Population, number: str) -> list[Caller]:
    """Every default-policy caller with a legitimate relationship: the GP, and the council's
    social worker when the council holds the person (or the trust if nobody else fits)."""
    callers = [c for c in (gp_caller(population, number),) if c is not None]
    if population.council_people_with(number):
        callers.append(SOCIAL_WORKER)
    if not callers:
        callers.append(Caller("R8000", COMMUNITY_ODS))
    return callers


def only_restricted_social_care(population: Population, number: str) -> bool:
    """Held by the council only, marked restricted: every resource is labelled ``R``."""
    people = population.council_people_with(number)
    return (
        bool(people)
        and all(p.restricted for p in people)
        and not population.community_patients_with(number)
    )


def readers(population: Population, number: str) -> list[Caller]:
    """The permitted callers who may see something: a GP sees no social care ``R`` label, so
    a person whose whole record is restricted social care is read by the social worker only
    (the GP's refusal is checked in :func:`check_person`)."""
    callers = permitted_callers(population, number)
    if only_restricted_social_care(population, number):
        callers = [c for c in callers if c.role == SOCIAL_WORKER.role]
    return callers


def general_sample(population: Population) -> list[str]:
    """A fixed, spread-out sample of the general population's NHS numbers."""
    scenario_numbers = {s.nhs_number for s in SCENARIOS.values()}
    numbers = sorted(population.nhs_numbers() - scenario_numbers)
    step = max(1, len(numbers) // SAMPLE_SIZE)
    return numbers[::step][:SAMPLE_SIZE]


async def assert_plan_read(gateway: Gateway, plan_id: str, caller: Caller, status: int) -> None:
    """``GET /CarePlan/{plan_id}`` as ``caller`` is answered ``status``."""
    resp = await gateway.get(f"/CarePlan/{plan_id}", headers=caller.headers(gateway))
    assert resp.status_code == status, resp.text


async def everything(gateway: Gateway, number: str, caller: Caller) -> dict[str, Any]:
    resp = await gateway.get(f"/Patient/{number}/$everything", headers=caller.headers(gateway))
    body = assert_fhir(resp)
    assert body["resourceType"] == "Bundle"
    return body


@pytest.fixture(scope="session")
def population(running_sources: RunningSources) -> Population:
    return running_sources.population


@pytest.fixture(scope="module")
async def sample_bodies(
    gateway: Gateway, population: Population
) -> dict[tuple[str, Caller], dict[str, Any]]:
    """``$everything`` for every valid-NHS scenario person and the general population sample,
    as every caller who may read them, fetched concurrently once for this module."""
    keys = [
        (number, caller)
        for number in [nhs(k) for k in VALID_SCENARIOS] + general_sample(population)
        for caller in readers(population, number)
    ]
    # A few at a time: the simulators are single processes, and a flood of slow answers would
    # trip the adapters' circuit breakers for every later test in the session.
    limit = asyncio.Semaphore(CONCURRENCY)

    async def fetch(number: str, caller: Caller) -> dict[str, Any]:
        async with limit:
            body = await everything(gateway, number, caller)
        assert not outcomes(body, "incomplete"), number
        return body

    bodies = await asyncio.gather(*(fetch(n, c) for n, c in keys))
    return dict(zip(keys, bodies, strict=True))


# --- every scenario person ---------------------------------------------------------------


async def test_both_sources_merge_into_one_patient(
    gateway: Gateway, population: Population
) -> None:
    number = nhs("both")
    caller = gp_caller(population, number)
    assert caller is not None and caller.org == "F81001"
    bundle = await everything(gateway, number, caller)
    resources = entries(bundle, "match")

    patients = of_type(resources, "Patient")
    assert len(patients) == 1 and patients[0]["id"] == number
    patient = patients[0]
    nhs_ids = [i for i in patient["identifier"] if i["system"] == ukcore.NHS_NUMBER_SYSTEM]
    assert len(nhs_ids) == 1 and nhs_ids[0]["value"] == number
    (ext,) = nhs_ids[0]["extension"]
    assert ext["url"] == ukcore.EXT_NHS_VERIFICATION
    (coding,) = ext["valueCodeableConcept"]["coding"]
    assert (coding["system"], coding["code"]) == (ukcore.NHS_VERIFICATION_SYSTEM, "01")
    idents = {(i["system"], i["value"]) for i in patient["identifier"]}
    assert (ukcore.person_id_system(SOCIAL), "P900001") in idents
    assert (ukcore.person_id_system(COMMUNITY), "C900001") in idents
    # the community trust's own local identifiers come through as the source sent them
    assert any(s.startswith("https://fhir.thurrock-community") for s, _ in idents)

    assert {source_of(p) for p in of_type(resources, "CarePlan")} == {SOCIAL, COMMUNITY}
    assert {source_of(t) for t in of_type(resources, "CareTeam")} == {SOCIAL, COMMUNITY}
    (council_team,) = [t for t in of_type(resources, "CareTeam") if source_of(t) == SOCIAL]
    lead = [
        p
        for p in council_team["participant"]
        for role in p.get("role", ())
        for c in role.get("coding", ())
        if (c.get("system"), c.get("code")) == (ukcore.CARE_TEAM_ROLE_SYSTEM, "lead-professional")
    ]
    assert len(lead) == 1
    provenance = of_type(resources, "Provenance")
    assert {source_of(p) for p in provenance} == {SOCIAL, COMMUNITY}
    for prov in provenance:
        who = prov["agent"][0]["who"]["identifier"]
        assert who == {
            "system": ukcore.ODS_ORGANISATION_SYSTEM,
            "value": SOURCE_ODS[source_of(prov)],
        }
        assert {"reference": f"Patient/{number}"} in prov["target"]
    assert not outcomes(bundle, "incomplete")


@pytest.mark.parametrize(
    ("key", "present", "absent", "caller"),
    [
        ("social_only", SOCIAL, COMMUNITY, SOCIAL_WORKER),
        ("community_only", COMMUNITY, SOCIAL, None),
    ],
)
async def test_single_source_person_has_only_that_source(
    gateway: Gateway,
    population: Population,
    key: str,
    present: str,
    absent: str,
    caller: Caller | None,
) -> None:
    number = nhs(key)
    callers = [caller] if caller is not None else []
    gp = gp_caller(population, number)
    assert gp is not None
    for who in (*callers, gp):
        bundle = await everything(gateway, number, who)
        resources = entries(bundle, "match")
        assert of_type(resources, "Patient")[0]["id"] == number
        others = [r for r in resources if r["resourceType"] != "Patient"]
        assert {r["resourceType"] for r in others} >= {"CarePlan", "CareTeam", "Provenance"}
        assert {source_of(r) for r in others} == {present}
        patient = of_type(resources, "Patient")[0]
        systems = {i["system"] for i in patient["identifier"]}
        assert ukcore.person_id_system(present) in systems
        assert ukcore.person_id_system(absent) not in systems
        assert {t["code"] for t in patient["meta"]["tag"]} == {SOURCE_DOMAIN[present]}
        prov = of_type(resources, "Provenance")
        assert [p["agent"][0]["who"]["identifier"]["value"] for p in prov] == [SOURCE_ODS[present]]
        # the other source answered "not found": that is not a failure of the answer
        assert not outcomes(bundle, "incomplete")
        assert entries(bundle, "outcome") == []


async def test_duplicate_council_records_merge_with_a_warning(
    gateway: Gateway, population: Population
) -> None:
    number = nhs("duplicate")
    people = population.council_people_with(number)
    assert sorted(p.person_id for p in people) == ["P900004", "P900005"]
    caller = gp_caller(population, number)
    assert caller is not None
    for who in (caller, SOCIAL_WORKER):
        bundle = await everything(gateway, number, who)
        resources = entries(bundle, "match")
        (patient,) = of_type(resources, "Patient")
        council_ids = {
            i["value"]
            for i in patient["identifier"]
            if i["system"] == ukcore.person_id_system(SOCIAL)
        }
        assert council_ids == {"P900004", "P900005"}
        nhs_ids = [i for i in patient["identifier"] if i["system"] == ukcore.NHS_NUMBER_SYSTEM]
        assert len(nhs_ids) == 1
        # one of the two is verified: verified beats unverified
        code = nhs_ids[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]
        assert code == "01"
        plan_people = {
            p["id"].split(".")[1] for p in of_type(resources, "CarePlan") if source_of(p) == SOCIAL
        }
        assert plan_people == {"P900004", "P900005"}

        warnings = [i for i in outcomes(bundle, "informational") if i["severity"] == "warning"]
        duplicate = [
            i
            for i in warnings
            if re.search(r"duplicate|share one NHS number", issue_text(i), re.IGNORECASE)
        ]
        assert len(duplicate) == 1, warnings
        text = json.dumps(duplicate[0])
        assert number not in text
        for person in people:
            assert person.name.family not in text
            assert all(given not in text for given in person.name.given)
            assert person.birth_date.isoformat() not in text


@pytest.mark.parametrize("key", UNMATCHABLE)
async def test_unmatchable_council_person_is_never_reached(
    gateway: Gateway,
    population: Population,
    sample_bodies: dict[tuple[str, Caller], dict[str, Any]],
    key: str,
) -> None:
    """How it is checked: the council person id must not appear anywhere in the JSON of
    ``$everything`` for every valid-NHS scenario person and the general population sample
    (each as every permitted caller); their stored number, normalised, is refused as an NHS
    number (400) and never indexed; and their care plan ids do not resolve (404)."""
    scenario = SCENARIOS[key]
    assert scenario.nhs_number is None
    (person_id,) = scenario.person_ids
    person = population.council_person(person_id)
    assert person is not None
    assert person.nhs_number_status in {"unverified", "missing"}

    if person.nhs_number is not None:  # malformed: refused, never indexed
        digits = re.sub(r"\D", "", person.nhs_number)
        assert digits not in population.nhs_numbers()
        resp = await gateway.get(f"/Patient/{digits}")
        assert resp.status_code == 400, resp.text
        assert resp.json()["issue"][0]["code"] == "invalid"
        search = await gateway.get(
            "/Patient", params={"identifier": f"{ukcore.NHS_NUMBER_SYSTEM}|{person.nhs_number}"}
        )
        assert search.status_code == 400, search.text
    for number in population.nhs_numbers():
        assert person not in population.council_people_with(number)

    assert len(sample_bodies) >= len(VALID_SCENARIOS) + SAMPLE_SIZE
    for (number, _caller), body in sample_bodies.items():
        assert person_id not in json.dumps(body), number

    plans = population.support_plans[person_id]
    assert plans
    for plan in plans:
        plan_id = f"{SOCIAL}.{person_id}.{plan.plan_id}"
        await assert_plan_read(gateway, plan_id, SOCIAL_WORKER, 404)


async def test_restricted_person_social_care_resources_are_labelled_r(
    gateway: Gateway, population: Population
) -> None:
    number = nhs("restricted")
    bundle = await everything(gateway, number, SOCIAL_WORKER)
    resources = entries(bundle, "match")
    social = [r for r in resources if r["resourceType"] != "Patient" and source_of(r) == SOCIAL]
    assert {r["resourceType"] for r in social} >= {"CarePlan", "CareTeam", "Provenance"}
    for resource in social:
        assert RESTRICTED in labels(resource), resource["id"]
    (patient,) = of_type(resources, "Patient")
    assert RESTRICTED in labels(patient)
    assert ukcore.person_id_system(SOCIAL) in {i["system"] for i in patient["identifier"]}
    for resource in resources:
        if resource["resourceType"] != "Patient" and source_of(resource) == COMMUNITY:
            assert RESTRICTED not in labels(resource)

    # the GP (R8000 sees R in health only) gets nothing from social care, and is told so
    caller = gp_caller(population, number)
    assert caller is not None
    gp_bundle = await everything(gateway, number, caller)
    seen = entries(gp_bundle, "match")
    assert all(source_of(r) == COMMUNITY for r in seen if r["resourceType"] != "Patient")
    assert outcomes(gp_bundle, "suppressed")
    assert "P900008" not in json.dumps(gp_bundle)


async def test_safeguarding_plan_is_labelled_and_seen_by_social_care(
    gateway: Gateway, population: Population
) -> None:
    number = nhs("safeguarding")
    bundle = await everything(gateway, number, SOCIAL_WORKER)
    plans = of_type(entries(bundle, "match"), "CarePlan")
    safeguarding = [p for p in plans if "safeguarding-protection" in plan_types(p)]
    assert len(safeguarding) == 1
    plan = safeguarding[0]
    assert source_of(plan) == SOCIAL
    assert RESTRICTED in labels(plan)
    others = [p for p in plans if p is not plan and source_of(p) == SOCIAL]
    assert others and all(RESTRICTED not in labels(p) for p in others)
    read = assert_fhir(
        await gateway.get(f"/CarePlan/{plan['id']}", headers=SOCIAL_WORKER.headers(gateway))
    )
    assert read == plan

    caller = gp_caller(population, number)
    assert caller is not None
    gp_bundle = await everything(gateway, number, caller)
    gp_plans = of_type(entries(gp_bundle, "match"), "CarePlan")
    assert plan["id"] not in {p["id"] for p in gp_plans}
    assert outcomes(gp_bundle, "suppressed")
    await assert_plan_read(gateway, plan["id"], caller, 403)


async def test_mental_health_plan_is_labelled_and_seen_by_the_gp(
    gateway: Gateway, population: Population
) -> None:
    number = nhs("mental_health_r")
    caller = gp_caller(population, number)
    assert caller is not None
    bundle = await everything(gateway, number, caller)
    plans = of_type(entries(bundle, "match"), "CarePlan")
    community_plans = [p for p in plans if source_of(p) == COMMUNITY]
    restricted = [p for p in community_plans if RESTRICTED in labels(p)]
    assert len(restricted) == 1 and len(community_plans) == 2
    plan = restricted[0]
    assert plan["id"] == f"{COMMUNITY}.C900010.cp-900008"
    assert "health" in plan_types(plan)
    read = assert_fhir(
        await gateway.get(f"/CarePlan/{plan['id']}", headers=caller.headers(gateway))
    )
    assert read == plan

    sw_bundle = await everything(gateway, number, SOCIAL_WORKER)
    assert plan["id"] not in {p["id"] for p in of_type(entries(sw_bundle, "match"), "CarePlan")}
    assert outcomes(sw_bundle, "suppressed")


async def test_deceased_person(gateway: Gateway, population: Population) -> None:
    number = nhs("deceased")
    caller = gp_caller(population, number)
    assert caller is not None
    patient = assert_fhir(await gateway.get(f"/Patient/{number}", headers=caller.headers(gateway)))
    assert patient["deceasedDateTime"].startswith("2026-09-14")
    assert "deceasedBoolean" not in patient
    bundle = await everything(gateway, number, caller)
    (merged,) = of_type(entries(bundle, "match"), "Patient")
    assert merged["deceasedDateTime"] == patient["deceasedDateTime"]


async def test_date_of_birth_conflict(gateway: Gateway, population: Population) -> None:
    number = nhs("dob_conflict")
    (person,) = population.council_people_with(number)
    (community_patient,) = population.community_patients_with(number)
    social_dob, community_dob = (
        person.birth_date.isoformat(),
        community_patient.birth_date.isoformat(),
    )
    assert social_dob != community_dob
    caller = gp_caller(population, number)
    assert caller is not None
    headers = caller.headers(gateway)

    patient = assert_fhir(await gateway.get(f"/Patient/{number}", headers=headers))
    assert patient["resourceType"] == "Patient"
    assert patient["birthDate"] == social_dob  # the verified source wins
    assert "OperationOutcome" not in json.dumps(patient)
    assert "contained" not in patient

    search = assert_fhir(
        await gateway.get(
            "/Patient",
            params={"identifier": f"{ukcore.NHS_NUMBER_SYSTEM}|{number}"},
            headers=headers,
        )
    )
    for bundle in (await everything(gateway, number, caller), search):
        (merged,) = of_type(entries(bundle, "match"), "Patient")
        assert merged["birthDate"] == social_dob
        assert bundle["total"] == len(entries(bundle, "match"))
        warnings = [
            i
            for i in outcomes(bundle, "informational")
            if i["severity"] == "warning" and "Patient.birthDate" in issue_text(i)
        ]
        assert len(warnings) == 1
        text = issue_text(warnings[0])
        assert SOCIAL in text and COMMUNITY in text
        dumped = json.dumps(warnings[0])
        for value in (social_dob, community_dob, social_dob[:4], number, person.name.family):
            assert value not in dumped


def merge_warnings(bundle: dict[str, Any], code: str) -> list[dict[str, Any]]:
    """The warning issues coded ``code`` in the gateway's merge-warning code system."""
    return [
        issue
        for issue in outcomes(bundle, "informational")
        if {"system": MERGE_WARNING_SYSTEM, "code": code}
        in issue.get("details", {}).get("coding", ())
    ]


@pytest.mark.parametrize(
    ("key", "code", "sources", "expression"),
    [
        ("duplicate", "duplicate-person", [SOCIAL], None),
        ("dob_conflict", "demographics-conflict", [COMMUNITY, SOCIAL], ["Patient.birthDate"]),
    ],
)
async def test_merge_warnings_are_machine_readable(
    gateway: Gateway,
    population: Population,
    key: str,
    code: str,
    sources: list[str],
    expression: list[str] | None,
) -> None:
    """A provider system can act on a merge warning without parsing its text: a coded kind,
    the element as FHIRPath, the sources as their ``meta.source`` URIs — and no values."""
    number = nhs(key)
    private = [number]
    for person in population.council_people_with(number):
        private += [person.name.family, *person.name.given, person.birth_date.isoformat()]
    for patient in population.community_patients_with(number):
        private += [patient.birth_date.isoformat()]
    for caller in permitted_callers(population, number):
        bundle = await everything(gateway, number, caller)
        for oo in entries(bundle, "outcome"):
            OperationOutcome.model_validate_json(orjson.dumps(oo))
        (issue,) = merge_warnings(bundle, code)
        assert issue["severity"] == "warning"
        assert issue["details"]["coding"] == [{"system": MERGE_WARNING_SYSTEM, "code": code}]
        assert issue["details"]["text"] == issue["diagnostics"]
        assert issue.get("expression") == expression
        assert issue["extension"] == [
            {"url": EXT_ISSUE_SOURCE, "valueUri": ukcore.source_uri(s)} for s in sources
        ]
        dumped = json.dumps(issue)
        for value in private:
            assert value not in dumped, key


async def test_a_withheld_source_takes_no_part_in_merge_warnings(
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    population: Population,
) -> None:
    """Decisions are applied per source before the merge, so the person's objection to the
    community trust sharing leaves no trace of its (different) birth date in the answer."""
    number = nhs("dob_conflict")
    (community_patient,) = population.community_patients_with(number)
    caller = gp_caller(population, number)
    assert caller is not None
    # a gateway of this test's own: the directive must not reach the other tests
    async with running_gateway(source_configs(running_sources), *signing_key) as gw:
        headers = gw.headers(role=caller.role, org=caller.org, scopes=RECORDER_SCOPES)
        await post_consent(gw, naming(number, "CST", COMMUNITY_ODS), headers)
        bundle = await everything(gw, number, caller)
    assert {source_of(r) for r in entries(bundle, "match") if r["resourceType"] != "Patient"} == {
        SOCIAL
    }
    assert merge_warnings(bundle, "demographics-conflict") == []
    assert COMMUNITY not in json.dumps(entries(bundle, "outcome"))
    assert community_patient.birth_date.isoformat() not in json.dumps(bundle)


# --- FHIR validation of every emitted resource -------------------------------------------


def check_resource(resource: dict[str, Any], number: str, *, known_types: bool) -> None:
    """``validate_resource`` plus the gateway's own promises for one emitted resource."""
    kind = resource["resourceType"]
    validate_resource(resource)
    assert FHIR_ID.fullmatch(resource["id"]), resource["id"]
    meta = resource.get("meta", {})
    if kind in PROFILE:
        assert PROFILE[kind] in meta.get("profile", ()), (kind, resource["id"])
    if kind == "OperationOutcome":
        return
    domains = [t["code"] for t in meta.get("tag", ()) if t["system"] == ukcore.CARE_DOMAIN_SYSTEM]
    if kind == "Patient":
        assert resource["id"] == number
        assert domains and set(domains) <= set(SOURCE_DOMAIN.values())
        return
    source = source_of(resource)
    assert source in SOURCE_DOMAIN, source
    assert meta["source"] == ukcore.source_uri(source)
    assert resource["id"].startswith(f"{source}."), resource["id"]
    assert domains == [SOURCE_DOMAIN[source]], (kind, resource["id"])
    if kind == "CarePlan":
        assert resource["status"] in ukcore.CAREPLAN_STATUS
        assert resource["intent"] in ukcore.CAREPLAN_INTENT
        types = plan_types(resource)
        assert len(types) == 1 and types[0], resource["id"]
        if known_types:  # the general population also has the council's own unknown words
            assert types[0] in PLAN_TYPES, resource["id"]
        if source == COMMUNITY:
            assert types == ["health"]
        assert resource["subject"]["reference"] == f"Patient/{number}"
    elif kind == "CareTeam":
        assert resource["status"] in ukcore.CARETEAM_STATUS
    elif kind == "Provenance":
        who = resource["agent"][0]["who"]["identifier"]
        assert who == {"system": ukcore.ODS_ORGANISATION_SYSTEM, "value": SOURCE_ODS[source]}


def content(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The matched resources, less ``Provenance.recorded`` (the time of this answer)."""
    return [
        {k: v for k, v in r.items() if not (r["resourceType"] == "Provenance" and k == "recorded")}
        for r in entries(bundle, "match")
    ]


def match_ids(bundle: dict[str, Any]) -> list[str]:
    return [f"{r['resourceType']}/{r['id']}" for r in entries(bundle, "match")]


async def check_person(
    gateway: Gateway, population: Population, number: str, *, known_types: bool = False
) -> int:
    """Validate ``$everything`` for one person as every permitted caller; returns how many
    resources were checked."""
    checked = 0
    for caller in permitted_callers(population, number):
        if caller not in readers(population, number):
            resp = await gateway.get(
                f"/Patient/{number}/$everything", headers=caller.headers(gateway)
            )
            body = assert_fhir(resp, 403)
            assert [c["code"] for c in body["issue"][0]["details"]["coding"]] == [
                "label-restricted"
            ]
            continue
        first = await everything(gateway, number, caller)
        second = await everything(gateway, number, caller)
        ids = match_ids(first)
        assert ids, (number, caller)
        assert len(ids) == len(set(ids)), ids
        assert ids == match_ids(second)  # stable across requests
        assert content(first) == content(second)
        assert sum(1 for i in ids if i.startswith("Patient/")) == 1
        assert ids[0] == f"Patient/{number}"
        assert first["total"] == len(ids)  # matches only, never the OperationOutcome entries
        for resource in entries(first):
            check_resource(resource, number, known_types=known_types)
            checked += 1
        present = set(ids)
        for prov in of_type(entries(first, "match"), "Provenance"):
            assert all(t["reference"] in present for t in prov["target"])
        assert not outcomes(first, "incomplete")  # both simulators are up
        headers = caller.headers(gateway)
        patient = assert_fhir(await gateway.get(f"/Patient/{number}", headers=headers))
        check_resource(patient, number, known_types=known_types)
        assert patient == entries(first, "match")[0]
        for plan in of_type(entries(first, "match"), "CarePlan"):
            read = assert_fhir(await gateway.get(f"/CarePlan/{plan['id']}", headers=headers))
            assert read == plan
    return checked


@pytest.mark.parametrize("key", VALID_SCENARIOS)
async def test_scenario_resources_are_valid_uk_core(
    gateway: Gateway, population: Population, key: str
) -> None:
    assert await check_person(gateway, population, nhs(key), known_types=True) > 0


@pytest.mark.parametrize("index", range(SAMPLE_SIZE))
async def test_general_population_resources_are_valid_uk_core(
    gateway: Gateway, population: Population, index: int
) -> None:
    sample = general_sample(population)
    assert len(sample) == SAMPLE_SIZE
    assert await check_person(gateway, population, sample[index]) > 0


async def test_ids_are_unique_across_people(
    sample_bodies: dict[tuple[str, Caller], dict[str, Any]],
) -> None:
    """Resource ids (other than Patient, which is the NHS number) are unique across people."""
    owner: dict[str, str] = {}
    for (number, _caller), body in sample_bodies.items():
        for ref in match_ids(body):
            if ref.startswith("Patient/"):
                continue
            assert owner.setdefault(ref, number) == number, ref

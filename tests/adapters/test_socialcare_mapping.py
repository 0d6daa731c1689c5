"""Pure mapping of council JSON to UK Core R4: every table and every choice in the docstring."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import ukcore
from adapters.socialcare import mapping
from adapters.socialcare.mapping import Context
from adapters.validation import UKCoreValidationError, validate_resource
from tests.adapters.support import source_meta

NHS = "9434765919"
TODAY = date(2026, 11, 23)


def ctx() -> Context:
    return Context("lascare", "LA883", "social-care", organisation_name="Thurrock Council")


def person(**changes: Any) -> dict[str, Any]:
    made: dict[str, Any] = {
        "personId": "P000123",
        "nhsNumber": "943 476 5919",
        "nhsNumberStatus": "verified",
        "name": {"title": "Mrs", "given": ["Joan", "Mary"], "family": "Smith", "preferred": "Jo"},
        "birthDate": "1936-04-02",
        "deathDate": None,
        "gender": "2",
        "ethnicity": "A",
        "addresses": [
            {
                "use": "home",
                "lines": ["12 Dock Road"],
                "town": "Tilbury",
                "postcode": "RM18 7BX",
                "from": "2019-01-01",
                "to": None,
            }
        ],
        "telecom": [{"system": "phone", "value": "01375 000000", "use": "home"}],
        "gp": {"odsCode": "F81001", "name": "Tilbury Health Centre"},
        "primarySupportReason": {"code": "PSR01", "text": "Physical Support"},
        "restricted": False,
        "lastUpdated": "2026-10-01T10:00:00Z",
    }
    made.update(changes)
    return made


def plan(**changes: Any) -> dict[str, Any]:
    made: dict[str, Any] = {
        "planId": "SP-000981",
        "personId": "P000123",
        "planType": "care-and-support",
        "status": "active",
        "title": "Care and support plan",
        "start": "2026-05-01",
        "end": None,
        "nextReview": "2026-11-01",
        "createdBy": {
            "staffId": "SW0042",
            "name": "Sam Patel",
            "role": "Social Worker",
            "team": "Tilbury Community Led Support",
        },
        "needs": [
            {
                "domain": "Managing and maintaining nutrition",
                "description": "Needs help preparing meals",
            }
        ],
        "outcomes": [
            {"description": "To remain living at home safely", "status": "in-progress"},
            {"description": "To feel less lonely", "status": "achieved"},
        ],
        "services": [
            {
                "serviceId": "SV-1",
                "serviceType": "home-care",
                "description": "Personal care, 4 calls daily",
                "provider": {"name": "Riverside Home Care Ltd", "cqcLocationId": "1-100000001"},
                "frequency": {"count": 4, "period": "day"},
                "start": "2026-05-01",
                "end": None,
                "status": "active",
            }
        ],
        "confidentiality": "normal",
        "lastUpdated": "2026-10-01T10:00:00Z",
    }
    made.update(changes)
    return made


def involvement(**changes: Any) -> dict[str, Any]:
    made: dict[str, Any] = {
        "staffId": "SW0042",
        "name": "Sam Patel",
        "role": "Social Worker",
        "team": "Tilbury Community Led Support",
        "organisation": {"odsCode": "LA883", "name": "Thurrock Council"},
        "start": "2026-04-20",
        "end": None,
        "isLead": True,
    }
    made.update(changes)
    return made


def nhs_identifiers(patient: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in patient.get("identifier", []) if i["system"] == ukcore.NHS_NUMBER_SYSTEM]


def codes(c: Context) -> list[str]:
    return [i.code for i in c.issues]


# --- Patient --------------------------------------------------------------------------------


def test_person_maps_to_a_valid_uk_core_patient() -> None:
    c = ctx()
    patient = mapping.map_person(person(), c)
    validate_resource(patient)
    assert c.issues == []
    assert patient["id"] == "lascare.P000123"
    assert patient["meta"] == source_meta(
        "urn:caregateway:source:lascare",
        ukcore.PROFILE_PATIENT,
        "2026-10-01T10:00:00Z",
        "social-care",
    )
    (nhs_id,) = nhs_identifiers(patient)
    assert nhs_id["value"] == NHS
    assert {"system": ukcore.person_id_system("lascare"), "value": "P000123"} in patient[
        "identifier"
    ]
    assert patient["name"] == [
        {"use": "official", "family": "Smith", "given": ["Joan", "Mary"], "prefix": ["Mrs"]},
        {"use": "usual", "given": ["Jo"], "family": "Smith"},
    ]
    assert patient["gender"] == "female"
    assert patient["birthDate"] == "1936-04-02"
    assert "deceasedDateTime" not in patient
    assert patient["address"] == [
        {
            "use": "home",
            "line": ["12 Dock Road"],
            "city": "Tilbury",
            "postalCode": "RM18 7BX",
            "period": {"start": "2019-01-01"},
        }
    ]
    assert patient["telecom"] == [{"system": "phone", "value": "01375 000000", "use": "home"}]
    assert patient["generalPractitioner"] == [
        {
            "type": "Organization",
            "identifier": ukcore.ods_identifier("F81001"),
            "display": "Tilbury Health Centre",
        }
    ]
    (ethnic,) = patient["extension"]
    assert ethnic["url"] == ukcore.EXT_ETHNIC_CATEGORY
    assert ethnic["valueCodeableConcept"]["coding"][0]["system"] == ukcore.ETHNIC_CATEGORY_SYSTEM
    assert ethnic["valueCodeableConcept"]["coding"][0]["code"] == "A"


@pytest.mark.parametrize(
    ("raw", "status", "value", "verification", "issue"),
    [
        ("943 476 5919", "verified", NHS, "01", None),
        ("943-476-5919", "unverified", NHS, "02", None),
        ("9434765919", "verified", NHS, "01", None),
        ("9434765918", "verified", None, None, "invalid-nhs-number"),
        ("94347659", "unverified", None, None, "invalid-nhs-number"),
        ("not a number", "verified", None, None, "invalid-nhs-number"),
        (None, "missing", None, None, None),
        (NHS, "missing", None, None, None),
        (None, "verified", None, None, None),
        (NHS, "traced-ish", NHS, "02", "unknown-code"),
    ],
)
def test_nhs_number_and_verification(
    raw: str | None, status: str, value: str | None, verification: str | None, issue: str | None
) -> None:
    c = ctx()
    patient = mapping.map_person(person(nhsNumber=raw, nhsNumberStatus=status), c)
    validate_resource(patient)
    found = nhs_identifiers(patient)
    if value is None:
        assert found == []
    else:
        (ident,) = found
        assert ident["value"] == value
        (ext,) = ident["extension"]
        assert ext["url"] == ukcore.EXT_NHS_VERIFICATION
        (coding,) = ext["valueCodeableConcept"]["coding"]
        assert coding["system"] == ukcore.NHS_VERIFICATION_SYSTEM
        assert coding["code"] == verification
    assert codes(c) == ([issue] if issue else [])
    for i in c.issues:
        assert NHS not in i.text and "Smith" not in i.text
        assert i.about == "Patient"


@pytest.mark.parametrize(
    ("code", "gender", "issue"),
    [("1", "male", False), ("2", "female", False), ("9", "other", False), ("X", "unknown", False)]
    + [("3", None, True), ("F", None, True), (None, None, False)],
)
def test_gender(code: str | None, gender: str | None, issue: bool) -> None:
    c = ctx()
    patient = mapping.map_person(person(gender=code), c)
    validate_resource(patient)
    assert patient.get("gender") == gender
    assert codes(c) == (["unknown-code"] if issue else [])


@pytest.mark.parametrize(
    ("code", "kept", "issue"),
    [("A", True, False), ("S", True, False), ("Z", True, False), ("99", True, False)]
    + [("Q", False, True), ("CA", False, True), (None, False, False), ("", False, False)],
)
def test_ethnicity(code: str | None, kept: bool, issue: bool) -> None:
    c = ctx()
    patient = mapping.map_person(person(ethnicity=code), c)
    validate_resource(patient)
    assert ("extension" in patient) is kept
    assert codes(c) == (["unknown-code"] if issue else [])


def test_death_date_and_sparse_person() -> None:
    c = ctx()
    patient = mapping.map_person(
        {"personId": "P1", "deathDate": "2026-09-30", "lastUpdated": None}, c
    )
    validate_resource(patient)
    assert patient["deceasedDateTime"] == "2026-09-30"
    assert patient["identifier"] == [{"system": ukcore.person_id_system("lascare"), "value": "P1"}]
    assert "lastUpdated" not in patient["meta"]


def test_address_period_and_unknown_uses() -> None:
    raw = person(
        addresses=[
            {"use": "holiday", "lines": ["1 A St"], "from": "2001-01-01", "to": "2010-01-01"}
        ],
        telecom=[{"system": "pigeon", "value": "x", "use": "loft"}, {"system": "email"}],
    )
    patient = mapping.map_person(raw, ctx())
    validate_resource(patient)
    assert patient["address"] == [
        {"line": ["1 A St"], "period": {"start": "2001-01-01", "end": "2010-01-01"}}
    ]
    assert patient["telecom"] == [{"system": "other", "value": "x"}]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (person(), NHS),
        (person(nhsNumber="9434765918"), None),
        (person(nhsNumber=None), None),
        (person(nhsNumberStatus="missing"), None),
        (person(nhsNumber=" 943-476 5919 "), NHS),
        (person(nhsNumber="\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669"), None),
    ],
)
def test_person_nhs_number(raw: dict[str, Any], expected: str | None) -> None:
    assert mapping.person_nhs_number(raw) == expected


# --- CarePlan and Goals -----------------------------------------------------------------------


def test_support_plan_maps_to_care_plan_and_goals() -> None:
    c = ctx()
    care_plan, goals = mapping.map_support_plan(plan(), "P000123", NHS, c)
    for resource in (care_plan, *goals):
        validate_resource(resource)
    assert c.issues == []
    assert care_plan["id"] == "lascare.P000123.SP-000981"
    assert care_plan["identifier"] == [
        {"system": "urn:caregateway:source:lascare:plan-id", "value": "SP-000981"}
    ]
    assert care_plan["meta"]["profile"] == [ukcore.PROFILE_CAREPLAN]
    assert "security" not in care_plan["meta"]
    assert (care_plan["status"], care_plan["intent"]) == ("active", "plan")
    assert care_plan["category"] == [
        {"coding": [{"system": ukcore.CARE_PLAN_TYPE_SYSTEM, "code": "care-and-support"}]}
    ]
    assert care_plan["title"] == "Care and support plan"
    assert care_plan["subject"] == {"reference": f"Patient/{NHS}"}
    assert care_plan["period"] == {"start": "2026-05-01"}
    assert care_plan["author"] == {
        "type": "Organization",
        "identifier": ukcore.ods_identifier("LA883"),
        "display": "Thurrock Council",
    }
    assert care_plan["contributor"] == [
        {
            "identifier": {"system": "urn:caregateway:source:lascare:staff-id", "value": "SW0042"},
            "display": "Sam Patel",
        }
    ]
    assert care_plan["note"] == [
        {"text": "Assessed need — Managing and maintaining nutrition: Needs help preparing meals"}
    ]
    (activity,) = care_plan["activity"]
    assert activity["detail"] == {
        "kind": "ServiceRequest",
        "code": {"text": "home-care"},
        "status": "in-progress",
        "scheduledTiming": {
            "repeat": {
                "frequency": 4,
                "period": 1,
                "periodUnit": "d",
                "boundsPeriod": {"start": "2026-05-01"},
            }
        },
        "performer": [
            {
                "display": "Riverside Home Care Ltd",
                "identifier": {"system": ukcore.CQC_LOCATION_SYSTEM, "value": "1-100000001"},
            }
        ],
        "description": "Personal care, 4 calls daily",
    }
    assert [g["id"] for g in goals] == [
        "lascare.P000123.SP-000981.g1",
        "lascare.P000123.SP-000981.g2",
    ]
    assert care_plan["goal"] == [{"reference": f"Goal/{g['id']}"} for g in goals]
    first = goals[0]
    assert first["lifecycleStatus"] == "active"
    assert first["achievementStatus"]["coding"][0] == {
        "system": mapping.GOAL_ACHIEVEMENT_SYSTEM,
        "code": "in-progress",
        "display": "In Progress",
    }
    assert goals[1]["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert first["description"] == {"text": "To remain living at home safely"}
    assert first["subject"] == {"reference": f"Patient/{NHS}"}
    assert first["meta"]["source"] == "urn:caregateway:source:lascare"


@pytest.mark.parametrize(
    ("status", "expected", "issue"),
    [
        ("draft", "draft", False),
        ("active", "active", False),
        ("under-review", "active", False),
        ("ended", "completed", False),
        ("cancelled", "revoked", False),
        ("paused", "unknown", True),
        (None, "unknown", True),
    ],
)
def test_plan_status(status: str | None, expected: str, issue: bool) -> None:
    c = ctx()
    care_plan, _ = mapping.map_support_plan(plan(status=status), "P1", NHS, c)
    validate_resource(care_plan)
    assert care_plan["status"] == expected
    assert codes(c) == (["unknown-code"] if issue else [])


@pytest.mark.parametrize(
    ("plan_type", "text"),
    [
        ("care-and-support", None),
        ("reablement", None),
        ("carer-support", None),
        ("safeguarding-protection", None),
        ("Direct Payment Review", "Direct Payment Review"),
        ("CHC-joint-funded", "CHC-joint-funded"),
    ],
)
def test_plan_type_is_the_category_code_even_when_unknown(plan_type: str, text: str | None) -> None:
    c = ctx()
    care_plan, _ = mapping.map_support_plan(plan(planType=plan_type), "P1", NHS, c)
    validate_resource(care_plan)
    (category,) = care_plan["category"]
    assert category["coding"] == [{"system": ukcore.CARE_PLAN_TYPE_SYSTEM, "code": plan_type}]
    assert category.get("text") == text
    assert c.issues == []


def test_missing_plan_type_has_no_category() -> None:
    care_plan, _ = mapping.map_support_plan(plan(planType=None), "P1", NHS, ctx())
    validate_resource(care_plan)
    assert "category" not in care_plan


def _service(**changes: Any) -> dict[str, Any]:
    service: dict[str, Any] = copy.deepcopy(plan()["services"][0])
    service.update(changes)
    return service


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (
            _service(frequency={"count": 2, "period": "week"}, end="2026-12-01"),
            {
                "scheduledTiming": {
                    "repeat": {
                        "frequency": 2,
                        "period": 1,
                        "periodUnit": "wk",
                        "boundsPeriod": {"start": "2026-05-01", "end": "2026-12-01"},
                    }
                }
            },
        ),
        (
            _service(frequency={"count": 3, "period": "month"}, start=None),
            {"scheduledTiming": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "mo"}}},
        ),
        (_service(frequency="twice weekly"), {"scheduledString": "twice weekly"}),
        (
            _service(frequency={"count": 2, "period": "fortnight"}),
            {"scheduledString": "2 per fortnight"},
        ),
        (_service(frequency=None), {"scheduledPeriod": {"start": "2026-05-01"}}),
        (_service(frequency=None, start=None), {}),
    ],
)
def test_service_schedule(service: dict[str, Any], expected: dict[str, Any]) -> None:
    care_plan, _ = mapping.map_support_plan(plan(services=[service]), "P1", NHS, ctx())
    validate_resource(care_plan)
    detail = care_plan["activity"][0]["detail"]
    schedule = {k: v for k, v in detail.items() if k.startswith("scheduled")}
    assert schedule == expected


@pytest.mark.parametrize(
    ("status", "expected", "issue"),
    [
        ("planned", "not-started", False),
        ("active", "in-progress", False),
        ("ended", "completed", False),
        ("cancelled", "cancelled", False),
        ("suspended", "on-hold", False),
        ("whatever", "unknown", True),
        (None, "unknown", True),
    ],
)
def test_service_status(status: str | None, expected: str, issue: bool) -> None:
    c = ctx()
    care_plan, _ = mapping.map_support_plan(plan(services=[_service(status=status)]), "P1", NHS, c)
    validate_resource(care_plan)
    assert care_plan["activity"][0]["detail"]["status"] == expected
    assert codes(c) == (["unknown-code"] if issue else [])


def test_provider_without_cqc_id() -> None:
    service = _service(provider={"name": "Careline Thurrock", "cqcLocationId": None})
    care_plan, _ = mapping.map_support_plan(plan(services=[service]), "P1", NHS, ctx())
    assert care_plan["activity"][0]["detail"]["performer"] == [{"display": "Careline Thurrock"}]


@pytest.mark.parametrize(
    ("status", "coding", "text", "issue"),
    [
        ("in-progress", "in-progress", None, False),
        ("achieved", "achieved", None, False),
        ("not-achieved", "not-achieved", None, False),
        ("sort-of", None, "sort-of", True),
        (None, None, None, False),
    ],
)
def test_outcome_achievement(
    status: str | None, coding: str | None, text: str | None, issue: bool
) -> None:
    c = ctx()
    _, (goal,) = mapping.map_support_plan(
        plan(outcomes=[{"description": "x", "status": status}]), "P1", NHS, c
    )
    validate_resource(goal)
    achievement: Any = goal.get("achievementStatus")
    if coding is None and text is None:
        assert achievement is None
    elif coding is not None:
        assert achievement["coding"][0]["system"] == mapping.GOAL_ACHIEVEMENT_SYSTEM
        assert achievement["coding"][0]["code"] == coding
    else:
        assert achievement == {"text": text}
    assert codes(c) == (["unknown-code"] if issue else [])


def test_restricted_plan_labels_plan_and_goals() -> None:
    care_plan, goals = mapping.map_support_plan(
        plan(confidentiality="restricted", planType="safeguarding-protection"), "P1", NHS, ctx()
    )
    for resource in (care_plan, *goals):
        validate_resource(resource)
        assert resource["meta"]["security"] == [ukcore.security_label("R")]


def test_plan_without_needs_outcomes_or_services() -> None:
    care_plan, goals = mapping.map_support_plan(
        plan(needs=[], outcomes=[], services=[], createdBy=None, title=None), "P1", NHS, ctx()
    )
    validate_resource(care_plan)
    assert goals == []
    for absent in ("goal", "activity", "note", "contributor", "title"):
        assert absent not in care_plan


def test_author_without_known_organisation_name() -> None:
    c = Context("lascare", "LA883", "social-care")
    care_plan, _ = mapping.map_support_plan(plan(), "P1", NHS, c)
    assert care_plan["author"] == {
        "type": "Organization",
        "identifier": ukcore.ods_identifier("LA883"),
    }


# --- CareTeam ---------------------------------------------------------------------------------


def test_involvements_make_one_care_team_of_current_workers() -> None:
    involvements = [
        involvement(),
        involvement(
            staffId="OT0007",
            name="Olu Taylor",
            role="Occupational Therapist",
            isLead=False,
            end="2027-01-01",
        ),
        involvement(staffId="SW0001", name="Old Worker", end="2025-01-01", isLead=False),
        involvement(staffId="SW0002", name="Ends Today", end=TODAY.isoformat(), isLead=False),
    ]
    team = mapping.map_involvements(involvements, "P000123", NHS, ctx(), TODAY)
    assert team is not None
    validate_resource(team)
    assert team["id"] == "lascare.P000123.careteam"
    assert team["status"] == "active"
    assert team["subject"] == {"reference": f"Patient/{NHS}"}
    assert team["meta"]["profile"] == [ukcore.PROFILE_CARETEAM]
    members = [p["member"]["identifier"]["value"] for p in team["participant"]]
    assert members == ["SW0042", "OT0007", "SW0002"]
    lead = team["participant"][0]
    assert lead["role"] == [
        {
            "coding": [
                {
                    "system": ukcore.CARE_TEAM_ROLE_SYSTEM,
                    "code": ukcore.LEAD_PROFESSIONAL,
                    "display": "Lead professional",
                }
            ],
            "text": "Social Worker",
        }
    ]
    assert lead["member"] == {
        "identifier": {"system": "urn:caregateway:source:lascare:staff-id", "value": "SW0042"},
        "display": "Sam Patel",
    }
    assert lead["onBehalfOf"] == {
        "type": "Organization",
        "identifier": ukcore.ods_identifier("LA883"),
        "display": "Thurrock Council",
    }
    assert team["participant"][1]["role"] == [{"text": "Occupational Therapist"}]


@pytest.mark.parametrize(
    "involvements",
    [[], [involvement(end="2020-01-01")]],
)
def test_no_current_involvement_means_no_care_team(involvements: list[dict[str, Any]]) -> None:
    assert mapping.map_involvements(involvements, "P1", NHS, ctx(), TODAY) is None


@pytest.mark.parametrize(
    ("end", "current"),
    [
        (None, True),
        ("2026-11-22", False),
        ("2026-11-23", True),
        ("2027-01-01", True),
        ("junk", True),
    ],
)
def test_is_current(end: str | None, current: bool) -> None:
    assert mapping.is_current(involvement(end=end), TODAY) is current


def test_organisation_name_comes_from_the_sources_own_involvements() -> None:
    other = involvement(organisation={"odsCode": "RWX", "name": "Community Trust"})
    assert mapping.organisation_name([other, involvement()], "LA883") == "Thurrock Council"
    assert mapping.organisation_name([other], "LA883") is None


# --- Provenance and labels ----------------------------------------------------------------------


def test_provenance_targets_resources_and_names_the_organisation() -> None:
    c = ctx()
    patient = mapping.map_person(person(), c)
    care_plan, goals = mapping.map_support_plan(plan(), "P000123", NHS, c)
    recorded = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    prov = mapping.make_provenance("P000123", [patient, care_plan, *goals], recorded, c)
    validate_resource(prov)
    assert prov["id"] == "lascare.P000123.provenance"
    assert prov["meta"]["profile"] == [ukcore.PROFILE_PROVENANCE]
    assert prov["meta"]["source"] == "urn:caregateway:source:lascare"
    assert prov["target"][:2] == [
        {"reference": "Patient/lascare.P000123"},
        {"reference": "CarePlan/lascare.P000123.SP-000981"},
    ]
    assert len(prov["target"]) == 4
    assert prov["recorded"] == recorded.isoformat()
    assert prov["agent"][0]["who"]["identifier"] == ukcore.ods_identifier("LA883")
    with pytest.raises(ValueError):
        mapping.make_provenance("P1", [], datetime(2026, 1, 1), c)


def test_add_label_is_idempotent() -> None:
    resource: dict[str, Any] = {"resourceType": "Goal"}
    mapping.add_label(resource)
    mapping.add_label(resource)
    assert resource["meta"]["security"] == [ukcore.security_label("R")]


def test_health_domain_from_config() -> None:
    c = Context("lascare", "LA883", "health")
    patient = mapping.map_person(person(), c)
    assert patient["meta"]["tag"] == [{"system": ukcore.CARE_DOMAIN_SYSTEM, "code": "health"}]


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("1936-04-02", True),
        ("1936-04", True),
        ("1936", True),
        ("1936-02-30", False),
        ("02/04/1936", False),
        ("1936-4-2", False),
        ("", None),
        (None, None),
    ],
)
def test_bad_dates_are_left_out_not_fatal(value: str | None, kept: bool | None) -> None:
    c = ctx()
    raw = person(birthDate=value, addresses=[{"use": "home", "lines": ["1 A St"], "from": value}])
    patient = mapping.map_person(raw, c)
    validate_resource(patient)
    if kept:
        assert patient["birthDate"] == value
        assert patient["address"][0]["period"] == {"start": value}
        assert c.issues == []
    else:
        assert "birthDate" not in patient and "period" not in patient["address"][0]
        assert codes(c) == (["bad-date"] if kept is False else [])


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("2026-10-01T10:00:00Z", True),
        ("2026-10-01T10:00:00.123+01:00", True),
        ("2026-10-01T10:00Z", False),
        ("2026-10-01", False),
        ("2026-13-01T10:00:00Z", False),
        ("yesterday", False),
    ],
)
def test_last_updated_only_when_an_instant(value: str, kept: bool) -> None:
    patient = mapping.map_person(person(lastUpdated=value), ctx())
    validate_resource(patient)
    assert ("lastUpdated" in patient["meta"]) is kept


# --- vendor data can be anything: mapping never raises, validation only says yes or no --------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def messy(template: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``template`` with any of its fields (and their children) replaced by random JSON."""

    def field(value: Any) -> st.SearchStrategy[Any]:
        inner: st.SearchStrategy[Any]
        if isinstance(value, dict):
            inner = st.fixed_dictionaries({k: field(v) for k, v in value.items()})
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            inner = st.lists(field(value[0]), max_size=2)
        else:
            inner = st.just(value)
        return st.one_of(inner, json_values)

    return st.fixed_dictionaries({k: field(v) for k, v in template.items()})


def _validates_or_refuses(resource: dict[str, Any]) -> None:
    try:
        validate_resource(resource)
    except UKCoreValidationError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy(person()))
def test_messy_person_never_breaks_mapping(raw: dict[str, Any]) -> None:
    raw["personId"] = "P1"
    _validates_or_refuses(mapping.map_person(raw, ctx()))
    mapping.person_nhs_number(raw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy(plan()))
def test_messy_plan_never_breaks_mapping(raw: dict[str, Any]) -> None:
    raw["planId"] = "SP-1"
    care_plan, goals = mapping.map_support_plan(raw, "P1", NHS, ctx())
    for resource in (care_plan, *goals):
        _validates_or_refuses(resource)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messy(involvement()), max_size=3))
def test_messy_involvements_never_break_mapping(raw: list[dict[str, Any]]) -> None:
    team = mapping.map_involvements(raw, "P1", NHS, ctx(), TODAY)
    if team is not None:
        _validates_or_refuses(team)

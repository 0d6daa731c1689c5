"""Pure STU3 → UK Core R4 conversion, table-driven from small hand-written CareConnect fixtures."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.careplan import CarePlan as R4CarePlan
from fhir.resources.R4B.careteam import CareTeam as R4CareTeam
from fhir.resources.R4B.patient import Patient as R4Patient
from fhir.resources.R4B.provenance import Provenance as R4Provenance

from adapters import ukcore
from adapters.base import DataIssue
from adapters.community.mapping import (
    Context,
    ConversionError,
    make_provenance,
    map_care_plan,
    map_care_team,
    map_patient,
    patient_nhs_number,
)
from adapters.validation import validate_resource

NHS = "9991000003"
ODS = "RWX"
SDS = "https://fhir.nhs.uk/Id/sds-user-id"
SNOMED = "http://snomed.info/sct"
PAS = "https://fhir.example-community.nhs.uk/Id/pas-number"
R4_MODELS: dict[str, Any] = {
    "Patient": R4Patient,
    "CarePlan": R4CarePlan,
    "CareTeam": R4CareTeam,
    "Provenance": R4Provenance,
}

# --- STU3 fixtures (CareConnect shapes as real systems send them) ------------------------

VERIFY_EXT = sorted(ukcore.STU3_NHS_VERIFICATION_EXTENSIONS)
VERIFY_SYSTEMS = sorted(ukcore.STU3_NHS_VERIFICATION_SYSTEMS)
ETHNIC_SYSTEMS = sorted(ukcore.STU3_ETHNIC_CATEGORY_SYSTEMS)


def organization(
    oid: str = "org-rwx", ods: str = ODS, name: str = "Community Trust"
) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": oid,
        "identifier": [{"system": ukcore.ODS_ORGANISATION_SYSTEM, "value": ods}],
        "name": name,
    }


def practitioner(pid: str = "pr-1", sds: str = "500000000011") -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": pid,
        "identifier": [
            {"system": "https://local.example/staff", "value": "S1"},
            {"system": SDS, "value": sds},
        ],
        "name": [{"family": "Okafor", "given": ["Ada"], "prefix": ["Dr"]}],
    }


def patient(
    *,
    nhs: str = NHS,
    ext_url: str = VERIFY_EXT[0],
    system: str = VERIFY_SYSTEMS[0],
    code: str = "01",
    ethnic: tuple[str, str] | None = (ETHNIC_SYSTEMS[0], "A"),
    gp: str | None = "Organization/org-gp",
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "C1",
        "meta": {"lastUpdated": "2026-09-14T11:51:00Z"},
        "identifier": [
            {
                "system": ukcore.NHS_NUMBER_SYSTEM,
                "value": nhs,
                "extension": [
                    {
                        "url": ext_url,
                        "valueCodeableConcept": {"coding": [{"system": system, "code": code}]},
                    }
                ],
            },
            {"system": PAS, "value": "RWX123"},
        ],
        "name": [{"use": "official", "family": "Thurlow", "given": ["Joan"]}],
        "gender": "female",
        "birthDate": "1936-04-02",
        "address": [{"use": "home", "line": ["12 Quayside Walk"], "postalCode": "RM18 7BX"}],
        "telecom": [{"system": "phone", "value": "01375 000000", "use": "home"}],
    }
    if ethnic is not None:
        raw["extension"] = [
            {
                "url": ukcore.STU3_EXT_ETHNIC_CATEGORY,
                "valueCodeableConcept": {"coding": [{"system": ethnic[0], "code": ethnic[1]}]},
            }
        ]
    if gp is not None:
        raw["generalPractitioner"] = [{"reference": gp}]
    return raw


def care_plan(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": "cp-1",
        "identifier": [{"system": "https://local.example/care-plan", "value": "CP-1"}],
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": SNOMED, "code": "773130005"}]}],
        "title": "District nursing care plan",
        "description": "Wound care",
        "subject": {"reference": "Patient/C1"},
        "period": {"start": "2026-07-09"},
        "author": [{"reference": "#org"}, {"reference": "Practitioner/pr-1"}],
        "contained": [organization("org")],
        "careTeam": [{"reference": "CareTeam/ct-1"}],
        "activity": [
            {
                "detail": {
                    "status": "in-progress",
                    "description": "Home visit",
                    "scheduledString": "weekly",
                }
            }
        ],
        "note": [{"text": "Seen at home", "authorReference": {"reference": "Practitioner/pr-1"}}],
    }
    raw.update(overrides)
    return raw


def care_team(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": "ct-1",
        "status": "active",
        "name": "Community MDT",
        "subject": {"reference": "Patient/C1"},
        "period": {"start": "2026-01-01"},
        "participant": [
            {
                "role": {"coding": [{"system": SNOMED, "code": "224535009", "display": "Nurse"}]},
                "member": {"reference": "#pr"},
                "onBehalfOf": {"reference": "Organization/org-rwx"},
            },
            {"member": {"reference": "Practitioner/pr-1"}},
        ],
        "managingOrganization": [{"reference": "Organization/org-rwx"}],
        "contained": [practitioner("pr", "500000000099")],
    }
    raw.update(overrides)
    return raw


def ctx(**resolved: dict[str, Any]) -> Context:
    default = {
        "Organization/org-gp": organization("org-gp", "F81001", "Tilbury Health Centre"),
        "Organization/org-rwx": organization(),
        "Practitioner/pr-1": practitioner(),
    }
    return Context("community", ODS, "health", resolved={**default, **resolved})


def r4_valid(resource: dict[str, Any]) -> None:
    """Structure per the R4B models, and the project's UK Core checks."""
    R4_MODELS[resource["resourceType"]].model_validate(copy.deepcopy(resource))
    validate_resource(copy.deepcopy(resource))


def assert_meta(resource: dict[str, Any], profile: str) -> None:
    meta = resource["meta"]
    assert meta["profile"] == [profile]
    assert meta["source"] == "urn:caregateway:source:community"
    assert {"system": ukcore.CARE_DOMAIN_SYSTEM, "code": "health"} in meta["tag"]


# --- Patient ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext_url", VERIFY_EXT)
@pytest.mark.parametrize("system", VERIFY_SYSTEMS)
@pytest.mark.parametrize("code", ["01", "02", "04", "08"])
def test_verification_status_from_every_stu3_url_and_system(
    ext_url: str, system: str, code: str
) -> None:
    out = map_patient(patient(ext_url=ext_url, system=system, code=code), ctx())
    nhs_ids = [i for i in out["identifier"] if i["system"] == ukcore.NHS_NUMBER_SYSTEM]
    assert len(nhs_ids) == 1 and nhs_ids[0]["value"] == NHS
    ext = nhs_ids[0]["extension"]
    assert ext == [
        {
            "url": ukcore.EXT_NHS_VERIFICATION,
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": ukcore.NHS_VERIFICATION_SYSTEM,
                        "code": code,
                        "display": ukcore.NHS_VERIFICATION_DISPLAY[code],
                    }
                ]
            },
        }
    ]
    r4_valid(out)


@pytest.mark.parametrize(
    ("ext_url", "system", "code", "issue"),
    [
        ("https://example.org/other-extension", VERIFY_SYSTEMS[0], "01", None),
        (VERIFY_EXT[0], "https://example.org/other-system", "01", "unknown-code"),
        (VERIFY_EXT[0], VERIFY_SYSTEMS[0], "42", "unknown-code"),
    ],
)
def test_unrecognised_verification_status_is_dropped_not_guessed(
    ext_url: str, system: str, code: str, issue: str | None
) -> None:
    context = ctx()
    out = map_patient(patient(ext_url=ext_url, system=system, code=code), context)
    assert "extension" not in out["identifier"][0]
    assert [i.code for i in context.issues] == ([issue] if issue else [])


@pytest.mark.parametrize("stored", ["999 100 0003", "999-100-0003", " 9991000003 "])
def test_nhs_number_stored_with_separators_is_normalised(stored: str) -> None:
    out = map_patient(patient(nhs=stored), ctx())
    assert out["identifier"][0]["value"] == NHS
    assert patient_nhs_number(patient(nhs=stored)) == NHS


def test_invalid_nhs_number_is_left_out_and_reported_without_the_number() -> None:
    context = ctx()
    out = map_patient(patient(nhs="9991000004"), context)
    assert all(i["system"] != ukcore.NHS_NUMBER_SYSTEM for i in out["identifier"])
    assert [i.code for i in context.issues] == ["invalid-nhs-number"]
    assert "9991000004" not in str(context.issues)
    assert patient_nhs_number(patient(nhs="9991000004")) is None


def test_local_identifiers_kept_as_sent_plus_the_source_person_id() -> None:
    out = map_patient(patient(), ctx())
    assert out["id"] == "community.C1"
    assert out["identifier"][1:] == [
        {"system": ukcore.person_id_system("community"), "value": "C1"},
        {"system": PAS, "value": "RWX123"},
    ]


def test_demographics_and_meta() -> None:
    raw = patient()
    raw["deceasedDateTime"] = "2026-09-14"
    out = map_patient(raw, ctx())
    assert_meta(out, ukcore.PROFILE_PATIENT)
    assert out["meta"]["lastUpdated"] == "2026-09-14T11:51:00Z"
    for key in ("name", "gender", "birthDate", "address", "telecom", "deceasedDateTime"):
        assert out[key] == raw[key]
    r4_valid(out)


@pytest.mark.parametrize("system", ETHNIC_SYSTEMS)
@pytest.mark.parametrize(
    ("code", "expected", "keeps_original"),
    [
        ("A", "A", False),
        ("S", "S", False),
        ("99", "99", False),
        ("CA", "C", True),
        ("LF", "L", True),
    ],
)
def test_ethnic_category_both_systems_and_local_sub_codes(
    system: str, code: str, expected: str, keeps_original: bool
) -> None:
    context = ctx()
    out = map_patient(patient(ethnic=(system, code)), context)
    (ext,) = out["extension"]
    assert ext["url"] == ukcore.EXT_ETHNIC_CATEGORY
    codings = ext["valueCodeableConcept"]["coding"]
    assert codings[0] == {
        "system": ukcore.ETHNIC_CATEGORY_SYSTEM,
        "code": expected,
        "display": ukcore.ETHNIC_CATEGORY_DISPLAY[expected],
    }
    assert codings[1:] == ([{"system": system, "code": code}] if keeps_original else [])
    assert context.issues == []
    r4_valid(out)


@pytest.mark.parametrize("code", ["Q", "Q1", "ABC"])
def test_unknown_ethnic_category_is_text_only_and_reported(code: str) -> None:
    context = ctx()
    out = map_patient(patient(ethnic=(ETHNIC_SYSTEMS[1], code)), context)
    assert out["extension"][0]["valueCodeableConcept"] == {"text": code}
    assert context.issues == [
        DataIssue(
            "unknown-code", "ethnic category code not in UKCore-EthnicCategoryEngland", "Patient"
        )
    ]


@pytest.mark.parametrize("how", ["referenced", "contained"])
def test_general_practitioner_is_the_practice_ods_code(how: str) -> None:
    raw = patient(gp="Organization/org-gp" if how == "referenced" else "#gp")
    if how == "contained":
        raw["contained"] = [organization("gp", "F81001", "Tilbury Health Centre")]
    out = map_patient(
        raw, ctx() if how == "referenced" else Context("community", ODS, "health")
    )
    assert out["generalPractitioner"] == [
        {
            "type": "Organization",
            "identifier": {"system": ukcore.ODS_ORGANISATION_SYSTEM, "value": "F81001"},
            "display": "Tilbury Health Centre",
        }
    ]
    r4_valid(out)


def test_unresolvable_general_practitioner_keeps_display_only_and_is_reported() -> None:
    raw = patient(gp="Organization/missing")
    raw["generalPractitioner"][0]["display"] = "Some Surgery"
    context = ctx()
    out = map_patient(raw, context)
    assert out["generalPractitioner"] == [{"display": "Some Surgery"}]
    assert [i.code for i in context.issues] == ["unresolved-reference"]


def test_unknown_elements_are_dropped() -> None:
    raw = patient()
    raw["maritalStatus"] = {"text": "Widowed"}
    raw["name"][0]["extension"] = [{"url": "https://example.org/x", "valueString": "y"}]
    out = map_patient(raw, ctx())
    assert "maritalStatus" not in out and "extension" not in out["name"][0]


def test_invalid_stu3_is_a_conversion_error_without_identifiers() -> None:
    raw = patient()
    raw["birthDate"] = f"born {NHS}"
    raw["gender"] = ["Joan"]
    with pytest.raises(ConversionError) as err:
        map_patient(raw, ctx())
    message = str(err.value)
    assert "Patient" in message and "birthDate" in message
    assert NHS not in message and "Joan" not in message


@pytest.mark.parametrize("raw", [None, [], {"resourceType": "Practitioner", "id": "x"}])
def test_wrong_resource_type_is_a_conversion_error(raw: Any) -> None:
    with pytest.raises(ConversionError):
        map_patient(raw, ctx())


def test_id_too_long_for_fhir_is_a_conversion_error() -> None:
    raw = patient()
    raw["id"] = "x" * 60
    with pytest.raises(ConversionError, match="FHIR id"):
        map_patient(raw, ctx())


# --- CarePlan --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stu3", "r4"),
    [
        ("draft", "draft"),
        ("active", "active"),
        ("suspended", "on-hold"),
        ("completed", "completed"),
        ("entered-in-error", "entered-in-error"),
        ("cancelled", "revoked"),
        ("unknown", "unknown"),
    ],
)
def test_every_stu3_care_plan_status(stu3: str, r4: str) -> None:
    out = map_care_plan(care_plan(status=stu3), "C1", NHS, ctx())
    assert out["status"] == r4
    r4_valid(out)


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        (None, "plan"),
        ("plan", "plan"),
        ("proposal", "proposal"),
        ("order", "order"),
        ("option", "option"),
    ],
)
def test_intent_is_plan_unless_the_source_says_otherwise(intent: str | None, expected: str) -> None:
    raw = care_plan()
    raw.pop("intent")
    if intent is not None:
        raw["intent"] = intent
    out = map_care_plan(raw, "C1", NHS, ctx())
    assert out["intent"] == expected


def test_care_plan_core_shape() -> None:
    out = map_care_plan(care_plan(), "C1", NHS, ctx())
    assert out["id"] == "community.C1.cp-1"
    assert_meta(out, ukcore.PROFILE_CAREPLAN)
    assert out["subject"] == {"reference": f"Patient/{NHS}"}
    assert out["identifier"] == [{"system": "https://local.example/care-plan", "value": "CP-1"}]
    assert out["category"] == [
        {"coding": [{"system": ukcore.CARE_PLAN_TYPE_SYSTEM, "code": "health"}]},
        {"coding": [{"system": SNOMED, "code": "773130005"}]},
    ]
    assert out["title"] == "District nursing care plan" and out["description"] == "Wound care"
    assert out["period"] == {"start": "2026-07-09"}
    assert out["careTeam"] == [{"reference": "CareTeam/community.C1.ct-1"}]
    assert out["activity"] == [
        {
            "detail": {
                "status": "in-progress",
                "scheduledString": "weekly",
                "description": "Home visit",
            }
        }
    ]
    assert out["note"] == [{"text": "Seen at home"}]
    assert "contained" not in out
    r4_valid(out)


@pytest.mark.parametrize(
    "authors",
    [
        [{"reference": "#org"}, {"reference": "Practitioner/pr-1"}],
        [{"reference": "Organization/org-rwx"}, {"reference": "#pr"}],
        [{"reference": "Practitioner/pr-1"}],
    ],
    ids=[
        "contained-org+referenced-practitioner",
        "referenced-org+contained-practitioner",
        "practitioner-only",
    ],
)
def test_author_is_the_source_organisation_and_practitioners_contribute(
    authors: list[dict[str, str]],
) -> None:
    raw = care_plan(author=authors, contained=[organization("org"), practitioner("pr")])
    out = map_care_plan(raw, "C1", NHS, ctx())
    assert out["author"]["identifier"] == ukcore.ods_identifier(ODS)
    assert out["author"]["type"] == "Organization"
    (contributor,) = out["contributor"]
    assert contributor["type"] == "Practitioner"
    assert contributor["identifier"]["system"] == SDS
    assert contributor["display"] == "Dr Ada Okafor"
    r4_valid(out)


def test_other_authoring_organisations_become_contributors() -> None:
    other = organization("la", "LA883", "Council")
    raw = care_plan(
        author=[{"reference": "#org"}, {"reference": "#la"}], contained=[organization("org"), other]
    )
    out = map_care_plan(raw, "C1", NHS, ctx())
    assert out["author"] == {
        "type": "Organization",
        "identifier": ukcore.ods_identifier(ODS),
        "display": "Community Trust",
    }
    assert out["contributor"] == [
        {"type": "Organization", "identifier": ukcore.ods_identifier("LA883"), "display": "Council"}
    ]


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (
            {"reference": "Encounter/enc-1"},
            {
                "type": "Encounter",
                "identifier": {
                    "system": "urn:caregateway:source:community:encounter-id",
                    "value": "enc-1",
                },
            },
        ),
        ({"reference": "EpisodeOfCare/eoc-1"}, None),
        (None, None),
    ],
)
def test_context_becomes_encounter_only_when_it_is_an_encounter(
    context: dict[str, str] | None, expected: dict[str, Any] | None
) -> None:
    raw = care_plan()
    if context is not None:
        raw["context"] = context
    out = map_care_plan(raw, "C1", NHS, ctx())
    assert out.get("encounter") == expected
    assert "context" not in out
    r4_valid(out)


def test_definitions_become_instantiates_canonical_or_uri() -> None:
    raw = care_plan(
        definition=[
            {"reference": "https://example.org/fhir/PlanDefinition/falls"},
            {"reference": "PlanDefinition/pd-1"},
            {"display": "a plan without a reference"},
        ]
    )
    raw["activity"][0]["detail"]["definition"] = {"reference": "ActivityDefinition/ad-1"}
    out = map_care_plan(raw, "C1", NHS, ctx())
    assert out["instantiatesCanonical"] == ["https://example.org/fhir/PlanDefinition/falls"]
    # relative to the source server: kept as a URN naming the source, never as a location
    assert out["instantiatesUri"] == ["urn:caregateway:source:community:PlanDefinition/pd-1"]
    assert out["activity"][0]["detail"]["instantiatesUri"] == [
        "urn:caregateway:source:community:ActivityDefinition/ad-1"
    ]
    assert "definition" not in out and "definition" not in out["activity"][0]["detail"]
    r4_valid(out)


@pytest.mark.parametrize(
    ("labels", "expected", "issues"),
    [
        ([("http://hl7.org/fhir/v3/Confidentiality", "R")], ["R"], []),
        ([("http://hl7.org/fhir/v3/Confidentiality", "V")], ["V"], []),
        ([("http://hl7.org/fhir/v3/Confidentiality", "N")], ["N"], []),
        ([(ukcore.CONFIDENTIALITY_SYSTEM, "R")], ["R"], []),
        ([("http://hl7.org/fhir/v3/ActCode", "PSY")], [], []),
        ([("http://hl7.org/fhir/v3/Confidentiality", "Q")], [], ["unknown-code"]),
        ([], [], []),
    ],
)
def test_security_labels_become_r4_confidentiality(
    labels: list[tuple[str, str]], expected: list[str], issues: list[str]
) -> None:
    raw = care_plan(meta={"security": [{"system": s, "code": c} for s, c in labels]})
    context = ctx()
    out = map_care_plan(raw, "C1", NHS, context)
    got = out["meta"].get("security", [])
    assert got == [ukcore.security_label(c) for c in expected]
    assert all(label["system"] == ukcore.CONFIDENTIALITY_SYSTEM for label in got)
    assert [i.code for i in context.issues] == issues
    r4_valid(out)


@pytest.mark.parametrize(
    "status",
    ["not-started", "scheduled", "in-progress", "on-hold", "completed", "cancelled", "unknown"],
)
def test_every_stu3_activity_status(status: str) -> None:
    raw = care_plan()
    raw["activity"][0]["detail"].update(
        status=status, statusReason="family request", prohibited=False
    )
    out = map_care_plan(raw, "C1", NHS, ctx())
    detail = out["activity"][0]["detail"]
    assert detail["status"] == status
    assert detail["statusReason"] == {"text": "family request"}
    assert detail["doNotPerform"] is False
    r4_valid(out)


def test_activity_category_and_reference_only_activities_are_dropped() -> None:
    raw = care_plan(
        activity=[
            {"reference": {"reference": "ReferralRequest/r1"}},
            {
                "detail": {
                    "category": {"coding": [{"code": "encounter"}]},
                    "status": "scheduled",
                    "performer": [{"reference": "Practitioner/pr-1"}],
                }
            },
        ]
    )
    out = map_care_plan(raw, "C1", NHS, ctx())
    (activity,) = out["activity"]
    assert "category" not in activity["detail"] and "kind" not in activity["detail"]
    assert activity["detail"]["performer"][0]["identifier"]["system"] == SDS
    r4_valid(out)


def test_care_plan_ids_and_invalid_content() -> None:
    with pytest.raises(ConversionError):
        map_care_plan(care_plan(status="paused"), "C1", NHS, ctx())
    with pytest.raises(ConversionError):
        map_care_plan(care_plan(intent="wish"), "C1", NHS, ctx())
    raw = care_plan()
    del raw["subject"]
    with pytest.raises(ConversionError, match="CarePlan failed validation at subject"):
        map_care_plan(raw, "C1", NHS, ctx())


# --- CareTeam --------------------------------------------------------------------------


def test_care_team_participants_with_contained_and_referenced_members() -> None:
    out = map_care_team(care_team(), "C1", NHS, ctx())
    assert out["id"] == "community.C1.ct-1"
    assert_meta(out, ukcore.PROFILE_CARETEAM)
    assert out["status"] == "active" and out["name"] == "Community MDT"
    assert out["subject"] == {"reference": f"Patient/{NHS}"}
    assert out["period"] == {"start": "2026-01-01"}
    first, second = out["participant"]
    assert first["role"] == [
        {"coding": [{"system": SNOMED, "code": "224535009", "display": "Nurse"}]}
    ]
    assert first["member"] == {
        "type": "Practitioner",
        "identifier": {"system": SDS, "value": "500000000099"},
        "display": "Dr Ada Okafor",
    }
    assert first["onBehalfOf"]["identifier"] == ukcore.ods_identifier(ODS)
    assert second["member"]["identifier"] == {"system": SDS, "value": "500000000011"}
    assert out["managingOrganization"] == [
        {
            "type": "Organization",
            "identifier": ukcore.ods_identifier(ODS),
            "display": "Community Trust",
        }
    ]
    r4_valid(out)


@pytest.mark.parametrize(
    "status", ["proposed", "active", "suspended", "inactive", "entered-in-error"]
)
def test_every_care_team_status(status: str) -> None:
    out = map_care_team(care_team(status=status), "C1", NHS, ctx())
    assert out["status"] == status
    r4_valid(out)


# --- Provenance ------------------------------------------------------------------------


def test_one_provenance_names_the_source_organisation_by_ods() -> None:
    context = ctx()
    made = [
        map_patient(patient(), context),
        map_care_plan(care_plan(), "C1", NHS, context),
        map_care_team(care_team(), "C1", NHS, context),
    ]
    when = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    out = make_provenance("C1", made, when, context)
    assert out["id"] == "community.C1.provenance"
    assert_meta(out, ukcore.PROFILE_PROVENANCE)
    assert out["target"] == [
        {"reference": "Patient/community.C1"},
        {"reference": "CarePlan/community.C1.cp-1"},
        {"reference": "CareTeam/community.C1.ct-1"},
    ]
    assert out["recorded"] == "2026-11-23T11:00:00+00:00"
    (agent,) = out["agent"]
    assert agent["who"]["identifier"] == ukcore.ods_identifier(ODS)
    assert agent["type"]["coding"][0]["code"] == "author"
    r4_valid(out)
    with pytest.raises(ValueError):
        make_provenance("C1", made, datetime(2026, 11, 23), context)  # noqa: DTZ001


def test_general_practitioner_by_identifier_only() -> None:
    raw = patient(gp=None)
    raw["generalPractitioner"] = [
        {
            "identifier": {"system": ukcore.ODS_ORGANISATION_SYSTEM, "value": "F81001"},
            "display": "X",
        }
    ]
    out = map_patient(raw, ctx())
    assert out["generalPractitioner"] == [
        {"identifier": ukcore.ods_identifier("F81001"), "display": "X"}
    ]


def test_timing_is_kept_as_sent() -> None:
    raw = care_plan()
    raw["activity"][0]["detail"]["scheduledTiming"] = {
        "repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["MORN"]}
    }
    raw["activity"][0]["detail"].pop("scheduledString")
    out = map_care_plan(raw, "C1", NHS, ctx())
    timing = out["activity"][0]["detail"]["scheduledTiming"]
    assert timing == {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["MORN"]}}
    r4_valid(out)

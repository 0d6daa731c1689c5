"""Merge rules: one Patient per NHS number, trust order for demographics, warnings."""

from __future__ import annotations

from typing import Any

import orjson
from fhir.resources.R4B.operationoutcome import OperationOutcome

from adapters import ukcore
from adapters.base import DataIssue, Outcome, SourceResult
from gateway.fhir.responses import EXT_ISSUE_SOURCE, merge_warning_outcome
from gateway.records.merge import MERGE_WARNING_SYSTEM, MergeWarning, merge, merge_patient
from tests.adapters.support import source_meta

NHS = "9990000018"


def patient(source: str, *, verified: bool, updated: str, **elements: Any) -> dict[str, Any]:
    code = "01" if verified else "02"
    return {
        "resourceType": "Patient",
        "id": f"{source}.P1",
        "meta": source_meta(ukcore.source_uri(source), ukcore.PROFILE_PATIENT, updated, "health"),
        "identifier": [
            {
                "system": ukcore.NHS_NUMBER_SYSTEM,
                "value": NHS,
                "extension": [
                    {
                        "url": ukcore.EXT_NHS_VERIFICATION,
                        "valueCodeableConcept": {
                            "coding": [{"system": ukcore.NHS_VERIFICATION_SYSTEM, "code": code}]
                        },
                    }
                ],
            },
            {"system": ukcore.person_id_system(source), "value": "P1"},
        ],
        **elements,
    }


def validated(oo: dict[str, Any]) -> OperationOutcome:
    """Validate against the R4B model (same element tree as R4), from JSON bytes."""
    return OperationOutcome.model_validate_json(orjson.dumps(oo))


def source_extension(*sources: str) -> list[dict[str, str]]:
    return [{"url": EXT_ISSUE_SOURCE, "valueUri": ukcore.source_uri(s)} for s in sources]


def warning_outcome(warning: MergeWarning) -> dict[str, Any]:
    """The OperationOutcome a merge warning is shown as, checked against the R4B model."""
    oo = merge_warning_outcome(warning)
    validated(oo)
    return oo


def warning_issue(
    code: str, text: str, *sources: str, diagnostics: str, **elements: Any
) -> dict[str, Any]:
    """The one issue expected for a merge warning ``code`` found in ``sources``."""
    return {
        "severity": "warning",
        "code": "informational",
        "details": {"coding": [{"system": MERGE_WARNING_SYSTEM, "code": code}], "text": text},
        "diagnostics": diagnostics,
        **elements,
        "extension": source_extension(*sources),
    }


def result(
    source: str, *resources: dict[str, Any], issues: tuple[DataIssue, ...] = ()
) -> SourceResult:
    return SourceResult(
        source=source,
        organisation="X1",
        domain="health",
        outcome=Outcome.FOUND,
        resources=resources,
        issues=issues,
    )


def test_verified_source_wins_over_more_recent_unverified() -> None:
    a = patient("a", verified=True, updated="2026-01-01T00:00:00Z", birthDate="1940-01-01")
    b = patient("b", verified=False, updated="2026-10-01T00:00:00Z", birthDate="1941-02-02")
    merged, warnings = merge_patient(NHS, [("b", b), ("a", a)])
    assert merged is not None
    assert merged["id"] == NHS
    assert merged["birthDate"] == "1940-01-01"
    nhs_idents = [i for i in merged["identifier"] if i["system"] == ukcore.NHS_NUMBER_SYSTEM]
    assert len(nhs_idents) == 1
    code = nhs_idents[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]
    assert code == "01"
    assert {i["system"] for i in merged["identifier"]} == {
        ukcore.NHS_NUMBER_SYSTEM,
        ukcore.person_id_system("a"),
        ukcore.person_id_system("b"),
    }
    assert [w.code for w in warnings] == ["demographics-conflict"]
    assert "birthDate" in warnings[0].text and "1940" not in warnings[0].text


def test_most_recent_wins_between_equally_trusted_sources() -> None:
    a = patient("a", verified=True, updated="2026-01-01T00:00:00Z", gender="male")
    b = patient("b", verified=True, updated="2026-10-01T00:00:00Z", gender="female")
    merged, _ = merge_patient(NHS, [("a", a), ("b", b)])
    assert merged is not None and merged["gender"] == "female"


def test_no_conflict_no_warning_and_elements_filled_from_any_source() -> None:
    a = patient("a", verified=True, updated="2026-01-01T00:00:00Z", birthDate="1940-01-01")
    b = patient(
        "b",
        verified=False,
        updated="2026-10-01T00:00:00Z",
        birthDate="1940-01-01",
        telecom=[{"system": "phone", "value": "01375 000001"}],
    )
    merged, warnings = merge_patient(NHS, [("a", a), ("b", b)])
    assert warnings == []
    assert merged is not None and merged["telecom"][0]["value"] == "01375 000001"


def test_merge_passes_plans_through_and_prunes_provenance_targets() -> None:
    plan = {"resourceType": "CarePlan", "id": "a.P1.SP1", "status": "active"}
    prov = {
        "resourceType": "Provenance",
        "id": "a.P1.provenance",
        "target": [
            {"reference": "Patient/a.P1"},
            {"reference": "CarePlan/a.P1.SP1"},
            {"reference": "CarePlan/a.P1.withheld"},
        ],
    }
    pat = patient("a", verified=True, updated="2026-01-01T00:00:00Z")
    record = merge(
        NHS, [result("a", pat, plan, prov, issues=(DataIssue("duplicate-person", "two"),))]
    )
    # passed through unchanged, but for the generated narrative of what is shown
    [shown] = record.care_plans
    assert shown["text"]["status"] == "generated"
    assert {k: v for k, v in shown.items() if k != "text"} == plan
    assert record.provenance[0]["target"] == [
        {"reference": f"Patient/{NHS}"},
        {"reference": "CarePlan/a.P1.SP1"},
    ]
    assert [w.code for w in record.warnings] == ["duplicate-person"]
    assert [r["resourceType"] for r in record.resources()] == ["Patient", "CarePlan", "Provenance"]


def test_failed_sources_contribute_nothing() -> None:
    failed = SourceResult("b", "X2", "health", Outcome.UNAVAILABLE, detail="HTTP 503")
    record = merge(NHS, [failed])
    assert record.patient is None and record.resources() == []


def test_birth_date_conflict_is_a_coded_warning_naming_element_and_sources() -> None:
    a = patient("a", verified=True, updated="2026-01-01T00:00:00Z", birthDate="1940-01-01")
    b = patient("b", verified=False, updated="2026-10-01T00:00:00Z", birthDate="1941-02-02")
    _, warnings = merge_patient(NHS, [("b", b), ("a", a)])
    (warning,) = warnings
    assert warning.code == "demographics-conflict"
    assert warning.sources == ("a", "b")
    assert warning.expression == ("Patient.birthDate",)

    oo = warning_outcome(warning)
    assert oo["issue"] == [
        warning_issue(
            "demographics-conflict",
            "Sources disagree on Patient.birthDate (a, b); shown: the value from a "
            "(verified NHS number first, then most recent).",
            "a",
            "b",
            diagnostics=warning.text,
            expression=["Patient.birthDate"],
        )
    ]
    assert MERGE_WARNING_SYSTEM == "urn:caregateway:merge-warning"
    dumped = orjson.dumps(oo).decode()
    for value in ("1940", "1941", "01-01", "02-02", NHS):
        assert value not in dumped


def test_deceased_conflict_uses_the_fhirpath_choice_name() -> None:
    a = patient("a", verified=True, updated="2026-01-01T00:00:00Z", deceasedDateTime="2026-09-14")
    b = patient("b", verified=True, updated="2026-02-01T00:00:00Z", deceasedDateTime="2026-09-15")
    _, warnings = merge_patient(NHS, [("a", a), ("b", b)])
    (warning,) = warnings
    assert warning.expression == ("Patient.deceased",)
    assert "Patient.deceasedDateTime" in warning.text
    oo = warning_outcome(warning)
    assert oo["issue"][0]["expression"] == ["Patient.deceased"]


def test_conflict_text_names_the_source_whose_value_is_shown() -> None:
    top = patient("a", verified=True, updated="2026-10-01T00:00:00Z")  # no gender at all
    b = patient("b", verified=True, updated="2026-05-01T00:00:00Z", gender="female")
    c = patient("c", verified=False, updated="2026-09-01T00:00:00Z", gender="male")
    merged, warnings = merge_patient(NHS, [("c", c), ("a", top), ("b", b)])
    assert merged is not None and merged["gender"] == "female"
    (warning,) = warnings
    assert warning.sources == ("b", "c")
    assert warning.expression == ("Patient.gender",)
    assert "shown: the value from b " in warning.text


def test_a_finding_about_two_kinds_of_resource_is_one_warning() -> None:
    bad_date = "a date in the record is not a valid date and was left out"
    issues = (
        DataIssue("bad-date", bad_date, "Patient"),
        DataIssue("unknown-code", "a service status is not recognised", "CarePlan"),
        DataIssue("bad-date", bad_date, "CarePlan"),
    )
    pat = patient("a", verified=True, updated="2026-01-01T00:00:00Z")
    record = merge(NHS, [result("a", pat, issues=issues)])
    assert record.warnings == [
        MergeWarning("bad-date", f"a: {bad_date}", sources=("a",)),
        MergeWarning("unknown-code", "a: a service status is not recognised", sources=("a",)),
    ]


def test_duplicate_source_record_is_a_coded_warning_naming_its_source() -> None:
    pat = patient("a", verified=True, updated="2026-01-01T00:00:00Z")
    issue = DataIssue("duplicate-person", "2 person records share one NHS number")
    record = merge(
        NHS,
        [
            result("a", pat, issues=(issue,)),
            result("b", patient("b", verified=True, updated="2026-01-01T00:00:00Z")),
        ],
    )
    assert record.warnings == [
        MergeWarning("duplicate-person", "a: 2 person records share one NHS number", sources=("a",))
    ]
    oo = warning_outcome(record.warnings[0])
    text = "a: 2 person records share one NHS number"
    assert oo["issue"] == [warning_issue("duplicate-person", text, "a", diagnostics=text)]

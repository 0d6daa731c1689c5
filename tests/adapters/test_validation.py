"""adapters.validation: R4B structure plus the UK Core checks the models do not make."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import ukcore
from adapters.validation import UKCoreValidationError, validate_bundle, validate_resource

NHS = "9990000018"


def _verification(code: str = "01", system: str = ukcore.NHS_VERIFICATION_SYSTEM) -> dict[str, Any]:
    return {
        "url": ukcore.EXT_NHS_VERIFICATION,
        "valueCodeableConcept": {"coding": [{"system": system, "code": code}]},
    }


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "lascare.P000123",
        "meta": {
            "profile": [ukcore.PROFILE_PATIENT],
            "security": [ukcore.security_label("R")],
        },
        "extension": [
            {
                "url": ukcore.EXT_ETHNIC_CATEGORY,
                "valueCodeableConcept": {
                    "coding": [{"system": ukcore.ETHNIC_CATEGORY_SYSTEM, "code": "A"}]
                },
            }
        ],
        "identifier": [
            {"system": ukcore.NHS_NUMBER_SYSTEM, "value": NHS, "extension": [_verification()]},
            {"system": "urn:caregateway:source:lascare:person-id", "value": "P000123"},
        ],
        "name": [{"family": "Smith", "given": ["Joan"]}],
        "gender": "female",
        "birthDate": "1936-04-02",
    }


def careplan() -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": "lascare.P000123.SP-1",
        "meta": {"profile": [ukcore.PROFILE_CAREPLAN]},
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{NHS}"},
        "activity": [{"detail": {"kind": "ServiceRequest", "status": "in-progress"}}],
    }


def careteam() -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "meta": {"profile": [ukcore.PROFILE_CARETEAM]},
        "status": "active",
        "subject": {"reference": f"Patient/{NHS}"},
    }


def goal() -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "Stay at home"},
        "subject": {"reference": f"Patient/{NHS}"},
    }


def provenance() -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "meta": {"profile": [ukcore.PROFILE_PROVENANCE]},
        "target": [{"reference": "Patient/lascare.P000123"}],
        "recorded": "2026-11-23T10:00:00+00:00",
        "agent": [{"who": {"identifier": ukcore.ods_identifier("LA883")}}],
    }


@pytest.mark.parametrize("make", [patient, careplan, careteam, goal, provenance])
def test_valid_resources_pass(make: Any) -> None:
    validate_resource(make())


def test_verification_status_is_optional_as_in_uk_core() -> None:
    """UK Core's NHS number verification slice is 0..1: a number with no status is valid."""
    resource = patient()
    resource["identifier"][0].pop("extension")
    validate_resource(resource)


def _set(path: str, value: Any) -> Any:
    def edit(r: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = r
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return edit


_DELETE = object()

BAD: list[tuple[str, Any, Any, str]] = [
    ("no profile", patient, _set("meta/profile", []), "meta.profile"),
    ("no meta", careplan, _set("meta", _DELETE), "meta.profile"),
    ("careteam profile", careteam, _set("meta/profile", ["http://x/y"]), "meta.profile"),
    ("provenance profile", provenance, _set("meta", _DELETE), "meta.profile"),
    ("gender", patient, _set("gender", "xx"), "gender"),
    (
        "two nhs",
        patient,
        _set(
            "identifier/1",
            {"system": ukcore.NHS_NUMBER_SYSTEM, "value": NHS, "extension": [_verification()]},
        ),
        "at most one NHS number",
    ),
    ("nhs mod11", patient, _set("identifier/0/value", "9990000019"), "Modulus 11"),
    (
        "nhs arabic digits",
        patient,
        _set("identifier/0/value", "\u0669" * 3 + "0000018"),
        "10 digits",
    ),
    ("nhs spaces", patient, _set("identifier/0/value", "999 000 0018"), "10 digits"),
    (
        "two verifications",
        patient,
        _set("identifier/0/extension", [_verification("01"), _verification("02")]),
        "at most one",
    ),
    (
        "verification bad code",
        patient,
        _set("identifier/0/extension/0", _verification("42")),
        "verification",
    ),
    (
        "verification stu3 system",
        patient,
        _set(
            "identifier/0/extension/0",
            _verification("01", next(iter(ukcore.STU3_NHS_VERIFICATION_SYSTEMS))),
        ),
        "verification",
    ),
    (
        "verification stu3 url",
        patient,
        _set("identifier/0/extension/0/url", next(iter(ukcore.STU3_NHS_VERIFICATION_EXTENSIONS))),
        "STU3",
    ),
    (
        "ethnic stu3 system",
        patient,
        _set(
            "extension/0/valueCodeableConcept/coding/0/system",
            next(iter(ukcore.STU3_ETHNIC_CATEGORY_SYSTEMS)),
        ),
        "ethnic",
    ),
    (
        "ethnic bad code",
        patient,
        _set("extension/0/valueCodeableConcept/coding/0/code", "Q"),
        "ethnic",
    ),
    ("ethnic stu3 url", patient, _set("extension/0/url", ukcore.STU3_EXT_ETHNIC_CATEGORY), "STU3"),
    (
        "security stu3",
        patient,
        _set("meta/security/0/system", ukcore.STU3_CONFIDENTIALITY_SYSTEM),
        "meta.security",
    ),
    ("security bad code", patient, _set("meta/security/0/code", "X"), "meta.security"),
    ("structure", patient, _set("birthDate", "1936-13-45"), "birthDate"),
    ("unknown element", patient, _set("colour", "blue"), "colour"),
    ("id too long", careplan, _set("id", "x" * 65), "id:"),
    ("id bad chars", goal, _set("id", "a_b"), "id:"),
    ("careplan status", careplan, _set("status", "bogus"), "status"),
    ("careplan no status", careplan, _set("status", _DELETE), "status"),
    ("careplan intent", careplan, _set("intent", "wish"), "intent"),
    ("activity status", careplan, _set("activity/0/detail/status", "done"), "activity[0]"),
    ("careteam status", careteam, _set("status", "bogus"), "status"),
    ("goal status", goal, _set("lifecycleStatus", "bogus"), "lifecycleStatus"),
    ("goal structure", goal, _set("description", "text"), "description"),
]


@pytest.mark.parametrize(("case", "make", "edit", "expected"), BAD, ids=[b[0] for b in BAD])
def test_invalid_resources_are_refused(case: str, make: Any, edit: Any, expected: str) -> None:
    resource = make()
    edit(resource)
    with pytest.raises(UKCoreValidationError, match=r"^\w+: ") as info:
        validate_resource(resource)
    assert expected in str(info.value)
    assert NHS not in str(info.value)
    assert "Smith" not in str(info.value)


def test_other_security_systems_are_allowed() -> None:
    p = patient()
    p["meta"]["security"].append(
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
    )
    validate_resource(p)


def test_ethnic_category_binding_is_extensible_text_alone_is_valid() -> None:
    """UK Core binds the ethnic category *extensibly*: an unknown source code may be kept as
    text. An empty concept is still refused."""
    p = patient()
    p["extension"][0]["valueCodeableConcept"] = {"text": "Q1 (local code)"}
    validate_resource(p)
    p["extension"][0]["valueCodeableConcept"] = {"text": "  "}
    with pytest.raises(UKCoreValidationError, match="neither a code nor text"):
        validate_resource(p)


def test_patient_without_nhs_number_is_valid() -> None:
    p = patient()
    del p["identifier"][0]
    validate_resource(p)


@pytest.mark.parametrize("thing", [[], "Patient", {"id": "x"}, {"resourceType": "Nonsense"}])
def test_not_a_resource(thing: Any) -> None:
    with pytest.raises(UKCoreValidationError):
        validate_resource(thing)


def test_bundle_validates_each_entry_and_names_it() -> None:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": patient()}, {"resource": careplan()}],
    }
    validate_bundle(bundle)
    broken = copy.deepcopy(bundle)
    broken["entry"][1]["resource"]["status"] = "bogus"
    with pytest.raises(UKCoreValidationError, match=r"entry\[1\]"):
        validate_bundle(broken)
    with pytest.raises(UKCoreValidationError):
        validate_bundle({"resourceType": "Patient"})
    with pytest.raises(UKCoreValidationError):
        validate_bundle({"resourceType": "Bundle", "type": "searchset", "entry": {}})


# --- the UK Core examples parse with the R4B models ---------------------------------------


def _shared_dir() -> Path | None:
    candidates = [Path(__file__).resolve().parents[3] / "shared"]
    if env := os.environ.get("CAREGW_SHARED_DIR"):
        candidates.insert(0, Path(env))
    return next((c for c in candidates if (c / "ukcore" / "examples").is_dir()), None)


SHARED = _shared_dir()
EXAMPLES = sorted((SHARED / "ukcore" / "examples").glob("*.xml")) if SHARED else []


@pytest.mark.skipif(SHARED is None, reason="shared/ukcore not present")
def test_all_six_examples_are_present() -> None:
    assert len(EXAMPLES) == 6


@pytest.mark.skipif(SHARED is None, reason="shared/ukcore not present")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_ukcore_example_round_trips_through_r4b(path: Path) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    resource_type = path.stem.split("-")[1]
    model = get_fhir_model_class(resource_type)
    parsed = model.model_validate_xml(path.read_bytes())
    as_json = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert as_json["resourceType"] == resource_type
    again = model.model_validate(as_json)
    assert again.model_dump(mode="json", by_alias=True, exclude_none=True) == as_json


# --- anything at all: validation answers yes or UKCoreValidationError, never another error ------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


def mutated(make: Any) -> st.SearchStrategy[dict[str, Any]]:
    """A valid resource with one nested value (found by a random walk) replaced by any JSON."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        resource: dict[str, Any] = make()
        node: Any = resource
        for _ in range(draw(st.integers(min_value=1, max_value=5))):
            keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, dict | list) and child and draw(st.booleans()):
                node = child
                continue
            node[key] = draw(json_values)
            break
        return resource

    return build()


@settings(max_examples=300, deadline=None)
@given(st.one_of(*(mutated(m) for m in (patient, careplan, careteam, goal, provenance))))
def test_validation_only_ever_raises_its_own_error(resource: dict[str, Any]) -> None:
    try:
        validate_resource(resource)
    except UKCoreValidationError as exc:
        assert NHS not in str(exc)

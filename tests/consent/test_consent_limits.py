"""Directive validation at the edges: calendar ends, non-ASCII digits, disagreeing patients,
and the limits that keep a directive cheap (consent.instants, consent.limits)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consent import parse_consent, validate_consent
from consent.instants import FIRST, LAST, parse_instant
from consent.limits import MAX_LIST_ITEMS, MAX_PROVISION_DEPTH, limit_problems
from tests.consent.factories import NHS, NOW, objection_consent, refuse_consent

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(
    ("value", "end", "expected"),
    [
        ("0001-01-01", False, FIRST),
        ("9999-12-31", True, LAST),
        ("9999", True, LAST),
        ("9999-12", True, LAST),
        ("2024-02", True, datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)),
        ("9999-12-31T23:59:59+14:00", True, datetime(9999, 12, 31, 9, 59, 59, tzinfo=UTC)),
        ("9999-12-31T23:59:59-14:00", True, LAST),  # after the last datetime: clamped
        ("0001-01-01T00:00:00+14:00", False, FIRST),  # before the first: clamped
        ("0001-01-01T00:00:00-14:00", False, datetime(1, 1, 1, 14, tzinfo=UTC)),
        ("2026-11-23T10:00:00.123456789Z", False, datetime(2026, 11, 23, 10, 0, 0, 123456, UTC)),
    ],
)
def test_instants_at_the_ends_of_the_calendar(value: str, end: bool, expected: datetime) -> None:
    assert parse_instant(value, end=end) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0000-01-01",
        "2026-13",
        "2026-02-30",
        "2026-11-23T10:00:00",
        "2026-11-23 10:00:00Z",
        "2026-11-23T10:00:00+15:00",
        "2026-11-23T10:00:00+14:30",
        "2026-11-23T25:00:00Z",
        "٢٠٢٦",
        "20261123",
        7,
    ],
)
def test_what_is_not_a_fhir_datetime_is_a_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_instant(value, end=False)


def test_a_directive_for_all_of_time_is_valid_and_in_force() -> None:
    consent = objection_consent(
        period={"start": "0001-01-01T00:00:00+14:00", "end": "9999-12-31T23:59:59-14:00"}
    )
    assert validate_consent(consent) == []
    (directive,) = parse_consent(consent)
    assert directive.start == FIRST and directive.end == LAST
    assert directive.in_force("TREAT", NOW)


def test_nhs_number_in_other_scripts_digits_is_refused() -> None:
    consent = objection_consent()
    consent["patient"]["identifier"]["value"] = NHS.translate(ARABIC_INDIC)
    assert "Consent.patient is not a valid NHS number" in validate_consent(consent)
    consent["patient"] = {"reference": f"Patient/{NHS.translate(ARABIC_INDIC)}"}
    assert "Consent.patient is not a valid NHS number" in validate_consent(consent)


def test_patient_reference_and_identifier_must_agree() -> None:
    consent = objection_consent()
    consent["patient"]["reference"] = "Patient/9991000003"
    assert any("name different people" in p for p in validate_consent(consent))
    consent["patient"]["reference"] = f"Patient/{NHS}"
    assert validate_consent(consent) == []


def test_150000_identifiers_are_refused_without_walking_them() -> None:
    consent = objection_consent()
    consent["identifier"] = [{"system": "urn:x", "value": str(i)} for i in range(150_000)]
    # The first and only problem: the list's length is read, its items never are.
    assert validate_consent(consent) == [f"Consent.identifier has more than {MAX_LIST_ITEMS} items"]


def _nested(depth: int) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "deny"}
    for _ in range(depth - 1):
        provision = {"type": "deny", "provision": [provision]}
    return provision


def test_500_deep_provisions_are_refused_not_a_recursion_error() -> None:
    consent = {**objection_consent(), "provision": _nested(500)}
    problems = validate_consent(consent)
    assert len(problems) == 1 and f"at most {MAX_PROVISION_DEPTH} levels" in problems[0]


def test_provisions_up_to_the_limit_are_allowed() -> None:
    consent = refuse_consent("RAT")
    consent["provision"]["provision"][0]["provision"] = [_nested(MAX_PROVISION_DEPTH - 2)]
    assert limit_problems(consent) == []
    consent["provision"]["provision"][0]["provision"] = [_nested(MAX_PROVISION_DEPTH - 1)]
    assert limit_problems(consent) != []


def test_too_many_values_or_too_deep_json_is_refused() -> None:
    wide = objection_consent()
    wide["extension"] = [{"url": f"urn:x:{i}", "valueString": "x" * 3} for i in range(99)]
    wide["note"] = [{"text": str(i)} for i in range(99)]
    wide["contained"] = [{"a": [{"b": [1] * 99}] * 99}]
    assert "more than 5000 values" in limit_problems(wide)[0]
    deep: dict[str, Any] = {"x": 1}
    for _ in range(40):
        deep = {"x": deep}
    assert "nested more than 32 levels" in limit_problems({**objection_consent(), "meta": deep})[0]

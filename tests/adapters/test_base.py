"""SourceResult's JSON form (what the cache stores), with and without ``DataIssue.about``."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from adapters.base import DataIssue, Outcome, SourceResult

FETCHED = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
PLAN_STATUS = "a support plan status is not recognised; recorded as unknown"


def result(*issues: DataIssue) -> SourceResult:
    return SourceResult(
        source="lascare",
        organisation="LA883",
        domain="social-care",
        outcome=Outcome.FOUND,
        resources=({"resourceType": "Patient", "id": "lascare.P1"},),
        issues=issues,
        fetched_at=FETCHED,
    )


@pytest.mark.parametrize(
    "issues",
    [
        (),
        (DataIssue("unknown-code", PLAN_STATUS, "CarePlan"),),
        (DataIssue("duplicate-person", "2 person records share one NHS number"),),
        (
            DataIssue("bad-date", "a date in the record is not a valid date", "Patient"),
            DataIssue("bad-date", "a date in the record is not a valid date", "CarePlan"),
            DataIssue("unknown-code", "something unplaced"),
        ),
        (DataIssue("invalid-resource", "a CarePlan was left out", "CarePlan", True),),
    ],
)
def test_round_trip_through_json_bytes(issues: tuple[DataIssue, ...]) -> None:
    original = result(*issues)
    loaded = SourceResult.from_json(orjson.loads(orjson.dumps(original.to_json())))
    assert loaded == original
    assert [i.about for i in loaded.issues] == [i.about for i in issues]


def test_issues_are_written_with_their_about() -> None:
    written = result(
        DataIssue("unknown-code", PLAN_STATUS, "CarePlan"), DataIssue("x", "unplaced")
    ).to_json()["issues"]
    assert written == [
        {"code": "unknown-code", "text": PLAN_STATUS, "about": "CarePlan", "labelled": False},
        {"code": "x", "text": "unplaced", "about": None, "labelled": False},
    ]


def test_a_result_cached_before_about_existed_loads_with_about_none() -> None:
    cached = {
        "source": "lascare",
        "organisation": "LA883",
        "domain": "social-care",
        "outcome": "found",
        "resources": [{"resourceType": "Patient", "id": "lascare.P1"}],
        "issues": [{"code": "unknown-code", "text": PLAN_STATUS}],
        "detail": None,
        "fetched_at": FETCHED.isoformat(),
    }
    loaded = SourceResult.from_json(cached)
    assert loaded.issues == (DataIssue("unknown-code", PLAN_STATUS, None),)
    assert loaded == result(DataIssue("unknown-code", PLAN_STATUS))


def test_an_about_that_is_not_text_loads_as_not_known() -> None:
    loaded = DataIssue.from_json({"code": "unknown-code", "text": PLAN_STATUS, "about": 7})
    assert loaded == DataIssue("unknown-code", PLAN_STATUS, None)


def test_data_issues_stay_frozen_and_hashable() -> None:
    about_plan = DataIssue("unknown-code", PLAN_STATUS, "CarePlan")
    assert len({about_plan, DataIssue("unknown-code", PLAN_STATUS, "CarePlan")}) == 1
    assert about_plan != DataIssue("unknown-code", PLAN_STATUS, "Goal")
    assert about_plan != DataIssue("unknown-code", PLAN_STATUS)
    with pytest.raises(AttributeError):
        about_plan.about = "Patient"  # type: ignore[misc]

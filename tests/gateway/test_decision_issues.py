"""Data-quality findings after the decision: none about something the caller may not see."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import DataIssue, Outcome, SourceResult
from consent.model import Decision, Effect, Reason, Withheld
from gateway.policy.decision import to_verdict, visible_issues

PLAN_STATUS = DataIssue(
    "unknown-code", "a support plan status is not recognised; recorded as unknown", "CarePlan"
)
SERVICE_STATUS = DataIssue(
    "unknown-code", "a service status is not recognised; recorded as unknown", "CarePlan"
)
OUTCOME_STATUS = DataIssue(
    "unknown-code", "an outcome status is not recognised; kept as text", "Goal"
)
GENDER = DataIssue(
    "unknown-code", "a person's gender code is not a Data Dictionary code", "Patient"
)
TEAM_DATE = DataIssue(
    "bad-date", "a date in the record is not a valid date and was left out", "CareTeam"
)
UNPLACED = DataIssue("unknown-code", "a finding from before findings had a type")
ALL = (PLAN_STATUS, SERVICE_STATUS, OUTCOME_STATUS, GENDER, TEAM_DATE, UNPLACED)


def res(kind: str, rid: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": kind, "id": rid, **more}


def source(name: str, *issues: DataIssue) -> SourceResult:
    """A social care source: a Patient, two plans (one with a Goal), a team, a Provenance."""
    resources = (
        res("Patient", f"{name}.P1"),
        res("CarePlan", f"{name}.P1.SP1", goal=[{"reference": f"Goal/{name}.P1.SP1.g1"}]),
        res("CarePlan", f"{name}.P1.SP2"),
        res("Goal", f"{name}.P1.SP1.g1"),
        res("CareTeam", f"{name}.P1.careteam"),
        res(
            "Provenance",
            f"{name}.P1.provenance",
            target=[
                {"reference": f"Patient/{name}.P1"},
                {"reference": f"CarePlan/{name}.P1.SP1"},
                {"reference": f"CarePlan/{name}.P1.SP2"},
            ],
        ),
    )
    return SourceResult(name, "LA883", "social-care", Outcome.FOUND, resources, issues)


def without(result: SourceResult, *ids: str) -> tuple[dict[str, Any], ...]:
    return tuple(r for r in result.resources if r["id"] not in ids)


def abouts(issues: tuple[DataIssue, ...]) -> list[str | None]:
    return [i.about for i in issues]


def test_nothing_withheld_keeps_every_finding_even_unplaced_ones() -> None:
    lascare = source("lascare", *ALL)
    assert visible_issues(lascare, lascare.resources) == ALL


def test_a_withheld_plan_takes_plan_and_goal_findings_and_unplaced_ones() -> None:
    lascare = source("lascare", *ALL)
    shown = without(lascare, "lascare.P1.SP1", "lascare.P1.SP1.g1")
    assert visible_issues(lascare, shown) == (GENDER, TEAM_DATE)


def test_one_plan_of_two_withheld_still_drops_every_plan_finding() -> None:
    lascare = source("lascare", PLAN_STATUS, GENDER)
    assert visible_issues(lascare, without(lascare, "lascare.P1.SP2")) == (GENDER,)


def test_a_withheld_plan_drops_goal_findings_even_when_no_goal_was_withheld() -> None:
    lascare = source("lascare", OUTCOME_STATUS, GENDER)  # e.g. a goal that failed validation
    assert visible_issues(lascare, without(lascare, "lascare.P1.SP2")) == (GENDER,)


def test_a_withheld_goal_alone_keeps_plan_findings() -> None:
    lascare = source("lascare", *ALL)
    shown = without(lascare, "lascare.P1.SP1.g1")
    assert abouts(visible_issues(lascare, shown)) == [
        "CarePlan",
        "CarePlan",
        "Patient",
        "CareTeam",
    ]


def test_demographics_only_keeps_patient_and_care_team_findings() -> None:
    lascare = source("lascare", *ALL)
    shown = tuple(r for r in lascare.resources if r["resourceType"] in ("Patient", "CareTeam"))
    assert visible_issues(lascare, shown) == (GENDER, TEAM_DATE)


def test_a_withheld_patient_takes_patient_findings() -> None:
    lascare = source("lascare", *ALL)
    assert visible_issues(lascare, without(lascare, "lascare.P1")) == (
        PLAN_STATUS,
        SERVICE_STATUS,
        OUTCOME_STATUS,
        TEAM_DATE,
    )


def decision(*withheld: Withheld, sources: tuple[str, ...] = ()) -> Decision:
    effect = Effect.PERMIT_FILTERED if withheld or sources else Effect.PERMIT
    reasons = tuple(dict.fromkeys(w.reason for w in withheld))
    return Decision(effect, reasons, "v1", "test", withheld=withheld, withheld_sources=sources)


def test_verdict_filters_findings_per_source() -> None:
    lascare = source("lascare", *ALL)
    community = source("community", *ALL)
    plan = Withheld("CarePlan/lascare.P1.SP1", Reason.LABEL_RESTRICTED, "lascare")
    goal = Withheld("Goal/lascare.P1.SP1.g1", Reason.LABEL_RESTRICTED, "lascare")
    verdict = to_verdict(decision(plan, goal), [lascare, community])
    shown = {r.source: r for r in verdict.visible}
    assert shown["lascare"].issues == (GENDER, TEAM_DATE)
    assert "lascare.P1.SP1" not in {r["id"] for r in shown["lascare"].resources}
    assert shown["community"].issues == ALL  # nothing withheld from it


def test_verdict_without_withholding_keeps_every_finding() -> None:
    lascare = source("lascare", *ALL)
    (shown,) = to_verdict(decision(), [lascare]).visible
    assert shown.issues == ALL


@pytest.mark.parametrize("how", ["source withheld", "every resource withheld"])
def test_a_source_withheld_entirely_adds_no_finding(how: str) -> None:
    lascare = source("lascare", *ALL)
    community = source("community", GENDER)
    if how == "source withheld":
        made = decision(sources=("lascare",))
    else:
        made = decision(
            *(
                Withheld(f"{r['resourceType']}/{r['id']}", Reason.LABEL_RESTRICTED, "lascare")
                for r in lascare.resources
            )
        )
    verdict = to_verdict(made, [lascare, community])
    assert [r.source for r in verdict.visible] == ["community"]
    assert [i for r in verdict.visible for i in r.issues] == [GENDER]


LEFT_OUT_RESTRICTED = DataIssue(
    "invalid-resource", "a CarePlan failed UK Core validation and was left out", "CarePlan", True
)


def test_a_finding_about_a_labelled_resource_left_out_never_goes_out() -> None:
    """No decision saw that resource, so even a caller who is shown everything else may not
    learn it existed; unlabelled findings beside it still go out."""
    lascare = source("lascare", GENDER, LEFT_OUT_RESTRICTED, PLAN_STATUS)
    assert visible_issues(lascare, lascare.resources) == (GENDER, PLAN_STATUS)
    shown = without(lascare, "lascare.P1.SP2")
    assert visible_issues(lascare, shown) == (GENDER,)

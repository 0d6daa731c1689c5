"""``GET /fhir/$joint-care-summary``: counts only, 1-4 never shown, for the roles that may.

Plans are written through the gateway (the council's social worker for six people, the GP
practice for one person twice), then the summary is read on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from fhir.resources.R4B.measurereport import MeasureReport

from bench.joint_writes import council_people as bench_council_people
from gateway.joint.summary import DATA_ABSENT_REASON, suppressed
from simulators.population import COUNCIL_ODS
from simulators.runner import RunningSources
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome
from tests.gateway.joint_gateways import joint_gateway  # noqa: F401  (fixture)
from tests.gateway.joint_support import (
    GP,
    GP_ORG,
    IG,
    NHS,
    SOCIAL_WORKER,
    JointClient,
    audit_of,
    plan_body,
)

SUMMARY_READER = {"scopes": ("user/MeasureReport.r",)}
COMMISSIONER: dict[str, Any] = {"role": "BCF-COMM", "org": "X26", "sub": "comm-0001",
                                "purpose": "HOPERAT", **SUMMARY_READER}  # fmt: skip


def council_people(running: RunningSources, n: int) -> list[str]:
    """The first ``n`` council people with valid NHS numbers, other than ``NHS``'s person."""
    out = [number for number in bench_council_people(running, n + 1) if number != NHS][:n]
    if len(out) < n:
        raise AssertionError("not enough council people")
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def joint(joint_gateway: Gateway, running_sources: RunningSources) -> JointClient:  # noqa: F811
    client = JointClient(joint_gateway)
    for person in council_people(running_sources, 6):
        assert_fhir(await client.post(plan_body(person), SOCIAL_WORKER), 201)
    assert_fhir(await client.post(plan_body(), GP), 201)
    assert_fhir(await client.post(plan_body(status="draft"), GP), 201)
    return client


def _group(report: dict[str, Any], code: str) -> dict[str, Any]:
    return next(g for g in report["group"] if g["code"]["coding"][0]["code"] == code)


def _shown(population: dict[str, Any]) -> int | str:
    if "count" in population:
        return int(population["count"])
    (ext,) = population["_count"]["extension"]
    assert ext == {"url": DATA_ABSENT_REASON, "valueCode": "masked"}
    return "suppressed"


def _strata(group: dict[str, Any]) -> dict[str, int | str]:
    (stratifier,) = group["stratifier"]
    return {s["value"]["text"]: _shown(s["population"][0]) for s in stratifier["stratum"]}


@pytest.mark.parametrize("who", [IG, COMMISSIONER], ids=["privacy-officer", "commissioner"])
async def test_summary_counts_with_small_numbers_suppressed(
    joint: JointClient, who: dict[str, Any]
) -> None:
    resp = await joint.get("/$joint-care-summary", {**who, **SUMMARY_READER})
    report = assert_fhir(resp)
    MeasureReport.model_validate(report)  # valid R4
    assert (report["resourceType"], report["type"], report["status"]) == (
        "MeasureReport", "summary", "complete"
    )  # fmt: skip
    assert _shown(_group(report, "people-with-active-plan")["population"][0]) == 7
    assert _shown(_group(report, "people-active-with-lead")["population"][0]) == 7
    assert _strata(_group(report, "plans-by-author")) == {
        COUNCIL_ODS: 6, GP_ORG: "suppressed"
    }  # fmt: skip
    assert _strata(_group(report, "plans-by-status")) == {"active": 7, "draft": "suppressed"}
    assert NHS not in resp.text  # counts only: no person
    event = await audit_of(joint.gw, resp)
    assert event["outcome"] == "0" and event["subtype"][0]["code"] == "operation"


@pytest.mark.parametrize(
    ("who", "reason"),
    [({**GP, **SUMMARY_READER}, "role-not-permitted"),
     ({**IG, **SUMMARY_READER, "role": "R8008", "purpose": "TREAT"}, "role-not-permitted")],
    ids=["clinician", "admin"],
)  # fmt: skip
async def test_summary_refused_to_other_roles(
    joint: JointClient, who: dict[str, Any], reason: str
) -> None:
    resp = await joint.get("/$joint-care-summary", who)
    body = assert_outcome(resp, 403, "forbidden")
    assert [c["code"] for c in body["issue"][0]["details"]["coding"]] == [reason]
    event = await audit_of(joint.gw, resp)
    assert event["outcome"] == "4" and reason in event["outcomeDesc"]


@pytest.mark.parametrize(("count", "hidden"), [(0, False), (1, True), (4, True), (5, False)])
def test_suppression_bounds(count: int, hidden: bool) -> None:
    assert suppressed(count) is hidden

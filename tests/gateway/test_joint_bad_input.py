"""Bad joint care plan writes over HTTP: each answer, its ``expression``, and nothing written.

Every refused write must leave the store as it was (no plan, no version) and have an
AuditEvent with outcome ``4`` — never one claiming success. One gateway (SQLite) serves the
module; ``test_joint_acceptance`` runs the same store on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from gateway.joint.body import MAX_PLAN_BYTES
from gateway.joint.store import JointPlanRow, JointPlanVersionRow
from simulators.runner import RunningSources, source_configs
from tests.gateway.harness import assert_fhir, assert_outcome, running_gateway
from tests.gateway.joint_support import (
    GP,
    NHS,
    SOCIAL_WORKER,
    JointClient,
    audit_of,
    changed,
    plan_body,
    subtype_of,
)
from tests.gateway.test_consent_api import _unknown_nhs


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def joint(
    running_sources: RunningSources, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[JointClient]:
    async with running_gateway(source_configs(running_sources), *signing_key) as gw:
        yield JointClient(gw)


async def counts(joint: JointClient) -> tuple[int, int]:
    async with joint.gw.joint._sessions() as session:
        plans = await session.scalar(select(func.count()).select_from(JointPlanRow))
        versions = await session.scalar(select(func.count()).select_from(JointPlanVersionRow))
    return int(plans or 0), int(versions or 0)


async def refused(
    joint: JointClient, resp: httpx.Response, status: int, code: str, before: tuple[int, int]
) -> dict[str, Any]:
    """The OperationOutcome of a refused write, once nothing was written and it is audited."""
    body = assert_outcome(resp, status, code)
    assert await counts(joint) == before
    event = await audit_of(joint.gw, resp)
    assert event["outcome"] == "4" and subtype_of(event) in ("create", "update")
    assert f"HTTP {status}" in event["outcomeDesc"]
    return body


def expressions(body: dict[str, Any]) -> list[str]:
    return list(body["issue"][0].get("expression", ()))


def without_lead(body: dict[str, Any]) -> dict[str, Any]:
    team = body["contained"][0]
    for p in team["participant"]:
        p["role"] = [{"text": "member"}]
    return body


CREATE_CASES: list[tuple[str, Any, int, str, list[str]]] = [
    ("not-json", b"{not json", 400, "invalid", []),
    ("not-an-object", b"[1, 2]", 400, "invalid", []),
    ("not-a-careplan", {"resourceType": "Consent", "status": "active"}, 400, "invalid",
     ["CarePlan"]),
    ("unknown-element", {**plan_body(), "colour": "blue"}, 400, "invalid", ["CarePlan.colour"]),
    ("status-not-in-value-set", {**plan_body(), "status": "bogus"}, 400, "invalid",
     ["CarePlan.status"]),
    ("bad-date", {**plan_body(), "period": {"start": "yesterday"}}, 400, "invalid",
     ["CarePlan.period.start"]),
    ("intent-not-plan", {**plan_body(), "intent": "order"}, 422, "business-rule",
     ["CarePlan.intent"]),
    ("no-lead-on-active", without_lead(plan_body()), 422, "business-rule", ["CarePlan.careTeam"]),
    ("two-leads", plan_body(leads=2), 422, "business-rule",
     ["CarePlan.contained[0].participant[0].role",
      "CarePlan.contained[0].participant[1].role"]),
    ("invalid-nhs-number", plan_body("9991000004"), 422, "business-rule", ["CarePlan.subject"]),
    ("starts-completed", plan_body(status="completed"), 422, "business-rule",
     ["CarePlan.status"]),
    ("no-title", {**plan_body(), "title": " "}, 422, "business-rule", ["CarePlan.title"]),
    ("activity-without-description",
     {**plan_body(), "activity": [{"detail": {"status": "scheduled"}}]}, 422, "business-rule",
     ["CarePlan.activity[0].detail.description"]),
    ("performer-not-ods",
     {**plan_body(), "activity": [{"detail": {"status": "scheduled", "description": "x",
                                              "performer": [{"display": "someone"}]}}]},
     422, "business-rule", ["CarePlan.activity[0].detail.performer[0]"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "code", "where"),
    [c[1:] for c in CREATE_CASES],
    ids=[c[0] for c in CREATE_CASES],
)
async def test_a_bad_create_is_refused_naming_the_element_and_writes_nothing(
    joint: JointClient, body: Any, status: int, code: str, where: list[str]
) -> None:
    before = await counts(joint)
    answer = await refused(joint, await joint.post(body), status, code, before)
    assert expressions(answer) == where


async def test_an_unknown_person_is_refused(
    joint: JointClient, running_sources: RunningSources
) -> None:
    before = await counts(joint)
    resp = await joint.post(plan_body(_unknown_nhs(running_sources)))
    body = await refused(joint, resp, 422, "business-rule", before)
    assert expressions(body) == ["CarePlan.subject"] and "unknown person" in resp.text


async def test_a_draft_needs_no_lead_but_becoming_active_does(joint: JointClient) -> None:
    draft = assert_fhir(await joint.post(without_lead(plan_body(status="draft"))), 201)
    before = await counts(joint)
    resp = await joint.put(draft["id"], changed(draft, status="active"), if_match='W/"1"')
    assert expressions(await refused(joint, resp, 422, "business-rule", before)) == [
        "CarePlan.careTeam"
    ]


async def test_media_type_and_size(joint: JointClient) -> None:
    before = await counts(joint)
    resp = await joint.post(plan_body(), GP, **{"Content-Type": "text/plain"})
    await refused(joint, resp, 415, "not-supported", before)
    big = plan_body()
    big["note"] = [{"text": "x" * 1000} for _ in range(MAX_PLAN_BYTES // 1000 + 1)]
    await refused(joint, await joint.post(big), 413, "too-long", before)
    deep: Any = {"url": "urn:x", "valueString": "x"}
    for _ in range(40):
        deep = {"url": "urn:x", "extension": [deep]}
    resp = await joint.post({**plan_body(), "extension": [deep]})
    await refused(joint, resp, 422, "too-costly", before)


async def test_changes_need_if_match_and_keep_subject_and_transitions(
    joint: JointClient,
) -> None:
    plan = assert_fhir(await joint.post(plan_body()), 201)
    pid = plan["id"]
    before = await counts(joint)
    await refused(joint, await joint.put(pid, plan), 428, "required", before)
    await refused(joint, await joint.put(pid, plan, if_match="1, 2"), 400, "invalid", before)
    other = changed(plan, subject={"reference": "Patient/9991000070"})
    resp = await joint.put(pid, other, if_match='W/"1"')
    assert expressions(await refused(joint, resp, 422, "business-rule", before)) == [
        "CarePlan.subject"
    ]
    resp = await joint.put(pid, changed(plan, status="draft"), if_match='W/"1"')
    body = await refused(joint, resp, 422, "business-rule", before)
    assert expressions(body) == ["CarePlan.status"]
    assert "active plan cannot become draft" in body["issue"][0]["diagnostics"]
    resp = await joint.put(pid, changed(plan, id="joint.other.plan"), if_match='W/"1"')
    await refused(joint, resp, 400, "invalid", before)
    missing = "joint.00000000000000000000000000000000.plan"
    no_id = {k: v for k, v in plan.items() if k != "id"}
    resp = await joint.put(missing, no_id, if_match='W/"1"')
    await refused(joint, resp, 404, "not-found", before)
    resp = await joint.put(pid, plan, if_match='W/"7"')
    answer = await refused(joint, resp, 412, "conflict", before)
    assert resp.headers["ETag"] == 'W/"1"' and 'W/"1"' in answer["issue"][0]["diagnostics"]

    # entered-in-error is final; a completed plan takes notes but does not come back.
    done = assert_fhir(await joint.put(pid, changed(plan, status="completed"), if_match='W/"1"'))
    noted = changed(done, note=[*done["note"], {"text": "Closed at review."}])
    noted = assert_fhir(await joint.put(pid, noted, SOCIAL_WORKER, if_match='W/"2"'))
    before = await counts(joint)
    resp = await joint.put(pid, changed(noted, status="active"), if_match='W/"3"')
    await refused(joint, resp, 422, "business-rule", before)
    gone = assert_fhir(
        await joint.put(pid, changed(noted, status="entered-in-error"), if_match='W/"3"')
    )
    before = await counts(joint)
    resp = await joint.put(pid, gone, if_match='W/"4"')
    assert (
        "entered-in-error plan cannot become entered-in-error"
        in (await refused(joint, resp, 422, "business-rule", before))["issue"][0]["diagnostics"]
    )


async def test_client_values_for_server_fields_are_replaced(joint: JointClient) -> None:
    body = {
        **plan_body(),
        "id": "mine",
        "meta": {"versionId": "9", "source": "urn:x", "tag": [{"system": "urn:x", "code": "y"}],
                 "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                               "code": "R"}]},
        "author": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                  "value": "X99999"}},
        "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}},
    }  # fmt: skip
    stored = assert_fhir(await joint.post(body, SOCIAL_WORKER), 201)
    assert stored["id"] != "mine" and stored["meta"]["versionId"] == "1"
    assert stored["meta"]["source"] == "urn:caregateway:source:joint"
    assert stored["meta"]["tag"] == [{"system": "urn:caregateway:care-domain",
                                      "code": "social-care"}]  # fmt: skip
    assert [s["code"] for s in stored["meta"]["security"]] == ["R"]  # labels are kept
    assert stored["author"]["identifier"]["value"] == SOCIAL_WORKER["org"]
    assert stored["subject"] == {"reference": f"Patient/{NHS}"}
    # The social worker sees restricted social care; the GP (health) does not see it.
    assert_fhir(await joint.get(f"/CarePlan/{stored['id']}", SOCIAL_WORKER))
    assert_outcome(await joint.get(f"/CarePlan/{stored['id']}", GP), 403, "forbidden")

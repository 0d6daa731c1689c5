"""Reading joint care plans' versions, and the Better Care Fund summary.

``GET /fhir/CarePlan/{id}/_history`` and ``/_history/{v}`` are decided as a read of the
person's record (:meth:`gateway.records.access.RecordAccess.read`): the caller must be allowed to
see the plan now — a refused organisation, a withheld custodian or a label the role may not
see is a ``403`` with its reason — and then sees every version as it was stored. (A plan's
current and earlier versions share one custodian and one person, so the decision on the
current one is the decision on all.) Plans from source systems have no kept versions here:
their systems keep their history.

``GET /fhir/$joint-care-summary`` answers :func:`gateway.joint.summary.measure_report`, for
roles the policy lets ``read_summaries`` under ``HOPERAT`` (:func:`consent.decide_summary_access`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from consent import Effect, decide_summary_access
from gateway.audit import note as audit_trail
from gateway.deps import StateDep, gate, joint_of, policy_of
from gateway.errors import Forbidden, NotFound
from gateway.fhir.params import check_params
from gateway.fhir.responses import FHIRResponse
from gateway.fhir.versioned import check_id, history_bundle
from gateway.joint.store import StoredPlan, plan_key
from gateway.joint.summary import measure_report
from gateway.narrative import narrate
from gateway.policy.decision import requester
from gateway.records.access import RequestContext
from gateway.state import GatewayState

router = APIRouter(prefix="/fhir")

PlanRead = Annotated[RequestContext, Depends(gate("CarePlan", "read"))]
SummaryRead = Annotated[RequestContext, Depends(gate("MeasureReport", "read"))]

_VERSION = re.compile(r"[1-9][0-9]{0,8}")


def _ref(plan: dict[str, Any]) -> str:
    return f"CarePlan/{plan['id']}/_history/{plan['meta']['versionId']}"


async def _readable(
    plan_id: str, ctx: RequestContext, state: GatewayState, request: Request
) -> StoredPlan:
    """The joint plan's current version, once the caller may see it (else 403/404)."""
    check_params(request, ())
    check_id(plan_id)
    if plan_key(plan_id) is None:
        raise NotFound(
            "The gateway keeps the versions of joint care plans only; a source system's "
            "plan has its history in that system."
        )
    current = await joint_of(state).get(plan_id)
    if current is None:
        raise NotFound("No CarePlan with this id.")
    audit_trail.note_patient(current.nhs_number)
    result = await state.access.read(ctx, current.nhs_number)
    if any(p["id"] == plan_id for p in result.record.care_plans):
        return current
    if f"CarePlan/{plan_id}" in result.verdict.withheld:
        raise Forbidden(
            "This CarePlan is withheld: " + ", ".join(result.verdict.reasons),
            reasons=result.verdict.reasons,
        )
    raise NotFound("No CarePlan with this id could be read now.")


@router.get("/CarePlan/{plan_id}/_history")
async def history_careplan(
    plan_id: str, ctx: PlanRead, state: StateDep, request: Request
) -> FHIRResponse:
    current = await _readable(plan_id, ctx, state, request)
    versions = await joint_of(state).history(plan_id) or [current.resource]
    audit_trail.note_resources(tuple(_ref(v) for v in versions))
    return FHIRResponse(history_bundle(state.base_url, "CarePlan", versions, narrate))


@router.get("/CarePlan/{plan_id}/_history/{version_id}")
async def vread_careplan(
    plan_id: str, version_id: str, ctx: PlanRead, state: StateDep, request: Request
) -> FHIRResponse:
    await _readable(plan_id, ctx, state, request)
    kept = (
        await joint_of(state).version(plan_id, int(version_id))
        if _VERSION.fullmatch(version_id)
        else None
    )
    if kept is None:
        raise NotFound(f"This CarePlan has no version {version_id[:12]!r}.")
    audit_trail.note_resources((_ref(kept),))
    return FHIRResponse(narrate(kept), headers={"ETag": f'W/"{kept["meta"]["versionId"]}"'})


@router.get("/$joint-care-summary")
async def joint_care_summary(ctx: SummaryRead, state: StateDep, request: Request) -> FHIRResponse:
    check_params(request, ())
    decision = decide_summary_access(requester(ctx), ctx.purpose, policy_of(state))
    audit_trail.note_decision(decision.effect.value, decision.reason_codes, False, None)
    if decision.effect is Effect.DENY:
        raise Forbidden(
            "This caller may not read the joint care summary: " + decision.matched_rule,
            reasons=decision.reason_codes,
        )
    counts = await joint_of(state).summary_counts()
    return FHIRResponse(measure_report(counts, state.base_url))

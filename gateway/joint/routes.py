"""Writing joint care plans (``specs/joint-care-plans.md``).

==========================================  ===============================================
``POST /fhir/CarePlan``                     a new joint plan → ``201``, ``Location``
                                            ``CarePlan/{id}/_history/1``, ``ETag: W/"1"``
``PUT /fhir/CarePlan/{id}``                 a change, ``If-Match: W/"n"`` required →
                                            ``200``, ``ETag: W/"n+1"``; ``412`` (with the
                                            current ``ETag``) when ``n`` is not current;
                                            ``428`` without ``If-Match``
``PUT``/``DELETE`` of a source's plan       ``405`` naming the system that owns it
``DELETE`` of a joint plan                  ``405``: plans are ended by status, never
                                            deleted (every version is kept)
==========================================  ===============================================

The order of checks on a write: token, scope (``user/CarePlan.c`` / ``.u``) and purpose (the
gate); a source's plan (``405``); a role that may write at all (``403``, before the body is
read: :func:`consent.plan_write_role_denial`); ``If-Match`` (``428``/``400``); the body
(:mod:`gateway.joint.body`: ``415``/``413``/``400``); FHIR and UK Core on the plan as it
would be stored (``400``); the joint plan rules and status transitions (``422``,
:mod:`gateway.joint.rules`); the person known to a source (``422``); the write decision
(``403``, :func:`consent.decide_plan_write`: relationship, never break-glass, directives on
another organisation's plan; ``503`` when the relationship could only have come from a
source that did not answer); the version (``412``); then one transaction. Every write and
every refusal is an AuditEvent naming the person and ``CarePlan/{id}/_history/{v}``.

After a write the person's joint entry is evicted from the record cache, here and in
Redis, and every other replica drops the person from its own layer (Redis pub/sub), so the
next read anywhere shows the new version; the source systems' entries stay cached.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from adapters.base import SourceResult
from consent import (
    Directive,
    PlanInteraction,
    decide_plan_write,
    parse_consents,
    plan_write_role_denial,
)
from consent.plan_write import plan_domain
from gateway.audit import note as audit_trail
from gateway.deps import StateDep, gate, joint_of, policy_of
from gateway.errors import (
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PreconditionRequired,
    UnprocessableEntity,
)
from gateway.fhir.params import check_params
from gateway.fhir.responses import FHIRResponse
from gateway.fhir.versioned import check_id, require_known
from gateway.joint import reads
from gateway.joint.body import careplan_body
from gateway.joint.rules import (
    JOINT_SOURCE,
    check_fhir,
    check_rules,
    contributors,
    stamped,
    subject_nhs_number,
)
from gateway.joint.store import PlanVersionConflict, new_plan_id, plan_key
from gateway.narrative import narrate
from gateway.policy.decision import contributions, enforce, requester
from gateway.records.access import RequestContext
from gateway.state import GatewayState

router = APIRouter(prefix="/fhir")
routers = (router, reads.router)
"""What the app includes: the writes here, the reads of versions and the summary."""

PlanCreate = Annotated[RequestContext, Depends(gate("CarePlan", "create"))]
PlanUpdate = Annotated[RequestContext, Depends(gate("CarePlan", "update"))]
PlanDelete = Annotated[RequestContext, Depends(gate("CarePlan", "delete"))]

_IF_MATCH = re.compile(r'(?:W/)?"([1-9][0-9]{0,8})"')


# --- state ---------------------------------------------------------------------------------


def reference(plan: dict[str, Any]) -> str:
    """``CarePlan/{id}/_history/{v}``: the plan and its version, for the audit event."""
    return f"CarePlan/{plan['id']}/_history/{plan['meta']['versionId']}"


# --- checks --------------------------------------------------------------------------------


def _refuse_source_plan(state: GatewayState, plan_id: str, verb: str) -> None:
    """``405`` naming the owner when ``plan_id`` is a plan from a source system."""
    check_id(plan_id)
    source = plan_id.split(".", 1)[0]
    if source == JOINT_SOURCE:
        return
    adapter = state.access.adapter(source)
    if adapter is None:
        raise NotFound("No CarePlan with this id.")
    raise MethodNotAllowed(
        f"This CarePlan comes from the source system '{adapter.name}' of organisation "
        f"{adapter.organisation}, which owns it: {verb} it there. The gateway never writes "
        "into a source system; only joint care plans are written here.",
        headers={"Allow": "GET, HEAD"},
    )


def _require_writer(state: GatewayState, ctx: RequestContext) -> None:
    """``403`` for a caller who may not write joint plans (before the body is read)."""
    denial = plan_write_role_denial(requester(ctx), ctx.purpose, policy_of(state))
    if denial is not None:
        audit_trail.note_decision(denial.effect.value, denial.reason_codes, False, None)
        raise Forbidden(
            "This caller may not write joint care plans: " + denial.matched_rule,
            reasons=denial.reason_codes,
        )


async def _creator(ctx: PlanCreate, state: StateDep) -> RequestContext:
    _require_writer(state, ctx)
    return ctx


async def _updater(plan_id: str, ctx: PlanUpdate, state: StateDep) -> RequestContext:
    _refuse_source_plan(state, plan_id, "change")
    _require_writer(state, ctx)
    return ctx


PlanCreator = Annotated[RequestContext, Depends(_creator)]
"""A caller who may write joint plans (:func:`_require_writer`, ``403`` audited)."""
PlanUpdater = Annotated[RequestContext, Depends(_updater)]
"""As :data:`PlanCreator`, for a plan the gateway keeps: a source's plan is ``405`` first."""


def _org(ctx: RequestContext) -> str:
    assert ctx.org is not None  # _require_writer refuses a caller with no organisation
    return ctx.org


def _expected_version(request: Request) -> int:
    values = request.headers.getlist("if-match")
    if not values:
        raise PreconditionRequired(
            'A change to a joint care plan needs If-Match: W/"n", the ETag of the version '
            "it changes (from a read or the last write of it)."
        )
    found = _IF_MATCH.fullmatch(values[0].strip()) if len(values) == 1 else None
    if found is None:
        raise BadRequest('If-Match must name one version of the CarePlan as its ETag, e.g. W/"3".')
    return int(found.group(1))


def _known(results: Sequence[SourceResult]) -> None:
    """``422`` unless a source system holds the person; ``503`` when that cannot be told."""
    systems = [r for r in results if r.source != JOINT_SOURCE]
    unknown = UnprocessableEntity(
        "CarePlan.subject: unknown person (no source system holds this NHS number).",
        expression=["CarePlan.subject"],
    )
    require_known(systems, "the person", unknown)


async def _authorise(
    ctx: RequestContext,
    state: GatewayState,
    interaction: PlanInteraction,
    nhs: str,
    results: Sequence[SourceResult],
    custodian: str | None = None,
) -> None:
    """The write decision: ``403`` with its reasons, or ``503`` for an outage
    (:func:`~gateway.policy.decision.enforce`)."""
    directives: tuple[Directive, ...] = ()
    if custodian not in (None, ctx.org) and state.consents is not None:
        directives = parse_consents(await state.consents.active_for(nhs))
    decision = decide_plan_write(
        requester(ctx),
        ctx.purpose,
        interaction,
        contributions(results),
        policy_of(state),
        now=datetime.now(UTC),
        plan_custodian=custodian,
        directives=directives,
    )
    enforce(decision, results, "Writing this joint care plan is denied")


async def _evict(state: GatewayState, nhs: str) -> None:
    if state.cache is not None:
        # The joint entry here and in Redis; other replicas drop the person (pub/sub).
        await state.cache.evict_source(JOINT_SOURCE, nhs)


def _answer(stored: dict[str, Any], status: int, headers: dict[str, str]) -> FHIRResponse:
    """The plan as every read shows it: with its generated narrative (:mod:`gateway.narrative`)."""
    version = stored["meta"]["versionId"]
    return FHIRResponse(
        narrate(stored), status_code=status, headers={"ETag": f'W/"{version}"', **headers}
    )


# --- routes --------------------------------------------------------------------------------


@router.post("/CarePlan")
async def create_careplan(ctx: PlanCreator, state: StateDep, request: Request) -> FHIRResponse:
    org = _org(ctx)
    check_params(request, ())
    body = await careplan_body(request)
    nhs = subject_nhs_number(body)
    if nhs is not None:
        audit_trail.note_patient(nhs)
    plan_id = new_plan_id()
    domain = plan_domain(requester(ctx), policy_of(state)) or "health"
    team = contributors([], org, ctx.sub, ctx.name)

    def stamp(version: int, at: datetime, person: str | None = nhs) -> dict[str, Any]:
        return stamped(body, plan_id=plan_id, version=version, at=at, nhs=person,
                       author_org=org, domain=domain, contributor=team)  # fmt: skip

    provisional = stamp(1, datetime.now(UTC), None)
    check_fhir(provisional)
    check_rules(provisional)
    assert nhs is not None  # check_rules refuses a plan without a valid NHS number
    results = await state.access.source_results(nhs)
    _known(results)
    await _authorise(ctx, state, PlanInteraction.CREATE, nhs, results)
    stored = await joint_of(state).create(stamp, plan_id=plan_id, nhs=nhs, org=org,
                                          domain=domain)  # fmt: skip
    audit_trail.note_resources((reference(stored),))
    await _evict(state, nhs)
    return _answer(stored, 201, {"Location": f"{state.base_url}/{reference(stored)}"})


@router.put("/CarePlan/{plan_id}")
async def update_careplan(
    plan_id: str, ctx: PlanUpdater, state: StateDep, request: Request
) -> FHIRResponse:
    org = _org(ctx)
    check_params(request, ())
    expected = _expected_version(request)
    body = await careplan_body(request)
    if "id" in body and body["id"] != plan_id:
        raise BadRequest("The CarePlan's id does not match the id in the URL.", expression=["id"])
    current = await joint_of(state).get(plan_id) if plan_key(plan_id) else None
    if current is None:
        raise NotFound("No CarePlan with this id.")
    nhs = current.nhs_number
    audit_trail.note_patient(nhs)
    audit_trail.note_resources((reference(current.resource),))
    team = contributors(current.resource.get("contributor") or [], org, ctx.sub, ctx.name)

    def stamp(version: int, at: datetime, person: str | None = nhs) -> dict[str, Any]:
        return stamped(body, plan_id=plan_id, version=version, at=at, nhs=person,
                       author_org=current.author_org, domain=current.domain,
                       contributor=team)  # fmt: skip

    provisional = stamp(current.version + 1, datetime.now(UTC), None)
    check_fhir(provisional)
    check_rules(provisional, current.resource)
    results = await state.access.source_results(nhs)
    await _authorise(ctx, state, PlanInteraction.UPDATE, nhs, results, current.author_org)
    if expected != current.version:
        raise PlanVersionConflict(expected, current.version)
    stored = await joint_of(state).update(
        plan_id, stamp, nhs=nhs, org=org, expected_version=expected
    )
    audit_trail.note_resources((reference(stored),))
    await _evict(state, nhs)
    return _answer(stored, 200, {})


@router.delete("/CarePlan/{plan_id}")
async def delete_careplan(plan_id: str, ctx: PlanDelete, state: StateDep) -> FHIRResponse:
    _refuse_source_plan(state, plan_id, "delete")
    raise MethodNotAllowed(
        "A joint care plan is never deleted (every version is kept): end it with a PUT "
        "setting status to completed or revoked, or entered-in-error if it was a mistake.",
        headers={"Allow": "GET, HEAD, PUT"},
    )

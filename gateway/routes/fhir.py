"""FHIR read API: Patient, CarePlan and $everything (``specs/gateway-interface.md``).

Handlers stay small: the gate dependency authenticates and checks scope and purpose,
:class:`~gateway.access.RecordAccess` fetches, decides and merges, and this module only
shapes the answer. Handlers never catch: :mod:`gateway.app` maps errors to OperationOutcome.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from adapters import ukcore
from adapters.base import Resource
from gateway import audit_trail
from gateway.access import AccessResult, RequestContext
from gateway.deps import AccessDep, StateDep, gate, parse_nhs_number, subject_nhs_number
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.fhir.capability import capability_statement
from gateway.fhir.responses import BundleBuilder, FHIRResponse, merge_warning_outcome, outcome
from gateway.routes.params import check_params, count_param, offset_param, one, text, token_list

router = APIRouter(prefix="/fhir")

PatientRead = Annotated[RequestContext, Depends(gate("Patient", "read"))]
PatientSearch = Annotated[RequestContext, Depends(gate("Patient", "search"))]
CarePlanRead = Annotated[RequestContext, Depends(gate("CarePlan", "read"))]
CarePlanSearch = Annotated[RequestContext, Depends(gate("CarePlan", "search"))]

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@router.get("/metadata")
async def read_metadata(state: StateDep) -> FHIRResponse:
    oauth_uris = None if state.smart is None else state.smart.oauth_uris()
    return FHIRResponse(capability_statement(state.base_url, oauth_uris))


def _bundle_outcomes(bundle: BundleBuilder, result: AccessResult, *, warnings: bool) -> None:
    """The OperationOutcome entries ``specs/behaviour.md`` asks for, in a fixed order."""
    for failed in result.failed:
        bundle.add_outcome(
            outcome(
                "incomplete",
                "warning",
                f"Source '{failed.source}' did not answer ({failed.outcome.value}): its records "
                "are missing from this answer.",
            )
        )
    if result.verdict.effect == "permit-filtered" and result.verdict.announce_withheld:
        bundle.add_outcome(
            outcome(
                "suppressed",
                "information",
                "Some information was withheld from this answer: "
                + ", ".join(result.verdict.reasons),
                reasons=result.verdict.reasons,
            )
        )
    if result.verdict.break_glass:
        bundle.add_outcome(
            outcome(
                "informational",
                "warning",
                "Emergency access (break-glass): this access is recorded for review by the "
                "Information Governance lead.",
                reasons=("break-glass",),
            )
        )
    if warnings:
        for warning in result.record.warnings:
            bundle.add_outcome(merge_warning_outcome(warning))


@router.get("/Patient/{nhs}")
async def read_patient(
    nhs: str, ctx: PatientRead, access: AccessDep, request: Request
) -> FHIRResponse:
    check_params(request, ())
    result = await access.read(ctx, parse_nhs_number(nhs))
    if result.record.patient is None:
        raise NotFound("No Patient resource may be shown for this NHS number.")
    headers = {}
    if result.failed:
        headers["X-Incomplete-Sources"] = ",".join(r.source for r in result.failed)
    return FHIRResponse(result.record.patient, headers=headers)


@router.get("/Patient")
async def search_patient(
    ctx: PatientSearch, access: AccessDep, state: StateDep, request: Request
) -> FHIRResponse:
    check_params(request, ("identifier",))
    raw = one(request, "identifier")
    if raw is not None:
        raw = text(raw, "identifier")
    if raw is None:
        raise BadRequest(
            "Patient search needs identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}.",
            expression=["identifier"],
        )
    system, _, value = raw.rpartition("|")
    if system and system != ukcore.NHS_NUMBER_SYSTEM:
        raise BadRequest(
            f"Only the NHS number identifier ({ukcore.NHS_NUMBER_SYSTEM}) can be searched.",
            expression=["identifier"],
        )
    nhs = parse_nhs_number(value, "identifier")
    bundle = BundleBuilder(state.base_url)
    bundle.link("self", "Patient", {"identifier": f"{ukcore.NHS_NUMBER_SYSTEM}|{nhs}"})
    result = await access.find(ctx, nhs)
    if result is None:
        return FHIRResponse(bundle.build(total=0))
    if result.record.patient is not None:
        bundle.add(result.record.patient)
    _bundle_outcomes(bundle, result, warnings=True)
    return FHIRResponse(bundle.build(total=len(bundle.entries)))


def _matches_token(codings: list[dict[str, Any]], wanted: list[str]) -> bool:
    for token in wanted:
        system, bar, code = token.rpartition("|")
        for coding in codings:
            if coding.get("code") == code and (not bar or coding.get("system") == system):
                return True
    return False


def _filter_careplans(plans: list[Resource], request: Request) -> list[Resource]:
    statuses = token_list(request, "status")
    categories = token_list(request, "category")
    bad = [s for s in statuses if s not in ukcore.CAREPLAN_STATUS]
    if bad:
        raise BadRequest(
            f"Unknown CarePlan status; use {', '.join(sorted(ukcore.CAREPLAN_STATUS))}.",
            expression=["status"],
        )
    out = []
    for plan in plans:
        if statuses and plan.get("status") not in statuses:
            continue
        codings = [c for cat in plan.get("category", ()) for c in cat.get("coding", ())]
        if categories and not _matches_token(codings, categories):
            continue
        out.append(plan)
    return out


@router.get("/CarePlan")
async def search_careplans(
    ctx: CarePlanSearch, access: AccessDep, state: StateDep, request: Request
) -> FHIRResponse:
    check_params(
        request,
        ("patient", "subject", "patient.identifier", "status", "category", "_count", "_offset"),
    )
    nhs = subject_nhs_number(request, "CarePlan", ("patient", "subject", "patient.identifier"))
    count, offset = count_param(request), offset_param(request)
    result = await access.read(ctx, nhs)
    plans = _filter_careplans(result.record.care_plans, request)
    page = plans[offset : offset + count]

    bundle = BundleBuilder(state.base_url)
    params = {k: v for k, v in request.query_params.items() if k not in ("_offset", "_count")}
    params["_count"] = str(count)
    bundle.link("self", "CarePlan", {**params, "_offset": str(offset)})
    if offset + count < len(plans):
        bundle.link("next", "CarePlan", {**params, "_offset": str(offset + count)})
    if offset > 0:
        bundle.link("previous", "CarePlan", {**params, "_offset": str(max(0, offset - count))})
    bundle.add_all(page)
    _bundle_outcomes(bundle, result, warnings=True)
    return FHIRResponse(bundle.build(total=len(plans)))


@router.get("/CarePlan/{plan_id}")
async def read_careplan(
    plan_id: str, ctx: CarePlanRead, access: AccessDep, request: Request
) -> FHIRResponse:
    check_params(request, ())
    source, person_id = _split_resource_id(plan_id)
    adapter = access.records.adapter(source)
    if adapter is None:
        raise NotFound("No CarePlan with this id.")
    nhs = await adapter.nhs_number_for(person_id)
    if nhs is None:
        raise NotFound("No CarePlan with this id.")
    audit_trail.note_patient(nhs)  # whose record was read, for the audit event
    result = await access.read(ctx, nhs)
    for plan in result.record.care_plans:
        if plan["id"] == plan_id:
            version = plan.get("meta", {}).get("versionId")  # a joint plan's, for If-Match
            return FHIRResponse(plan, headers={"ETag": f'W/"{version}"'} if version else None)
    if any(r.source == source for r in result.failed):
        raise NotFound("No CarePlan with this id could be found; its source did not answer.")
    if f"CarePlan/{plan_id}" in result.verdict.withheld and result.verdict.announce_withheld:
        # The caller has a relationship with the person (else the read was denied above) and
        # needs to know why the plan is not shown: 403 with the reason, never the content.
        raise Forbidden(
            "This CarePlan is withheld: " + ", ".join(result.verdict.reasons),
            reasons=result.verdict.reasons,
        )
    # Not there, or withheld from the person themself: nothing may say it exists.
    raise NotFound("No CarePlan with this id.")


def _split_resource_id(resource_id: str) -> tuple[str, str]:
    """``{source}.{personId}.{localId}`` → (source, personId), or 404 for any other shape."""
    if not _ID.fullmatch(resource_id):
        raise BadRequest("A FHIR id has 1-64 characters: letters, digits, '-' and '.'.")
    parts = resource_id.split(".")
    if len(parts) < 3:
        raise NotFound("No resource with this id.")
    return parts[0], parts[1]


@router.get("/Patient/{nhs}/$everything")
async def patient_everything(
    nhs: str, ctx: PatientRead, access: AccessDep, state: StateDep, request: Request
) -> FHIRResponse:
    check_params(request, ())
    audit_trail.note_operation("everything")
    result = await access.read(ctx, parse_nhs_number(nhs))
    bundle = BundleBuilder(state.base_url)
    bundle.link("self", f"Patient/{result.nhs_number}/$everything", {})
    bundle.add_all(result.record.resources())
    _bundle_outcomes(bundle, result, warnings=True)
    return FHIRResponse(bundle.build(total=len(bundle.entries)))

"""FHIR read API: Patient, CarePlan and $everything (``specs/gateway-interface.md``).

Handlers stay small: the gate dependency authenticates and checks scope and purpose,
:class:`~gateway.records.access.RecordAccess` fetches, decides and merges, and this module only
shapes the answer. Handlers never catch: :mod:`gateway.app` maps errors to OperationOutcome.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from adapters import ukcore
from adapters.base import Resource
from gateway.audit import note as audit_trail
from gateway.deps import AccessDep, StateDep, gate, parse_nhs_number, subject_nhs_number
from gateway.errors import BadRequest, NotFound
from gateway.fhir.capability import capability_statement
from gateway.fhir.params import check_params, one, text, token_list
from gateway.fhir.remembered import RememberedBundles
from gateway.fhir.responses import FHIRResponse
from gateway.fhir.search import RESULT_PARAMS, parse_shape, searchset
from gateway.records.access import RequestContext
from gateway.routes import searching

router = APIRouter(prefix="/fhir")

PatientRead = Annotated[RequestContext, Depends(gate("Patient", "read"))]
PatientSearch = Annotated[RequestContext, Depends(gate("Patient", "search"))]
CarePlanRead = Annotated[RequestContext, Depends(gate("CarePlan", "read"))]
CarePlanSearch = Annotated[RequestContext, Depends(gate("CarePlan", "search"))]

# $everything is one person's record: one page unless the caller asks for pages.
BUNDLES = RememberedBundles()
"""``$everything``'s Bundles remembered by record and shape (:mod:`gateway.fhir.remembered`)."""
EVERYTHING_COUNT = 1_000_000
EVERYTHING_TYPES = frozenset({"Patient", "CarePlan", "Goal", "CareTeam", "Provenance"})


@router.get("/metadata")
async def read_metadata(state: StateDep, request: Request) -> FHIRResponse:
    oauth_uris = None if state.smart is None else state.smart.oauth_uris()
    cors = bool(getattr(request.app.state, "cors_origins", ()))
    return FHIRResponse(capability_statement(state.base_url, oauth_uris, cors=cors))


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
@router.post("/Patient/_search")
async def search_patient(
    ctx: PatientSearch, access: AccessDep, state: StateDep, request: Request
) -> FHIRResponse:
    request = await searching.search_request(request)
    check_params(request, ("identifier", *RESULT_PARAMS))
    shape = parse_shape(request, "Patient")
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
    filters = {"identifier": f"{ukcore.NHS_NUMBER_SYSTEM}|{nhs}"}
    result = await access.find(ctx, nhs)
    if result is None:
        return FHIRResponse(searchset(state.base_url, "Patient", [], shape, filters=filters))
    matches = [] if result.record.patient is None else [result.record.patient]
    return searching.record_searchset(state.base_url, "Patient", matches, shape, filters, result)


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
@router.post("/CarePlan/_search")
async def search_careplans(
    ctx: CarePlanSearch, access: AccessDep, state: StateDep, request: Request
) -> FHIRResponse:
    request = await searching.search_request(request)
    check_params(
        request, ("patient", "subject", "patient.identifier", "status", "category", *RESULT_PARAMS)
    )
    nhs = subject_nhs_number(request, "CarePlan", ("patient", "subject", "patient.identifier"))
    shape = parse_shape(request, "CarePlan")
    result = await access.read(ctx, nhs)
    plans = _filter_careplans(result.record.care_plans, request)
    filters = {"patient": nhs}
    for name in ("status", "category"):
        values = token_list(request, name)
        if values:
            filters[name] = ",".join(values)
    return searching.record_searchset(state.base_url, "CarePlan", plans, shape, filters, result)


@router.get("/CarePlan/{plan_id}")
async def read_careplan(
    plan_id: str, ctx: CarePlanRead, access: AccessDep, request: Request
) -> FHIRResponse:
    check_params(request, ())
    return FHIRResponse(await searching.read_one("CarePlan", plan_id, ctx, access))


@router.get("/Patient/{nhs}/$everything")
@router.post("/Patient/{nhs}/$everything")
async def patient_everything(
    nhs: str, ctx: PatientRead, access: AccessDep, state: StateDep, request: Request
) -> FHIRResponse:
    """Everything the caller may see about the person; ``_count``/``_offset`` page it,
    ``_type`` narrows it to some resource types, ``_elements``/``_summary`` shape it."""
    request = await searching.operation_request(request)
    check_params(request, ("_count", "_offset", "_type", "_elements", "_summary", "_total"))
    audit_trail.note_operation("everything")
    shape = parse_shape(request, "Patient", default_count=EVERYTHING_COUNT)
    types = token_list(request, "_type")
    unknown = sorted(set(types) - EVERYTHING_TYPES)
    if unknown:
        raise BadRequest(
            f"_type may name {', '.join(sorted(EVERYTHING_TYPES))}.", expression=["_type"]
        )
    result = await access.read(ctx, parse_nhs_number(nhs))
    filters = {"_type": ",".join(types)} if types else {}
    path = f"Patient/{result.nhs_number}/$everything"
    outcomes = searching.record_outcomes(result)

    def build() -> Resource:
        resources = [
            r for r in result.record.resources() if not types or r["resourceType"] in types
        ]
        return searchset(state.base_url, path, resources, shape, filters=filters, outcomes=outcomes)

    if outcomes or types or request.method != "GET" or request.scope.get("query_string"):
        return FHIRResponse(build())
    # The default shape, nothing made for this request alone: the same bytes as the last
    # answer from this very record, but the Bundle's id and time.
    # An unchanged merge's copies share their basis; the route changes nothing in its copy.
    basis = result.record.basis or result.record
    key = (id(basis), id(shape), state.base_url, path)
    return FHIRResponse(BUNDLES.rendered(key, (basis, shape), build))

"""Consent API and ``$access-check`` (``specs/behaviour.md``, ``specs/consent-directives.md``).

=====================================  ===================================================
``POST /fhir/Consent``                 record a directive → ``201`` + ``Location``
``PUT /fhir/Consent/{id}``             change one (e.g. withdraw: ``status`` inactive) → 200
``GET /fhir/Consent?patient={nhs}``    the person's directives (also ``patient=Patient/{nhs}``
                                       and ``patient.identifier=system|nhs``) → searchset
``GET /fhir/Consent/{id}``             one directive → resource or ``404``
``GET /fhir/Consent/{id}/_history/{v}``  that version if it is the current one (the
                                       ``Location`` of a POST), else ``404``
``GET /fhir/Patient/{nhs}/$access-check``  what the policy would decide for the caller →
                                       ``Parameters`` (no patient data)
=====================================  ===================================================

Checks run in the order of ``specs/behaviour.md``: the gate (token, scope, purpose), then the
role (only roles the policy lets record directives — ``403 role-not-permitted``), then the
body: not JSON / not a Consent / not a valid R4 Consent → ``400``; valid but against the
directive rules (:func:`consent.validate_consent`) or for an NHS number no source knows →
``422``. Reading directives needs the same role as writing them: a person's directives say
which organisations they refuse, which is not for every reader of the record.

Stored directives take effect on the very next request: the decider reads them fresh.

Versions (FHIR version-aware update, ``http.html#concurrency``): every stored Consent has
``meta.versionId`` ("1", then one more per change) and ``meta.lastUpdated``; POST, PUT and
read answer with ``ETag: W/"<versionId>"``. ``PUT`` with ``If-Match: W/"n"`` (or ``"n"``)
changes the Consent only if ``n`` is still its current version, else ``412`` ``conflict``
naming the current one; the check and the write are one conditional ``UPDATE``, so of two
concurrent PUTs sending the same ``If-Match`` exactly one succeeds. ``If-Match`` is optional:
a PUT without it (or with ``*``) updates the current version as before — clients written
against ``specs/behaviour.md`` (PUT → ``200``, ``404`` for an unknown id) keep working.
A malformed ``If-Match`` (not one version: a list, a non-integer, an empty value) is ``400``.
An unknown id is ``404`` whatever ``If-Match`` says; the body is validated (``400``/``422``)
before the version is compared.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Request
from fhir.resources.R4B.consent import Consent
from pydantic import ValidationError

from adapters.base import Outcome
from consent import Decision, Policy, validate_consent
from consent.directives import patient_nhs_number
from consent.model import ODS_SYSTEM
from gateway.access import RequestContext, Verdict
from gateway.consent_store import ConsentStore, fhir_instant
from gateway.decision import requester
from gateway.deps import StateDep, gate, parse_nhs_number, subject_nhs_number
from gateway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    UnprocessableEntity,
)
from gateway.fhir.responses import BundleBuilder, FHIRResponse
from gateway.routes.params import check_params
from gateway.state import GatewayState

router = APIRouter(prefix="/fhir")

ConsentCreate = Annotated[RequestContext, Depends(gate("Consent", "create"))]
ConsentUpdate = Annotated[RequestContext, Depends(gate("Consent", "update"))]
ConsentRead = Annotated[RequestContext, Depends(gate("Consent", "read"))]
ConsentSearch = Annotated[RequestContext, Depends(gate("Consent", "search"))]
PatientRead = Annotated[RequestContext, Depends(gate("Patient", "read"))]

USER_SYSTEM: Final = "urn:caregateway:user"
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# One version this server issues, weak (FHIR's form) or strong; 9 digits fit the column.
_IF_MATCH = re.compile(r'(?:W/)?"([1-9][0-9]{0,8})"')
_MAX_PROBLEMS: Final = 20


# --- state -------------------------------------------------------------------------------


def _policy(state: GatewayState) -> Policy:
    if not isinstance(state.policy, Policy):
        raise GatewayError("The consent policy is not configured.")
    return state.policy


def _store(state: GatewayState) -> ConsentStore:
    if not isinstance(state.consents, ConsentStore):
        raise GatewayError("The consent store is not configured.")
    return state.consents


def _require_recorder(state: GatewayState, ctx: RequestContext) -> None:
    if not _policy(state).may_record_directives(requester(ctx)):
        raise Forbidden(
            "This role may not record or read consent directives.",
            reasons=["role-not-permitted"],
        )


# --- the request body --------------------------------------------------------------------


def _model_problems(exc: ValidationError) -> list[str]:
    """Where and what, from the model's errors — never the input values (they may be PII)."""
    return [
        f"{'.'.join(str(p) for p in err.get('loc', ())) or 'Consent'}: {err.get('msg')}"
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


async def _consent_body(request: Request) -> dict[str, Any]:
    """The body as a Consent dict that the R4 model accepts, or ``400``."""
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a FHIR Consent resource (a JSON object).")
    if body.get("resourceType") != "Consent":
        raise BadRequest("The request body must have resourceType Consent.")
    try:
        Consent.model_validate(body)
    except ValidationError as exc:
        problems = _model_problems(exc)
        raise BadRequest(
            "The Consent is not a valid FHIR R4 Consent: " + "; ".join(problems[:_MAX_PROBLEMS])
        ) from exc
    except (ValueError, TypeError) as exc:
        raise BadRequest("The Consent is not a valid FHIR R4 Consent.") from exc
    problems = validate_consent(body)
    if problems:
        raise UnprocessableEntity(
            "The Consent cannot be used as a directive: " + "; ".join(problems[:_MAX_PROBLEMS])
        )
    return body


def _with_recorder(body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    """``dateTime``, ``performer`` and ``organization`` from the caller, where absent."""
    out = dict(body)
    if not out.get("dateTime"):
        out["dateTime"] = fhir_instant(datetime.now(UTC))
    if not out.get("performer"):
        performer: dict[str, Any] = {"identifier": {"system": USER_SYSTEM, "value": ctx.sub}}
        if ctx.name:
            performer["display"] = ctx.name
        out["performer"] = [performer]
    if not out.get("organization"):
        out["organization"] = [{"identifier": {"system": ODS_SYSTEM, "value": ctx.org}}]
    return out


def _patient(body: dict[str, Any]) -> str:
    nhs = patient_nhs_number(body)
    if nhs is None:  # validate_consent has already refused this
        raise UnprocessableEntity("Consent.patient must name the person by NHS number.")
    return nhs


async def _require_known(state: GatewayState, nhs: str) -> None:
    """``422`` unless a source holds the person; ``503`` when that cannot be told."""
    results = await state.access.records.fetch(nhs)
    if any(r.outcome is Outcome.FOUND for r in results):
        return
    failed = [r.source for r in results if not r.ok]
    if failed:
        raise ServiceUnavailable(
            "Cannot check the NHS number: these sources did not answer: "
            + ", ".join(failed)
            + ". Try again shortly."
        )
    raise UnprocessableEntity("Consent.patient: unknown NHS number (no source holds this person).")


def _stored_response(
    resource: dict[str, Any], status: int, headers: dict[str, str]
) -> FHIRResponse:
    version = resource.get("meta", {}).get("versionId", "1")
    return FHIRResponse(resource, status_code=status, headers={"ETag": f'W/"{version}"', **headers})


def _check_id(consent_id: str) -> None:
    if not _ID.fullmatch(consent_id):
        raise BadRequest("A FHIR id has 1-64 characters: letters, digits, '-' and '.'.")


def _expected_version(request: Request) -> int | None:
    """The version ``If-Match`` names; ``None`` without one (or ``*``); ``400`` if malformed."""
    values = request.headers.getlist("if-match")
    if not values:
        return None
    if len(values) == 1 and values[0].strip() == "*":
        return None
    found = _IF_MATCH.fullmatch(values[0].strip()) if len(values) == 1 else None
    if found is None:
        raise BadRequest(
            'If-Match must name one version of the Consent as its ETag, e.g. W/"3" '
            "(the ETag a read or the last change of it answered with)."
        )
    return int(found.group(1))


# --- routes ------------------------------------------------------------------------------


@router.post("/Consent")
async def create_consent(ctx: ConsentCreate, state: StateDep, request: Request) -> FHIRResponse:
    _require_recorder(state, ctx)
    check_params(request, ())
    body = await _consent_body(request)
    await _require_known(state, _patient(body))
    stored = await _store(state).create(_with_recorder(body, ctx))
    location = f"{state.base_url}/Consent/{stored['id']}/_history/{stored['meta']['versionId']}"
    return _stored_response(stored, 201, {"Location": location})


@router.put("/Consent/{consent_id}")
async def update_consent(
    consent_id: str, ctx: ConsentUpdate, state: StateDep, request: Request
) -> FHIRResponse:
    _require_recorder(state, ctx)
    check_params(request, ())
    _check_id(consent_id)
    expected = _expected_version(request)
    body = await _consent_body(request)
    if "id" in body and body["id"] != consent_id:
        raise BadRequest("The Consent's id does not match the id in the URL.", expression=["id"])
    store = _store(state)
    current = await store.get(consent_id)
    if current is None:
        raise NotFound("No Consent with this id.")
    if _patient(body) != patient_nhs_number(current):
        raise UnprocessableEntity(
            "Consent.patient cannot change: record a new Consent for another person."
        )
    stored = await store.update(consent_id, _with_recorder(body, ctx), expected_version=expected)
    return _stored_response(stored, 200, {})


@router.get("/Consent/{consent_id}")
async def read_consent(
    consent_id: str, ctx: ConsentRead, state: StateDep, request: Request
) -> FHIRResponse:
    stored = await _readable(consent_id, ctx, state, request)
    return _stored_response(stored, 200, {})


async def _readable(
    consent_id: str, ctx: RequestContext, state: GatewayState, request: Request
) -> dict[str, Any]:
    """The stored Consent a read or vread may return (role, params and id checked), or 404."""
    _require_recorder(state, ctx)
    check_params(request, ())
    _check_id(consent_id)
    stored = await _store(state).get(consent_id)
    if stored is None:
        raise NotFound("No Consent with this id.")
    return stored


@router.get("/Consent/{consent_id}/_history/{version_id}")
async def vread_consent(
    consent_id: str, version_id: str, ctx: ConsentRead, state: StateDep, request: Request
) -> FHIRResponse:
    """The version ``Location`` points at. Only the current version is kept (the audit
    trail records every change): an earlier one is ``404`` saying so."""
    stored = await _readable(consent_id, ctx, state, request)
    current = str(stored["meta"]["versionId"])
    if version_id != current:
        raise NotFound(
            f"Only the current version ({current}) of this Consent is kept; "
            "earlier versions are not."
        )
    return _stored_response(stored, 200, {})


@router.get("/Consent")
async def search_consents(ctx: ConsentSearch, state: StateDep, request: Request) -> FHIRResponse:
    _require_recorder(state, ctx)
    check_params(request, ("patient", "patient.identifier", "status"))
    nhs = subject_nhs_number(request, "Consent", ("patient", "patient.identifier"))
    statuses = {s for v in request.query_params.getlist("status") for s in v.split(",") if s}
    found = [
        c for c in await _store(state).search(nhs) if not statuses or c.get("status") in statuses
    ]
    bundle = BundleBuilder(state.base_url)
    params = {"patient": nhs}
    if statuses:
        params["status"] = ",".join(sorted(statuses))
    bundle.link("self", "Consent", params)
    bundle.add_all(found)
    return FHIRResponse(bundle.build(total=len(found)))


def access_check_parameters(verdict: Verdict, policy: Policy | None) -> dict[str, Any]:
    """The ``$access-check`` answer: effect, reasons, policy version, the rule that matched."""
    detail = verdict.detail
    if isinstance(detail, Decision):
        version, rule = detail.policy_version, detail.matched_rule
    else:  # a decider without the consent policy (scope-only access)
        version = policy.version if policy is not None else "none"
        rule = "scope-only access: no consent policy was applied"
    parameters: list[dict[str, Any]] = [{"name": "effect", "valueCode": verdict.effect}]
    parameters += [{"name": "reason", "valueCode": r} for r in verdict.reasons]
    parameters += [
        {"name": "policy-version", "valueString": version},
        {"name": "matched-rule", "valueString": rule},
    ]
    return {"resourceType": "Parameters", "parameter": parameters}


@router.get("/Patient/{nhs}/$access-check")
async def access_check(
    nhs: str, ctx: PatientRead, state: StateDep, request: Request
) -> FHIRResponse:
    check_params(request, ())
    verdict = await state.access.decide_only(ctx, parse_nhs_number(nhs))
    policy = state.policy if isinstance(state.policy, Policy) else None
    return FHIRResponse(access_check_parameters(verdict, policy))

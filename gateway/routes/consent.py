"""Consent API and ``$access-check`` (``specs/behaviour.md``, ``specs/consent-directives.md``).

=========================================  ===============================================
``POST /fhir/Consent``                     record a directive → ``201`` + ``Location``
``PUT /fhir/Consent/{id}``                 change one (e.g. withdraw: ``status`` inactive)
``GET /fhir/Consent?patient={nhs}``        the person's directives (also ``Patient/{nhs}``
                                           and ``patient.identifier=system|nhs``)
``GET /fhir/Consent/{id}``                 the current version, or ``404``
``GET /fhir/Consent/{id}/_history/{v}``    any kept version (every version is kept)
``GET /fhir/Consent/{id}/_history``        every version, a ``history`` Bundle, newest first
``GET /fhir/Patient/{nhs}/$access-check``  what the policy would decide for the caller →
                                           ``Parameters`` (no patient data):
                                           :mod:`gateway.routes.access_check`
=========================================  ===============================================

Who may: :mod:`consent.directive_access`, called through
:func:`gateway.policy.decision.authorise_directives` — a role the policy lets record directives
(checked before the body is read), a legitimate relationship with the person (or IG work
under ``HOPERAT``), and never the organisation a directive refuses. The person is the one
the body names (a create) or the stored directive names (everything else). Refusals are
``403`` with reason codes; ``503`` when the relationship could only have come from a source
that did not answer. The body: :mod:`gateway.routes.consent_body` (``415``/``413``/``400``/
``422``). Every answer, refusals included, is audited naming the person and
``Consent/{id}/_history/{v}``.

Stored directives take effect on the very next request: the decider reads them fresh.

Versions (FHIR version-aware update, ``http.html#concurrency``): every stored Consent has
``meta.versionId`` ("1", then one more per change) and ``meta.lastUpdated``; POST, PUT and
read answer with ``ETag: W/"<versionId>"``. ``PUT`` with ``If-Match: W/"n"`` (or ``"n"``)
changes the Consent only if ``n`` is still its current version, else ``412`` ``conflict``
naming the current one; the check and the write are one conditional ``UPDATE``, so of two
concurrent PUTs sending the same ``If-Match`` exactly one succeeds. ``If-Match`` is optional:
a PUT without it (or with ``*``) updates the current version. A malformed ``If-Match`` (not
one version: a list, a non-integer, an empty value) is ``400``. An unknown id is ``404``
whatever ``If-Match`` says; the body is validated (``400``/``422``) and the change authorised
(``403``) before the version is compared.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from adapters.base import SourceResult
from consent import (
    Decision,
    Directive,
    DirectiveInteraction,
    directive_role_denial,
    parse_consent,
)
from consent.directives import patient_nhs_number
from gateway.audit import note as audit_trail
from gateway.deps import StateDep, consents_of, gate, policy_of, subject_nhs_number
from gateway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    NotFound,
    UnprocessableEntity,
)
from gateway.fhir.params import check_params
from gateway.fhir.responses import FHIRResponse, outcome
from gateway.fhir.search import RESULT_PARAMS, parse_shape, searchset
from gateway.fhir.versioned import check_id, history_bundle, require_known
from gateway.policy.decision import authorise_directives, requester
from gateway.records.access import RequestContext
from gateway.routes import consent_write
from gateway.routes.access_check import PatientRead as PatientRead  # re-exported
from gateway.routes.access_check import access_check as access_check  # re-exported
from gateway.routes.access_check import (
    access_check_parameters as access_check_parameters,  # re-exported
)
from gateway.routes.consent_body import consent_body, with_recorder
from gateway.routes.searching import search_request
from gateway.state import GatewayState
from vocabulary import Interaction

router = APIRouter(prefix="/fhir")


_VERSION = re.compile(r"[1-9][0-9]{0,8}")


# --- state -------------------------------------------------------------------------------


def _require_recorder(
    state: GatewayState, ctx: RequestContext, interaction: DirectiveInteraction | None = None
) -> None:
    """Rule 1 of :mod:`consent.directive_access` before anything else is read: a role that
    may not touch directives is refused without its request being looked at (the person
    themself: their purpose and identity proofing for ``interaction``)."""
    denial = directive_role_denial(requester(ctx), ctx.purpose, policy_of(state), interaction)
    if denial is not None:
        audit_trail.note_decision(denial.effect.value, denial.reason_codes, False, None)
        raise Forbidden(
            "This role may not record or read consent directives for this purpose.",
            reasons=denial.reason_codes,
        )


def _recorder(
    interaction: Interaction, directive: DirectiveInteraction
) -> Callable[..., Awaitable[RequestContext]]:
    """Dependency: the gate for ``Consent`` ``interaction``, then :func:`_require_recorder`
    (``403``, audited) — both before the route reads a parameter or the body."""
    gated = gate("Consent", interaction)

    async def _check(state: StateDep, ctx: RequestContext = Depends(gated)) -> RequestContext:
        _require_recorder(state, ctx, directive)
        return ctx

    return _check


ConsentCreate = Annotated[RequestContext, Depends(_recorder("create", DirectiveInteraction.CREATE))]
ConsentUpdate = Annotated[RequestContext, Depends(_recorder("update", DirectiveInteraction.UPDATE))]
ConsentRead = Annotated[RequestContext, Depends(_recorder("read", DirectiveInteraction.READ))]
ConsentSearch = Annotated[RequestContext, Depends(_recorder("search", DirectiveInteraction.SEARCH))]
"""Consent callers a role the policy lets touch directives (:data:`ConsentCreate` ...)."""


def _reference(resource: dict[str, Any]) -> str:
    """``Consent/{id}/_history/{v}``: the directive and its version, for the audit event."""
    return f"Consent/{resource['id']}/_history/{resource['meta']['versionId']}"


def _directives(resource: dict[str, Any]) -> tuple[Directive, ...]:
    return parse_consent(resource)


async def _authorise(
    ctx: RequestContext,
    state: GatewayState,
    interaction: DirectiveInteraction,
    nhs: str,
    targets: Sequence[dict[str, Any]],
    results: Sequence[SourceResult] | None = None,
) -> Decision:
    """The directive-access decision (403/503 raised) on ``targets``, stored Consents."""
    return await authorise_directives(
        ctx,
        policy_of(state),
        interaction,
        nhs,
        {_reference(t): _directives(t) for t in targets},
        state.access.source_results,
        results,
    )


def _note_stored(resource: dict[str, Any]) -> str:
    """Note the stored directive's person and version for the audit event; its NHS number."""
    nhs = patient_nhs_number(resource)
    if nhs is None:  # the store never holds one without
        raise GatewayError("A stored Consent names no person.")
    audit_trail.note_patient(nhs)
    audit_trail.note_resources((_reference(resource),))
    return nhs


# --- the request body --------------------------------------------------------------------


def _patient(body: dict[str, Any]) -> str:
    nhs = patient_nhs_number(body)
    if nhs is None:  # validate_consent has already refused this
        raise UnprocessableEntity("Consent.patient must name the person by NHS number.")
    return nhs


async def _require_known(state: GatewayState, nhs: str) -> Sequence[SourceResult]:
    """The sources' answers: ``422`` unless a source holds the person; ``503`` when that
    cannot be told."""
    results = await state.access.source_results(nhs)
    unknown = "Consent.patient: unknown NHS number (no source holds this person)."
    require_known(results, "the NHS number", UnprocessableEntity(unknown))
    return results


def _stored_response(
    resource: dict[str, Any], status: int, headers: dict[str, str]
) -> FHIRResponse:
    version = resource.get("meta", {}).get("versionId", "1")
    return FHIRResponse(resource, status_code=status, headers={"ETag": f'W/"{version}"', **headers})


# --- routes ------------------------------------------------------------------------------


@router.post("/Consent")
async def create_consent(ctx: ConsentCreate, state: StateDep, request: Request) -> FHIRResponse:
    check_params(request, ())
    body = await consent_body(request)
    nhs = _patient(body)
    if ctx.client_kind == "patient":
        # Decided before the NHS number is looked up: whether anybody else is known under
        # another number is not the person's to learn (not-own-record, never a 422).
        await _authorise(ctx, state, DirectiveInteraction.CREATE, nhs, (), ())
        await _require_known(state, nhs)
    else:
        results = await _require_known(state, nhs)
        await _authorise(ctx, state, DirectiveInteraction.CREATE, nhs, (), results)
    condition = consent_write.conditions(request, nhs)
    if condition is not None:
        found = await _readable(
            ctx, state, nhs, consent_write.existing(await consents_of(state).search(nhs), condition)
        )
        kept = consent_write.one_or_none(found)
        if kept is not None:
            audit_trail.note_resources((_reference(kept),))
            location = f"{state.base_url}/{_reference(kept)}"
            return consent_write.written(request, kept, 200, {"Location": location})
    stored = await consents_of(state).create(with_recorder(body, ctx))
    audit_trail.note_resources((_reference(stored),))
    location = f"{state.base_url}/{_reference(stored)}"
    return consent_write.written(request, stored, 201, {"Location": location})


async def _readable(
    ctx: RequestContext, state: GatewayState, nhs: str, found: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Those of ``found`` the caller may read (a directive refusing it is not shown)."""
    if not found:
        return found
    decision = await _authorise(ctx, state, DirectiveInteraction.SEARCH, nhs, found)
    left_out = {w.key for w in decision.withheld}
    return [c for c in found if _reference(c) not in left_out]


@router.put("/Consent/{consent_id}")
async def update_consent(
    consent_id: str, ctx: ConsentUpdate, state: StateDep, request: Request
) -> FHIRResponse:
    check_params(request, ())
    check_id(consent_id)
    expected = consent_write.expected_version(request)
    body = await consent_body(request)
    if "id" in body and body["id"] != consent_id:
        raise BadRequest(
            "The Consent's id does not match the id in the URL.", expression=["Consent.id"]
        )
    store = consents_of(state)
    current = await store.get(consent_id)
    if current is None:
        raise NotFound("No Consent with this id.")
    nhs = _note_stored(current)
    await _authorise(ctx, state, DirectiveInteraction.UPDATE, nhs, (current,))
    if _patient(body) != nhs:
        raise UnprocessableEntity(
            "Consent.patient cannot change: record a new Consent for another person."
        )
    stored = await store.update(consent_id, with_recorder(body, ctx), expected_version=expected)
    audit_trail.note_resources((_reference(stored),))
    return consent_write.written(request, stored, 200, {})


@router.get("/Consent/{consent_id}")
async def read_consent(
    consent_id: str, ctx: ConsentRead, state: StateDep, request: Request
) -> FHIRResponse:
    stored = await _current(consent_id, state, request)
    await _authorise(ctx, state, DirectiveInteraction.READ, _note_stored(stored), (stored,))
    return _stored_response(stored, 200, {})


async def _current(consent_id: str, state: GatewayState, request: Request) -> dict[str, Any]:
    """The current version of the Consent a read names (params and id checked), or 404; the
    role was checked by :data:`ConsentRead`."""
    check_params(request, ())
    check_id(consent_id)
    stored = await consents_of(state).get(consent_id)
    if stored is None:
        raise NotFound("No Consent with this id.")
    return stored


@router.get("/Consent/{consent_id}/_history/{version_id}")
async def vread_consent(
    consent_id: str, version_id: str, ctx: ConsentRead, state: StateDep, request: Request
) -> FHIRResponse:
    """Any kept version. Decided on that version and the current one: a directive that now
    refuses the caller's organisation is not shown to it in any version."""
    current = await _current(consent_id, state, request)
    nhs = _note_stored(current)
    found = _VERSION.fullmatch(version_id)
    kept = await consents_of(state).version(consent_id, int(version_id)) if found else None
    if kept is None:
        raise NotFound(f"This Consent has no version {version_id[:12]!r}.")
    audit_trail.note_resources((_reference(kept),))
    await _authorise(ctx, state, DirectiveInteraction.READ, nhs, (kept, current))
    return _stored_response(kept, 200, {})


@router.get("/Consent/{consent_id}/_history")
async def history_consent(
    consent_id: str, ctx: ConsentRead, state: StateDep, request: Request
) -> FHIRResponse:
    """Every kept version as a ``history`` Bundle, newest first; decided on all of them."""
    current = await _current(consent_id, state, request)
    nhs = _note_stored(current)
    versions = await consents_of(state).history(consent_id) or [current]
    audit_trail.note_resources(tuple(_reference(v) for v in versions))
    await _authorise(ctx, state, DirectiveInteraction.READ, nhs, versions)
    return FHIRResponse(history_bundle(state.base_url, "Consent", versions))


@router.get("/Consent")
@router.post("/Consent/_search")
async def search_consents(ctx: ConsentSearch, state: StateDep, request: Request) -> FHIRResponse:
    """A person's directives, less those refusing the caller's organisation: they are neither
    returned nor counted, and a ``suppressed`` outcome says that something was left out."""
    request = await search_request(request)
    check_params(request, ("patient", "patient.identifier", "status", *RESULT_PARAMS))
    nhs = subject_nhs_number(request, "Consent", ("patient", "patient.identifier"))
    shape = parse_shape(request, "Consent")
    statuses = {s for v in request.query_params.getlist("status") for s in v.split(",") if s}
    found = [
        c
        for c in await consents_of(state).search(nhs)
        if not statuses or c.get("status") in statuses
    ]
    decision = await _authorise(ctx, state, DirectiveInteraction.SEARCH, nhs, found)
    left_out = {w.key for w in decision.withheld}
    shown = [c for c in found if _reference(c) not in left_out]
    audit_trail.note_resources(tuple(_reference(c) for c in shown))
    params = {"patient": nhs}
    if statuses:
        params["status"] = ",".join(sorted(statuses))
    outcomes = []
    if left_out:
        outcomes.append(
            outcome(
                "suppressed",
                "information",
                "Some directives were left out of this answer: " + ", ".join(decision.reason_codes),
                reasons=decision.reason_codes,
            )
        )
    bundle = searchset(
        state.base_url, "Consent", shown, shape, filters=params, pool=shown, outcomes=outcomes
    )
    return FHIRResponse(bundle)

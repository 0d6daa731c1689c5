"""FastAPI dependencies, as ``Annotated`` aliases routes declare (``GateDep`` ...).

:func:`gate` runs the checks of ``specs/behaviour.md`` in their fixed order — token (401),
scope for the interaction (403), purpose of use (403) — and yields the :class:`RequestContext`.
Parameter and NHS number checks (400) come after, in the route's own parsing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from adapters import nhs_number, ukcore
from gateway.audit import note as audit_trail
from gateway.auth import parse_bearer, require_scope, resolve_purpose
from gateway.errors import BadRequest, GatewayError
from gateway.fhir.params import one
from gateway.ids import random_uuid
from gateway.records.access import RecordAccess, RequestContext
from gateway.state import GatewayState
from vocabulary import Interaction

if TYPE_CHECKING:
    from consent import Policy
    from gateway.joint.store import JointPlanStore
    from gateway.policy.store import ConsentStore

_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, otherwise a new UUID."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return random_uuid()


async def get_state(request: Request) -> GatewayState:
    """The app's state (async, like every dependency here: FastAPI runs a plain ``def``
    dependency in a worker thread, a hop per request for one attribute read)."""
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]


async def get_access(state: StateDep) -> RecordAccess:
    return state.access


AccessDep = Annotated[RecordAccess, Depends(get_access)]


# A gateway built without one of these parts (a read path without a policy, a test's partial
# state) answers a request that needs it with a logged 500 saying which part is missing.


def policy_of(state: GatewayState) -> Policy:
    if state.policy is None:
        raise GatewayError("The consent policy is not configured.")
    return state.policy


def consents_of(state: GatewayState) -> ConsentStore:
    if state.consents is None:
        raise GatewayError("The consent store is not configured.")
    return state.consents


def joint_of(state: GatewayState) -> JointPlanStore:
    if state.joint is None:
        raise GatewayError("The joint care plan store is not configured.")
    return state.joint


def gate(resource_type: str, interaction: Interaction) -> Callable[..., Awaitable[RequestContext]]:
    """Dependency factory: authenticate, check scope, resolve purpose — in that order."""

    async def _gate(request: Request, state: StateDep) -> RequestContext:
        audit_trail.note_interaction(resource_type, interaction)
        token = parse_bearer(request.headers.get("authorization"))
        principal = await state.verifier.averify(token)
        request.scope["state"]["principal"] = principal  # request.state.principal
        note = audit_trail.current()
        if note is not None:
            note.caller = principal
        if state.rate_limiter is not None:  # CAREGW_RATE_LIMIT: 429, audited (gateway.ops)
            await state.rate_limiter.check(principal)
        require_scope(principal, resource_type, interaction)
        purpose = resolve_purpose(principal, request.headers.get("x-purpose-of-use"))
        if note is not None:
            note.purpose = purpose
        reason = (request.headers.get("x-break-glass-reason") or "").strip() or None
        return RequestContext(
            sub=principal.sub,
            role=principal.role,
            org=principal.org,
            client_kind=principal.client_kind,
            purpose=purpose,
            request_id=request.scope["state"]["request_id"],  # request.state.request_id
            break_glass_reason=reason if purpose == "ETREAT" else None,
            name=principal.name,
            patient=principal.patient,
            proofing_level=principal.proofing_level,
        )

    return _gate


def parse_nhs_number(value: str, where: str = "NHS number") -> str:
    """Normalise and validate, or 400 naming the parameter (never echoing the value)."""
    try:
        number = nhs_number.parse(value)
    except nhs_number.InvalidNHSNumber as exc:
        # ``expression`` is FHIRPath: a search parameter's name, never a phrase; an NHS number
        # in the URL's path is no element of the request, so it names none.
        raise BadRequest(
            f"{where} is not a valid NHS number (10 digits with a Modulus 11 check digit).",
            expression=[] if where == "NHS number" else [where],
        ) from exc
    audit_trail.note_patient(number)
    return number


def patient_reference_value(request: Request, value: str, name: str) -> str:
    """``{nhs}`` from ``{nhs}``, ``Patient/{nhs}`` or this gateway's absolute
    ``{base}/Patient/{nhs}``; a reference to another server is a 400 naming ``name``."""
    if "://" in value:
        state: GatewayState | None = getattr(request.app.state, "gateway", None)
        own = f"{state.base_url}/Patient/" if state is not None else None
        if own is None or not value.startswith(own):
            raise BadRequest(f"{name} must reference a Patient on this server.", expression=[name])
        return value.removeprefix(own)
    return value.removeprefix("Patient/")


def subject_nhs_number(request: Request, resource_type: str, names: tuple[str, ...]) -> str:
    """The NHS number of a search's subject, from exactly one of ``names``.

    ``patient``/``subject`` take ``{nhs}``, ``Patient/{nhs}`` or ``{base}/Patient/{nhs}``;
    ``patient.identifier`` takes ``[https://fhir.nhs.uk/Id/nhs-number|]{nhs}``. Anything else
    is a 400 naming the parameter.
    """
    given = {k: v for k in names if (v := one(request, k)) is not None}
    if len(given) != 1:
        raise BadRequest(
            f"{resource_type} search needs exactly one of {', '.join(names)}.",
            expression=sorted(given) or [names[0]],
        )
    name, value = next(iter(given.items()))
    if name == "patient.identifier":
        system, _, value = value.rpartition("|")
        if system and system != ukcore.NHS_NUMBER_SYSTEM:
            raise BadRequest("patient.identifier must be an NHS number.", expression=[name])
    else:
        value = patient_reference_value(request, value, name)
    return parse_nhs_number(value, name)

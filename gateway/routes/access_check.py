"""``GET``/``POST /fhir/Patient/{nhs}/$access-check``: what the policy would decide for the
caller → ``Parameters`` (effect, reasons, policy version, the rule that matched).

It stands apart from :mod:`gateway.routes.consent` although ``specs/consent-directives.md``
describes both: the Consent routes read and write stored directives, this operation reads
none and writes nothing. It asks the request's decider (:meth:`RecordAccess.decide_only`)
the question a read of the person's record would ask, and answers with no patient data.
Its router is included right after the Consent routes', where it always stood.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from consent import Decision, Effect, Policy
from gateway.deps import StateDep, gate, parse_nhs_number
from gateway.fhir.responses import FHIRResponse
from gateway.records.access import RequestContext, Verdict
from gateway.routes.params import check_params
from gateway.routes.searching import operation_request

router = APIRouter(prefix="/fhir")

PatientRead = Annotated[RequestContext, Depends(gate("Patient", "read"))]


def access_check_parameters(verdict: Verdict, policy: Policy | None) -> dict[str, Any]:
    """The ``$access-check`` answer: effect, reasons, policy version, the rule that matched.

    For the person themself what is withheld from them is not announced here either: a
    permit they are told is a plain ``permit``, with no reason and no rule naming it."""
    detail = verdict.detail
    if not verdict.announce_withheld and verdict.effect != "deny":
        verdict = Verdict(effect=Effect.PERMIT, visible=verdict.visible)
        version = detail.policy_version if isinstance(detail, Decision) else "none"
        rule = "permitted: the person themself, their own record"
    elif isinstance(detail, Decision):
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
@router.post("/Patient/{nhs}/$access-check")
async def access_check(
    nhs: str, ctx: PatientRead, state: StateDep, request: Request
) -> FHIRResponse:
    request = await operation_request(request)
    check_params(request, ())
    verdict = await state.access.decide_only(ctx, parse_nhs_number(nhs))
    policy = state.policy
    return FHIRResponse(access_check_parameters(verdict, policy))

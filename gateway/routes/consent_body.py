"""The body of ``POST``/``PUT /fhir/Consent``: read within bounds, then checked in order.

==============================================================  =====  =================
the body                                                         HTTP   issue.code
==============================================================  =====  =================
``Content-Type`` not ``application/fhir+json``/``application/json``  415    not-supported
longer than :data:`consent.limits.MAX_CONSENT_BYTES` (64 KiB)    413    too-long
not JSON, not an object, not ``resourceType`` Consent            400    invalid
beyond the directive limits (:mod:`consent.limits`)              422    too-costly
not a valid FHIR R4 Consent                                      400    invalid
against the directive rules (:func:`consent.validate_consent`)   422    business-rule
==============================================================  =====  =================

The size is checked while the body is read — a declared ``Content-Length`` over the limit
is refused before a byte is read, and a body without one is read only up to the limit — so
a 10 MB Consent never sits in memory. The structural limits are checked before the R4 model
or the directive rules walk the resource, so that neither ever recurses into a 500-deep
``provision`` nor loops over 150,000 identifiers.

The person's NHS number is noted for the audit event as soon as the body names a valid one,
so that a refused change is in that person's ``$access-report`` too.

What is stored is the checked body completed from the caller (:func:`with_recorder`: when,
by whom, for which organisation), so the routes never edit a body themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from fastapi import Request
from fhir.resources.R4B.consent import Consent
from pydantic import ValidationError

from adapters import nhs_number
from consent import validate_consent
from consent.directives import patient_nhs_number
from consent.limits import MAX_CONSENT_BYTES, limit_problems
from consent.model import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from gateway.audit import note as audit_trail
from gateway.errors import (
    BadRequest,
    ResourceTooLarge,
    TooCostly,
    UnprocessableEntity,
)
from gateway.errors import UnsupportedMediaType as UnsupportedMediaType  # re-exported
from gateway.fhir.versioned import resource_body
from gateway.narrative import narrate
from gateway.policy.store import fhir_instant
from gateway.records.access import RequestContext
from vocabulary import USER_SYSTEM

_MAX_PROBLEMS: Final = 20


ConsentTooLarge = ResourceTooLarge
ConsentTooCostly = TooCostly


def _note_person(body: dict[str, Any]) -> None:
    nhs = patient_nhs_number(body)
    if nhs is not None and nhs.isascii() and nhs_number.is_valid(nhs) and len(nhs) == 10:
        audit_trail.note_patient(nhs)


def _model_problems(exc: ValidationError) -> list[str]:
    """Where and what, from the model's errors — never the input values (they may be PII)."""
    return [
        f"{'.'.join(str(p) for p in err.get('loc', ())) or 'Consent'}: {err.get('msg')}"
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


async def consent_body(request: Request) -> dict[str, Any]:
    """The body as a Consent dict the R4 model and the directive rules accept, or the error
    of the table above."""
    body = await resource_body(request, "Consent", MAX_CONSENT_BYTES)
    _note_person(body)
    limits = limit_problems(body)
    if limits:
        raise ConsentTooCostly("The Consent is too large to use as a directive: " + limits[0])
    try:
        Consent.model_validate(body)
    except ValidationError as exc:
        problems = _model_problems(exc)
        raise BadRequest(
            "The Consent is not a valid FHIR R4 Consent: " + "; ".join(problems[:_MAX_PROBLEMS])
        ) from exc
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise BadRequest("The Consent is not a valid FHIR R4 Consent.") from exc
    problems = validate_consent(body)
    if problems:
        raise UnprocessableEntity(
            "The Consent cannot be used as a directive: " + "; ".join(problems[:_MAX_PROBLEMS])
        )
    return body


def _performer_is(performer: Any, nhs: str) -> bool:
    """Whether a Consent.performer names the person ``nhs`` (by reference, identifier or
    both, and nothing else)."""
    if not isinstance(performer, dict):
        return False
    ident = performer.get("identifier")
    by_id = isinstance(ident, dict) and (ident.get("system"), ident.get("value")) == (
        NHS_NUMBER_SYSTEM,
        nhs,
    )
    ref = performer.get("reference")
    by_ref = isinstance(ref, str) and ref.rsplit("/", 2)[-2:] == ["Patient", nhs]
    named = "identifier" in performer or "reference" in performer
    return (
        named
        and (by_id or "identifier" not in performer)
        and (by_ref or "reference" not in performer)
    )


def person_performer(given: Any, nhs: str) -> list[dict[str, Any]]:
    """``Consent.performer`` of what the person themself records: them. A body naming anyone
    else as its performer is ``422``; none (or the person) is filled in as ``Patient/{nhs}``."""
    if given and not (isinstance(given, list) and all(_performer_is(p, nhs) for p in given)):
        raise UnprocessableEntity(
            "Consent.performer: what you record is recorded by you; leave performer out or "
            "name yourself (Patient/{your NHS number}).",
            expression=["Consent.performer"],
        )
    return [
        {"reference": f"Patient/{nhs}", "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}
    ]


def with_recorder(body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    """``dateTime``, ``performer`` and ``organization`` from the caller, where absent.

    The person themself is the performer of what they record (``Patient/{nhs}``); a body
    naming anybody else as its performer is ``422``. They act for no organisation, so none
    is filled in."""
    out = dict(body)
    if not out.get("dateTime"):
        out["dateTime"] = fhir_instant(datetime.now(UTC))
    if ctx.client_kind == "patient" and ctx.patient is not None:
        out["performer"] = person_performer(out.get("performer"), ctx.patient)
        return narrate(out)
    if not out.get("performer"):
        performer: dict[str, Any] = {"identifier": {"system": USER_SYSTEM, "value": ctx.sub}}
        if ctx.name:
            performer["display"] = ctx.name
        out["performer"] = [performer]
    if not out.get("organization"):
        out["organization"] = [{"identifier": {"system": ODS_SYSTEM, "value": ctx.org}}]
    return narrate(out)

"""What the search and operation routes share: POST forms, the answer's outcome entries, reads.

* :func:`search_request` — FHIR's ``POST [type]/_search`` sends the parameters as an
  ``application/x-www-form-urlencoded`` body (fhir-kit-client and others use it for long
  queries); ``POST`` for an operation sends a ``Parameters`` resource (fhir-kit-client's
  default for ``$everything``). Either way the route goes on with one request whose query
  holds every parameter, so the one strict parser checks them the same as for a ``GET``.
* :func:`record_outcomes` — the OperationOutcome entries ``specs/behaviour.md`` asks for.
* :func:`read_one` — ``{Type}/{id}`` for the per-source resources (ids
  ``{source}.{personId}.{localId}``), through the same decision as every search: a resource
  the decision withheld is a ``403`` with the reasons, like ``CarePlan/{id}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request

from adapters.base import Resource
from gateway.audit import note as audit_trail
from gateway.errors import BadRequest, Forbidden, GatewayError, NotFound
from gateway.fhir.responses import FHIRResponse, merge_warning_outcome, outcome
from gateway.fhir.search import Shape, searchset
from gateway.records.access import AccessResult, RecordAccess, RequestContext

FORM: Final = "application/x-www-form-urlencoded"
JSON_TYPES: Final = frozenset({"application/fhir+json", "application/json"})
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PRIMITIVES: Final = (
    "valueString",
    "valueCode",
    "valueUri",
    "valueInteger",
    "valueDate",
    "valueDateTime",
    "valueInstant",
    "valueBoolean",
)


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "not-supported"


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _with_query(request: Request, pairs: list[tuple[str, str]]) -> Request:
    if not pairs:
        return request
    query = request.scope.get("query_string", b"").decode("latin-1")
    extra = urlencode(pairs)
    scope = {**request.scope, "query_string": "&".join(q for q in (query, extra) if q).encode()}
    return Request(scope, request.receive)


async def search_request(request: Request) -> Request:
    """``request`` itself for a ``GET``; for a ``POST`` search, one whose query also holds
    the form body's parameters (``415`` for any other body)."""
    if request.method != "POST":
        return request
    body = await request.body()
    if not body:
        return request
    if _media_type(request) != FORM:
        raise UnsupportedMediaType(f"A POST search sends its parameters as {FORM}.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The search form is not valid form-urlencoded UTF-8.") from exc
    return _with_query(request, pairs)


async def operation_request(request: Request) -> Request:
    """``request`` itself for a ``GET``; for a ``POST`` operation, one whose query also holds
    the primitive parameters of the ``Parameters`` body (an empty body is no parameters)."""
    if request.method != "POST":
        return request
    body = await request.body()
    if not body.strip():
        return request
    if _media_type(request) == FORM:
        return await search_request(request)
    if _media_type(request) not in JSON_TYPES:
        raise UnsupportedMediaType(
            "An operation's body is a FHIR Parameters resource (application/fhir+json)."
        )
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The request body is not valid JSON.") from exc
    if parsed == {}:  # an empty object, as some clients send for "no parameters"
        return request
    if not isinstance(parsed, dict) or parsed.get("resourceType") != "Parameters":
        raise BadRequest("The body of an operation must be a FHIR Parameters resource.")
    pairs: list[tuple[str, str]] = []
    for param in parsed.get("parameter") or ():
        name = param.get("name") if isinstance(param, dict) else None
        values = [param[k] for k in _PRIMITIVES if isinstance(param, dict) and k in param]
        if not isinstance(name, str) or len(values) != 1:
            raise BadRequest(
                "Each operation parameter has a name and one primitive value[x].",
                expression=["Parameters.parameter"],
            )
        value = values[0]
        pairs.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return _with_query(request, pairs)


def record_outcomes(result: AccessResult, *, warnings: bool = True) -> list[Resource]:
    """The OperationOutcome entries ``specs/behaviour.md`` asks for, in a fixed order."""
    out: list[Resource] = []
    for failed in result.failed:
        out.append(
            outcome(
                "incomplete",
                "warning",
                f"Source '{failed.source}' did not answer ({failed.outcome.value}): its records "
                "are missing from this answer.",
            )
        )
    if result.verdict.effect == "permit-filtered" and result.verdict.announce_withheld:
        out.append(
            outcome(
                "suppressed",
                "information",
                "Some information was withheld from this answer: "
                + ", ".join(result.verdict.reasons),
                reasons=result.verdict.reasons,
            )
        )
    if result.verdict.break_glass:
        out.append(
            outcome(
                "informational",
                "warning",
                "Emergency access (break-glass): this access is recorded for review by the "
                "Information Governance lead.",
                reasons=("break-glass",),
            )
        )
    if warnings:
        out.extend(merge_warning_outcome(w) for w in result.record.warnings)
    return out


def record_searchset(
    base_url: str,
    path: str,
    matches: Sequence[Resource],
    shape: Shape,
    filters: Mapping[str, str],
    result: AccessResult,
) -> FHIRResponse:
    """A search over one person's record: ``matches`` from it, ``_include`` and
    ``_revinclude`` drawn from the whole record, and its :func:`record_outcomes`."""
    bundle = searchset(
        base_url,
        path,
        matches,
        shape,
        filters=filters,
        pool=result.record.resources(),
        outcomes=record_outcomes(result),
    )
    return FHIRResponse(bundle)


def split_id(resource_id: str) -> tuple[str, str]:
    """``{source}.{personId}.{localId}`` → (source, personId), or 404 for any other shape."""
    if not _ID.fullmatch(resource_id):
        raise BadRequest("A FHIR id has 1-64 characters: letters, digits, '-' and '.'.")
    parts = resource_id.split(".")
    if len(parts) < 3:
        raise NotFound("No resource with this id.")
    return parts[0], parts[1]


async def read_one(
    kind: str, resource_id: str, ctx: RequestContext, access: RecordAccess
) -> Resource:
    """The one ``kind`` resource with this id the caller may see; ``404``/``403`` otherwise."""
    source, person_id = split_id(resource_id)
    adapter = access.adapter(source)
    if adapter is None:
        raise NotFound(f"No {kind} with this id.")
    nhs = await adapter.nhs_number_for(person_id)
    if nhs is None:
        raise NotFound(f"No {kind} with this id.")
    audit_trail.note_patient(nhs)  # whose record was read, for the audit event
    result = await access.read(ctx, nhs)
    for resource in result.record.resources():
        if resource.get("resourceType") == kind and resource.get("id") == resource_id:
            return resource
    if any(r.source == source for r in result.failed):
        raise NotFound(f"No {kind} with this id could be found; its source did not answer.")
    if f"{kind}/{resource_id}" in result.verdict.withheld and result.verdict.announce_withheld:
        # The caller has a relationship with the person (else the read was denied above) and
        # needs to know why it is not shown: 403 with the reason, never the content.
        raise Forbidden(
            f"This {kind} is withheld: " + ", ".join(result.verdict.reasons),
            reasons=result.verdict.reasons,
        )
    # Not there, or withheld from the person themself: nothing may say it exists.
    raise NotFound(f"No {kind} with this id.")

"""The body of ``POST``/``PUT /fhir/CarePlan``: read within bounds, then parsed.

======================================================================  =====  ============
the body                                                                 HTTP   issue.code
======================================================================  =====  ============
``Content-Type`` not ``application/fhir+json`` / ``application/json``    415    not-supported
longer than :data:`MAX_PLAN_BYTES` (256 KiB)                             413    too-long
not JSON, not an object, not ``resourceType`` CarePlan                   400    invalid
nested deeper than :data:`MAX_DEPTH` or more than :data:`MAX_VALUES`     422    too-costly
======================================================================  =====  ============

The size is checked while the body is read (a declared ``Content-Length`` over the limit is
refused before a byte is read), and the shape before any model walks it, so neither the
R4 model nor the rules ever recurse into a 500-deep ``extension``. What the plan must be is
:mod:`gateway.joint.rules`. 256 KiB holds a plan with hundreds of activities and notes; a
real one is a few KiB.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from fastapi import Request

from gateway.errors import (
    BadRequest,
    ResourceTooLarge,
    TooCostly,
)
from gateway.errors import UnsupportedMediaType as UnsupportedMediaType  # re-exported

MAX_PLAN_BYTES: Final = 256 * 1024
MAX_DEPTH: Final = 32
MAX_VALUES: Final = 20_000
JSON_MEDIA_TYPES: Final = frozenset({"application/fhir+json", "application/json"})
_MAX_LENGTH_DIGITS: Final = 12


PlanTooLarge = ResourceTooLarge
PlanTooCostly = TooCostly


def _too_large() -> PlanTooLarge:
    return PlanTooLarge(
        f"A CarePlan may be at most {MAX_PLAN_BYTES // 1024} KiB ({MAX_PLAN_BYTES} bytes) of JSON."
    )


async def _read_bounded(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        value = declared.strip()
        if len(value) > _MAX_LENGTH_DIGITS or (
            value.isascii() and value.isdigit() and int(value) > MAX_PLAN_BYTES
        ):
            raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PLAN_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _shape_problem(body: Any) -> str | None:
    """One bounded, iterative walk: too deep or too many values, else None."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"more than {MAX_VALUES} JSON values"
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


async def careplan_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object with ``resourceType`` CarePlan, or the error above."""
    declared = request.headers.get("content-type", "")
    if declared.split(";", 1)[0].strip().lower() not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(
            "A CarePlan must be sent as Content-Type: application/fhir+json (or application/json)."
        )
    raw = await _read_bounded(request)
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a FHIR CarePlan resource (a JSON object).")
    if body.get("resourceType") != "CarePlan":
        raise BadRequest(
            "The request body must have resourceType CarePlan.", expression=["CarePlan"]
        )
    problem = _shape_problem(body)
    if problem is not None:
        raise PlanTooCostly(f"The CarePlan is too large to check: {problem}.")
    return body

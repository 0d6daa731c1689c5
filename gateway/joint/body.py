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

from fastapi import Request

from gateway.errors import ResourceTooLarge, TooCostly
from gateway.errors import UnsupportedMediaType as UnsupportedMediaType  # re-exported
from gateway.fhir.versioned import resource_body

MAX_PLAN_BYTES: Final = 256 * 1024
MAX_DEPTH: Final = 32
MAX_VALUES: Final = 20_000


PlanTooLarge = ResourceTooLarge
PlanTooCostly = TooCostly


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
    body = await resource_body(request, "CarePlan", MAX_PLAN_BYTES, expression=["CarePlan"])
    problem = _shape_problem(body)
    if problem is not None:
        raise PlanTooCostly(f"The CarePlan is too large to check: {problem}.")
    return body

"""Search parameter checks shared by the routes.

An unsupported parameter is a ``400`` unless the caller sent ``Prefer: handling=lenient``
(FHIR's search rules), in which case it is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request

from gateway.errors import BadRequest

ALWAYS_ALLOWED = frozenset({"_format", "_pretty"})
_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})


def lenient(request: Request) -> bool:
    prefer = request.headers.get("prefer", "")
    return "handling=lenient" in prefer.replace(" ", "").lower()


def check_params(request: Request, allowed: Iterable[str]) -> None:
    allowed_set = ALWAYS_ALLOWED | frozenset(allowed)
    unknown = sorted({k for k in request.query_params if k not in allowed_set})
    if unknown and not lenient(request):
        raise BadRequest(
            f"Unsupported search parameter(s): {', '.join(unknown)}. Supported: "
            f"{', '.join(sorted(allowed_set))}. Send 'Prefer: handling=lenient' to ignore them.",
            expression=unknown,
        )
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt not in _JSON_FORMATS:
        raise BadRequest("Only JSON is supported (_format=json or application/fhir+json).")


def one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"Parameter {name} may be given only once.", expression=[name])
    return values[0] if values else None


def count_param(request: Request, default: int = 50, maximum: int = 200) -> int:
    raw = one(request, "_count")
    if raw is None:
        return default
    if not raw.isdigit():
        raise BadRequest("_count must be a whole number.", expression=["_count"])
    return max(1, min(int(raw), maximum))


def offset_param(request: Request) -> int:
    raw = one(request, "_offset")
    if raw is None:
        return 0
    if not raw.isdigit():
        raise BadRequest("_offset must be a whole number.", expression=["_offset"])
    return int(raw)

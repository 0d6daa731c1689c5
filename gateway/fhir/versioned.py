"""What the two resources the gateway itself writes and versions share: Consent and CarePlan.

Both are read from a request body the same way (``415`` unless declared JSON, ``413`` as soon
as the body is known to be over the type's limit, ``400`` unless it is one JSON object of the
type), are named by the same FHIR id, and answer ``_history`` with the same ``history``
Bundle. What differs is each type's own: its limit, the rules the body must then meet
(:mod:`gateway.routes.consent_body`, :mod:`gateway.joint.body`) and how a version is shown
(a CarePlan with its generated narrative).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson
from fastapi import Request

from adapters.base import Outcome, SourceResult
from gateway.errors import (
    BadRequest,
    ResourceTooLarge,
    ServiceUnavailable,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from gateway.fhir.responses import now_instant

JSON_MEDIA_TYPES: Final = frozenset({"application/fhir+json", "application/json"})
_MAX_LENGTH_DIGITS: Final = 12  # a Content-Length longer than this is far over any limit
_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def check_id(value: str) -> None:
    """``400`` unless ``value`` is a FHIR id (checked before it goes near a store)."""
    if not _ID.fullmatch(value):
        raise BadRequest("A FHIR id has 1-64 characters: letters, digits, '-' and '.'.")


def too_large(resource_type: str, limit: int) -> ResourceTooLarge:
    return ResourceTooLarge(
        f"A {resource_type} may be at most {limit // 1024} KiB ({limit} bytes) of JSON."
    )


def require_json(request: Request, resource_type: str) -> None:
    """``415`` unless the body is declared FHIR JSON or JSON (parameters such as charset are
    allowed; a missing ``Content-Type`` is not: the caller must say what it sends)."""
    declared = request.headers.get("content-type", "")
    if declared.split(";", 1)[0].strip().lower() not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"A {resource_type} must be sent as Content-Type: application/fhir+json "
            "(or application/json)."
        )


async def read_bounded(request: Request, resource_type: str, limit: int) -> bytes:
    """The body, or ``413`` as soon as it is known to be longer than ``limit``: a declared
    ``Content-Length`` over it before a byte is read, a body without one once it passes it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        value = declared.strip()
        if len(value) > _MAX_LENGTH_DIGITS or (
            value.isascii() and value.isdigit() and int(value) > limit
        ):
            raise too_large(resource_type, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(resource_type, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def resource_body(
    request: Request, resource_type: str, limit: int, *, expression: Sequence[str] = ()
) -> dict[str, Any]:
    """The body as one JSON object with ``resourceType`` ``resource_type``, or ``415``/``413``/
    ``400``; ``expression`` is what a wrong ``resourceType`` names."""
    require_json(request, resource_type)
    raw = await read_bounded(request, resource_type, limit)
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise BadRequest(
            f"The request body must be a FHIR {resource_type} resource (a JSON object)."
        )
    if body.get("resourceType") != resource_type:
        raise BadRequest(
            f"The request body must have resourceType {resource_type}.", expression=expression
        )
    return body


def require_known(
    results: Sequence[SourceResult], checking: str, unknown: UnprocessableEntity
) -> None:
    """Nothing unless a source holds the person the body names; ``503`` when a source did not
    answer and none holds them (they may be that source's), else ``unknown`` (422)."""
    if any(r.outcome is Outcome.FOUND for r in results):
        return
    failed = [r.source for r in results if not r.ok]
    if failed:
        raise ServiceUnavailable(
            f"Cannot check {checking}: these sources did not answer: "
            + ", ".join(failed)
            + ". Try again shortly."
        )
    raise unknown


def _as_stored(resource: dict[str, Any]) -> dict[str, Any]:
    return resource


def history_bundle(
    base_url: str,
    resource_type: str,
    versions: Sequence[dict[str, Any]],
    show: Callable[[dict[str, Any]], dict[str, Any]] = _as_stored,
) -> dict[str, Any]:
    """FHIR ``history`` Bundle (``http.html#history``), newest first: each entry says how it
    was made (the first version by ``POST``, every later one by ``PUT``); ``show`` is how a
    version is served."""
    entries = []
    for v in versions:
        first = v["meta"]["versionId"] == "1"
        entries.append(
            {
                "fullUrl": f"{base_url}/{resource_type}/{v['id']}",
                "resource": show(v),
                "request": {
                    "method": "POST" if first else "PUT",
                    "url": resource_type if first else f"{resource_type}/{v['id']}",
                },
                "response": {
                    "status": "201" if first else "200",
                    "etag": f'W/"{v["meta"]["versionId"]}"',
                    "lastModified": v["meta"]["lastUpdated"],
                },
            }
        )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now_instant()},
        "type": "history",
        "total": len(entries),
        "link": [
            {
                "relation": "self",
                "url": f"{base_url}/{resource_type}/{versions[0]['id']}/_history",
            }
        ],
        "entry": entries,
    }

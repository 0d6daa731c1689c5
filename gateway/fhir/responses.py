"""FHIR JSON responses and Bundle assembly on plain dicts (the hot path builds no models).

Everything leaves as ``application/fhir+json`` bytes from ``orjson`` with
``Cache-Control: no-store`` (care records must not sit in shared caches).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.responses import Response

from adapters.base import Resource
from gateway.errors import REASON_SYSTEM

FHIR_JSON = "application/fhir+json"
NO_STORE = {"Cache-Control": "no-store"}


class FHIRResponse(Response):
    media_type = FHIR_JSON

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None):
        super().__init__(
            content=content, status_code=status_code, headers={**NO_STORE, **(headers or {})}
        )

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)


def now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def outcome(
    code: str,
    severity: str,
    text: str,
    *,
    reasons: Sequence[str] = (),
) -> Resource:
    """An OperationOutcome with one issue; reason codes go in ``details.coding``."""
    details: dict[str, Any] = {"text": text}
    if reasons:
        details["coding"] = [{"system": REASON_SYSTEM, "code": r} for r in reasons]
    return {
        "resourceType": "OperationOutcome",
        "id": str(uuid.uuid4()),
        "issue": [{"severity": severity, "code": code, "details": details, "diagnostics": text}],
    }


class BundleBuilder:
    """Build a ``searchset`` Bundle: matches, includes, then outcome entries."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.entries: list[Resource] = []
        self.outcomes: list[Resource] = []
        self.links: list[Resource] = []

    def add(self, resource: Resource, mode: str = "match") -> None:
        self.entries.append(
            {
                "fullUrl": f"{self.base_url}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": mode},
            }
        )

    def add_all(self, resources: Iterable[Resource], mode: str = "match") -> None:
        for resource in resources:
            self.add(resource, mode)

    def add_outcome(self, oo: Resource) -> None:
        self.outcomes.append(
            {"fullUrl": f"urn:uuid:{oo['id']}", "resource": oo, "search": {"mode": "outcome"}}
        )

    def link(self, relation: str, path: str, params: dict[str, str]) -> None:
        query = urlencode(params)
        self.links.append(
            {"relation": relation, "url": f"{self.base_url}/{path}?{query}".rstrip("?")}
        )

    def build(self, total: int | None) -> Resource:
        bundle: Resource = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": now_instant()},
            "type": "searchset",
        }
        if total is not None:
            bundle["total"] = total
        if self.links:
            bundle["link"] = self.links
        entries = self.entries + self.outcomes
        if entries:
            bundle["entry"] = entries
        return bundle

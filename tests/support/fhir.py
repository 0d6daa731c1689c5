"""Assertions on the gateway's FHIR answers: content type, no caching, OperationOutcomes."""

from __future__ import annotations

from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"


def entries(bundle: dict[str, Any], mode: str | None = None) -> list[dict[str, Any]]:
    """The resources of a Bundle's entries (only those of search ``mode``, if given)."""
    return [
        e["resource"]
        for e in bundle.get("entry", ())
        if mode is None or e.get("search", {}).get("mode") == mode
    ]


def assert_fhir(resp: httpx.Response, status: int = 200) -> dict[str, Any]:
    """The JSON body of a FHIR answer with ``status``, served as FHIR JSON and never cached."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    assert resp.headers["cache-control"] == "no-store"
    body: dict[str, Any] = resp.json()
    return body


def assert_outcome(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An OperationOutcome answer with ``status`` whose first issue has ``code``."""
    body = assert_fhir(resp, status)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    return body

"""FHIR JSON responses and Bundle assembly on plain dicts (the hot path builds no models).

Everything leaves as ``application/fhir+json`` bytes from ``orjson`` with
``Cache-Control: no-store`` (care records must not sit in shared caches).
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final
from urllib.parse import urlencode

import orjson
from starlette.responses import Response

from adapters import ukcore
from adapters.base import Resource
from gateway.errors import REASON_SYSTEM
from gateway.ids import random_uuid
from gateway.records.merge import MERGE_WARNING_SYSTEM, MergeWarning

FHIR_JSON = "application/fhir+json"
NO_STORE = {"Cache-Control": "no-store"}
# On an OperationOutcome issue: a source involved, as the ``meta.source`` URI its resources carry.
EXT_ISSUE_SOURCE = "urn:caregateway:extension:issue-source"


_PLAIN_HEADERS: Final = tuple(
    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in NO_STORE.items()
)
_CONTENT_TYPE: Final = (b"content-type", FHIR_JSON.encode("latin-1"))

# Answers that are about this request, not a resource with a state: no validator.
_NOT_VERSIONED = frozenset({"Bundle", "OperationOutcome", "Parameters"})


class FHIRResponse(Response):
    """FHIR JSON; a ``200`` resource also carries a weak ``ETag`` — ``W/"<versionId>"`` when
    it has one (a Consent), else a digest of the merged content (a record assembled from the
    sources has no version of its own: the same content gives the same tag) — and
    ``Last-Modified`` from ``meta.lastUpdated``, so ``If-None-Match`` can answer ``304``."""

    media_type = FHIR_JSON

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None):
        if (
            not headers
            and 200 <= status_code
            and status_code not in (204, 304)
            and (type(content) is not dict or content.get("resourceType") in _NOT_VERSIONED)
        ):
            # The usual answer (a Bundle, an OperationOutcome): the same headers every time.
            self.status_code = status_code
            self.background = None
            self.body = body = self.render(content)
            length = (b"content-length", str(len(body)).encode("latin-1"))
            self.raw_headers = [*_PLAIN_HEADERS, length, _CONTENT_TYPE]
            return
        super().__init__(
            content=content, status_code=status_code, headers={**NO_STORE, **(headers or {})}
        )
        if (
            status_code == 200
            and isinstance(content, dict)
            and content.get("resourceType") not in _NOT_VERSIONED
        ):
            meta = content.get("meta") or {}
            if "etag" not in self.headers:
                version = meta.get("versionId")
                digest = hashlib.sha256(self.body).hexdigest()[:20]
                self.headers["ETag"] = f'W/"{version}"' if version else f'W/"{digest}"'
            modified = _http_date(meta.get("lastUpdated"))
            if modified and "last-modified" not in self.headers:
                self.headers["Last-Modified"] = modified

    def render(self, content: Any) -> bytes:
        return render_json(content)


def render_json(content: Any) -> bytes:
    """FHIR JSON bytes of ``content`` (bytes are taken as rendered already); a Bundle's
    entries from their remembered bytes (:func:`_entry_json`)."""
    if isinstance(content, bytes):
        return content
    if type(content) is dict and content.get("resourceType") == "Bundle":
        entries = content.get("entry")
        if entries:
            return orjson.dumps({**content, "entry": [_entry_json(e) for e in entries]})
    return orjson.dumps(content)


_ENTRIES_REMEMBERED = 4_096
_entries: OrderedDict[int, tuple[Resource, str, Any, orjson.Fragment]] = OrderedDict()


def _entry_json(entry: Resource) -> Any:
    """A Bundle entry as JSON, its serialised form remembered (bounded) per resource object.

    The merge hands out the same resource objects for an unchanged record
    (:func:`gateway.records.merge.merge`), and they are never changed once made, so each is
    serialised once and spliced into every answer that carries it (``orjson.Fragment``: the
    same bytes ``orjson.dumps`` would write). The memo holds the resource, so its ``id`` is
    not reused while remembered; the entry's ``fullUrl`` and ``search`` are compared too.
    OperationOutcomes are made per request and are not remembered."""
    resource = entry.get("resource")
    if type(resource) is not dict or resource.get("resourceType") == "OperationOutcome":
        return entry
    key = id(resource)
    url = entry.get("fullUrl")
    search = entry.get("search")
    held = _entries.get(key)
    if held is not None and held[0] is resource and held[1] == url and held[2] == search:
        _entries.move_to_end(key)
        return held[3]
    if entry.keys() != {"fullUrl", "resource", "search"}:
        return entry
    fragment = orjson.Fragment(orjson.dumps(entry))
    _entries[key] = (resource, str(url), search, fragment)
    while len(_entries) > _ENTRIES_REMEMBERED:
        _entries.popitem(last=False)
    return fragment


def _http_date(instant: Any) -> str | None:
    """A FHIR instant as an HTTP date (RFC 9110), or None when it is not one."""
    if not isinstance(instant, str):
        return None
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return format_datetime(moment.astimezone(UTC), usegmt=True)


@functools.lru_cache(maxsize=1024)
def _query(params: tuple[tuple[str, str | tuple[str, ...]], ...]) -> str:
    """A link's query string (``urlencode``), made once per distinct parameters: every
    page of the same search links with the same few."""
    return urlencode([(k, list(v) if isinstance(v, tuple) else v) for k, v in params], doseq=True)


def now_instant() -> str:
    """Now as a FHIR instant in UTC with milliseconds (``2026-12-01T15:40:04.123Z``); the
    text up to the second is made once a second (every answer carries one)."""
    now = time.time()
    second = int(now)
    global _second_text
    if _second_text[0] != second:
        _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_text[1]}.{int((now - second) * 1000):03d}Z"


_second_text: tuple[int, str] = (-1, "")


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
        "id": random_uuid(),
        "issue": [{"severity": severity, "code": code, "details": details, "diagnostics": text}],
    }


def merge_warning_outcome(warning: MergeWarning) -> Resource:
    """The OperationOutcome for one merge warning, readable by a program as well as a person.

    ``issue.code`` is ``informational`` for every kind (``specs/behaviour.md``), and it is also
    the right IssueType: the read succeeded and the finding is about the source data. The
    closer-sounding types describe a failed request instead (``duplicate``: a create that
    would duplicate a record; ``conflict``: a version conflict on update; ``business-rule``:
    content that breaks a rule). What kind of warning it is goes in ``details.coding``
    (:data:`~gateway.records.merge.MERGE_WARNING_SYSTEM`), the element in ``expression`` and the
    sources in ``extension`` — names only, never values from the record.
    """
    issue: dict[str, Any] = {}
    if warning.sources:
        issue["extension"] = [
            {"url": EXT_ISSUE_SOURCE, "valueUri": ukcore.source_uri(s)} for s in warning.sources
        ]
    issue["severity"] = "warning"
    issue["code"] = "informational"
    issue["details"] = {
        "coding": [{"system": MERGE_WARNING_SYSTEM, "code": warning.code}],
        "text": warning.text,
    }
    issue["diagnostics"] = warning.text
    if warning.expression:
        issue["expression"] = list(warning.expression)
    return {"resourceType": "OperationOutcome", "id": random_uuid(), "issue": [issue]}


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

    def link(self, relation: str, path: str, params: Mapping[str, str | list[str]]) -> None:
        query = _query(
            tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())
        )
        self.links.append(
            {"relation": relation, "url": f"{self.base_url}/{path}?{query}".rstrip("?")}
        )

    def build(self, total: int | None) -> Resource:
        bundle: Resource = {
            "resourceType": "Bundle",
            "id": random_uuid(),
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

"""FHIR R4 search result parameters, the same for every search the gateway offers.

A route filters (``patient``, ``status`` ...); everything after that is here, so that every
search pages, counts, sorts, includes and shapes its answer the same way (FHIR R4
``search.html``):

=================  ============================================================================
``_count``         page size; ``0`` answers the total only (no entries, no ``next`` link)
``_offset``        where the page starts (our ``next``/``previous`` links carry it)
``_summary``       ``count`` (total only), ``true`` (summary elements), ``data`` (no ``text``),
                   ``false``; subsetted resources are tagged ``SUBSETTED``
``_elements``      top-level elements to keep (plus ``id``, ``meta`` and the mandatory ones,
                   as for ``_summary=true``), tagged ``SUBSETTED``
``_total``         ``none`` leaves ``Bundle.total`` out; ``estimate``/``accurate`` give it
``_sort``          ``_lastUpdated``, ``date``, ``status``, each with ``-`` for descending
``_lastUpdated``   ``[eq|ge|gt|le|lt]date``, repeatable, all must hold (a filter)
``_include``       ``Type:param`` of a reference the gateway serves (see :data:`INCLUDES`)
``_revinclude``    ``Provenance:target`` (and the others of :data:`INCLUDES`, reversed)
=================  ============================================================================

Only matches are counted; included resources are ``search.mode = include`` and come from the
same decided record, so an include never reaches past what the decision left visible.
OperationOutcome entries about the record itself (merge warnings: a demographics conflict,
a duplicate source record) go on the first page only: they are facts about the whole answer,
and a client paging through would otherwise see each again. Those about the request — data
withheld, a source that did not answer, break-glass — are on every page they apply to: each
page is fetched and decided anew (a directive recorded between two pages applies to the
next one), so only that page can say what was left out of it.
``Bundle.link[self]`` names exactly the parameters that were applied, canonically ordered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from starlette.requests import Request

from adapters.base import Resource
from gateway.errors import BadRequest
from gateway.fhir.params import MAX_COUNT, count_param, date_range, offset_param, one, repeated
from gateway.fhir.responses import BundleBuilder
from gateway.records.merge import MERGE_WARNING_SYSTEM

SUBSETTED: Final = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
SUMMARY_VALUES: Final = ("count", "data", "false", "true")
TOTAL_VALUES: Final = ("accurate", "estimate", "none")
RESULT_PARAMS: Final = (
    "_count",
    "_offset",
    "_summary",
    "_elements",
    "_total",
    "_sort",
    "_include",
    "_revinclude",
    "_lastUpdated",
)
_ELEMENT = "[A-Za-z][A-Za-z0-9]{0,63}"

# (source type, search parameter) → (element holding the reference, target type).
INCLUDES: Final[Mapping[tuple[str, str], tuple[str, str]]] = {
    ("CarePlan", "patient"): ("subject", "Patient"),
    ("CarePlan", "subject"): ("subject", "Patient"),
    ("CarePlan", "goal"): ("goal", "Goal"),
    ("CarePlan", "care-team"): ("careTeam", "CareTeam"),
    ("CareTeam", "patient"): ("subject", "Patient"),
    ("CareTeam", "subject"): ("subject", "Patient"),
    ("Goal", "patient"): ("subject", "Patient"),
    ("Goal", "subject"): ("subject", "Patient"),
    ("Provenance", "target"): ("target", "*"),
    ("Provenance", "patient"): ("target", "Patient"),
    ("Consent", "patient"): ("patient", "Patient"),
}


def _date_key(resource: Resource) -> str:
    kind = resource.get("resourceType")
    if kind == "Provenance":
        return str(resource.get("recorded") or "")
    if kind == "Consent":
        return str(resource.get("dateTime") or "")
    if kind == "Goal":
        return str(resource.get("startDate") or resource.get("statusDate") or "")
    return str((resource.get("period") or {}).get("start") or "")


def _status_key(resource: Resource) -> str:
    return str(resource.get("status") or resource.get("lifecycleStatus") or "")


def _updated_key(resource: Resource) -> str:
    return str((resource.get("meta") or {}).get("lastUpdated") or "")


SORTS: Final[Mapping[str, Callable[[Resource], str]]] = {
    "_lastUpdated": _updated_key,
    "date": _date_key,
    "status": _status_key,
}


@dataclass(frozen=True, slots=True)
class Shape:
    """The result parameters of one search, parsed and checked."""

    count: int
    offset: int
    summary: str | None = None
    elements: tuple[str, ...] = ()
    total: str | None = None
    sort: tuple[str, ...] = ()
    last_updated: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    revinclude: tuple[str, ...] = ()
    applied: dict[str, str] = field(default_factory=dict)


def _one_of(request: Request, name: str, allowed: Sequence[str]) -> str | None:
    """The one value of ``name``, which must be one of ``allowed``, or ``400`` naming them."""
    value = one(request, name)
    if value is not None and value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}.", expression=[name])
    return value


def parse_shape(request: Request, resource_type: str, *, default_count: int = 50) -> Shape:
    """The result parameters of ``request`` (a search of ``resource_type``), or ``400``."""
    if not request.scope.get("query_string") or not request.query_params:
        return _default_shape(resource_type, default_count)
    return _parse_shape(request, resource_type, default_count)


@cache
def _default_shape(resource_type: str, default_count: int) -> Shape:
    """The shape of a request with no parameters, parsed once (a Shape is not changed by
    anything that reads it)."""
    empty = Request({"type": "http", "query_string": b"", "headers": []})
    return _parse_shape(empty, resource_type, default_count)


def _parse_shape(request: Request, resource_type: str, default_count: int) -> Shape:
    count = count_param(request, default=default_count, maximum=MAX_COUNT)
    offset = offset_param(request)
    applied: dict[str, str] = {}
    summary = _one_of(request, "_summary", SUMMARY_VALUES)
    if summary is not None:
        applied["_summary"] = summary
    elements = _elements(one(request, "_elements"))
    if elements:
        applied["_elements"] = ",".join(elements)
    total = _one_of(request, "_total", TOTAL_VALUES)
    if total is not None:
        applied["_total"] = total
    sort = _sort(one(request, "_sort"))
    if sort:
        applied["_sort"] = ",".join(sort)
    last_updated = tuple(repeated(request, "_lastUpdated"))
    for value in last_updated:
        date_range(value.strip(), "_lastUpdated")
    include = _includes(request, "_include", resource_type, reverse=False)
    revinclude = _includes(request, "_revinclude", resource_type, reverse=True)
    return Shape(
        count=0 if summary == "count" else count,
        offset=offset,
        summary=summary,
        elements=elements,
        total=total,
        sort=sort,
        last_updated=last_updated,
        include=include,
        revinclude=revinclude,
        applied=applied,
    )


def _elements(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if not names or len(names) > 64 or not all(re.fullmatch(_ELEMENT, n) for n in names):
        raise BadRequest(
            "_elements is a comma-separated list of top-level element names.",
            expression=["_elements"],
        )
    return names


def _sort(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys or any(k.removeprefix("-") not in SORTS for k in keys):
        raise BadRequest(
            f"_sort takes {', '.join(SORTS)} (each may start with '-' for descending).",
            expression=["_sort"],
        )
    return keys


def _includes(request: Request, name: str, resource_type: str, *, reverse: bool) -> tuple[str, ...]:
    out: list[str] = []
    for value in repeated(request, name):
        parts = value.split(":")
        if len(parts) == 3:  # Type:param:targetType
            parts = parts[:2] if parts[2] in ("Patient", "CarePlan", "Goal", "CareTeam") else []
        key = (parts[0], parts[1]) if len(parts) == 2 else None
        served = key in INCLUDES
        if served and key is not None:
            target = INCLUDES[key][1]
            served = (
                (key[0] == resource_type)
                if not reverse
                else (target in ("*", resource_type) and key[0] != resource_type)
            )
        if not served:
            offered = sorted(
                f"{s}:{p}"
                for (s, p), (_, t) in INCLUDES.items()
                if (s == resource_type if not reverse else t in ("*", resource_type))
            )
            raise BadRequest(
                f"{name} on {resource_type} may be one of: {', '.join(offered) or 'none'}.",
                expression=[name],
            )
        out.append(f"{parts[0]}:{parts[1]}")
    return tuple(dict.fromkeys(out))


# --- applying them --------------------------------------------------------------------------


def _matches_dates(resource: Resource, values: Sequence[str]) -> bool:
    stamp = _updated_key(resource)
    if not stamp:
        return False
    _, at, _ = date_range(stamp.replace("+00:00", "Z"), "_lastUpdated")
    for value in values:
        prefix, start, end = date_range(value.strip(), "_lastUpdated")
        ok = {
            "eq": start <= at <= end,
            "ge": at >= start,
            "gt": at > end,
            "le": at <= end,
            "lt": at < start,
        }[prefix]
        if not ok:
            return False
    return True


def select(matches: Sequence[Resource], shape: Shape) -> list[Resource]:
    """The matches left by ``_lastUpdated``, in ``_sort`` order (stable; no value sorts last)."""
    out = [r for r in matches if not shape.last_updated or _matches_dates(r, shape.last_updated)]
    for key in reversed(shape.sort):
        descending = key.startswith("-")
        extract = SORTS[key.removeprefix("-")]
        present = [r for r in out if extract(r)]
        absent = [r for r in out if not extract(r)]
        present.sort(key=extract, reverse=descending)
        out = present + absent
    return out


def _refs(resource: Resource, element: str) -> list[str]:
    """The literal references in ``element``, as ``Type/id``: a version-specific one (a joint
    plan's Provenance targets ``CarePlan/{id}/_history/{v}``) names the same resource."""
    value = resource.get(element)
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    refs = [str(i["reference"]) for i in items if isinstance(i, dict) and i.get("reference")]
    return [r.split("/_history/", 1)[0] for r in refs]


def included(page: Sequence[Resource], shape: Shape, pool: Sequence[Resource]) -> list[Resource]:
    """Resources of ``pool`` (the decided record) that the page's ``_include``/``_revinclude``
    name, not already in the page, each once."""
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in pool}
    page_keys = {f"{r['resourceType']}/{r['id']}" for r in page}
    out: dict[str, Resource] = {}
    for spec in shape.include:
        source, param = spec.split(":")
        element, target = INCLUDES[(source, param)]
        for resource in page:
            for ref in _refs(resource, element):
                if target in ("*", ref.split("/", 1)[0]) and ref in by_key:
                    out.setdefault(ref, by_key[ref])
    for spec in shape.revinclude:
        source, param = spec.split(":")
        element, _ = INCLUDES[(source, param)]
        for resource in pool:
            if resource.get("resourceType") != source:
                continue
            if page_keys & set(_refs(resource, element)):
                out.setdefault(f"{source}/{resource['id']}", resource)
    return [r for k, r in out.items() if k not in page_keys]


def _subsetted(resource: Resource, keep: set[str]) -> Resource:
    out = {k: v for k, v in resource.items() if k in keep or k in ("resourceType", "id", "meta")}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*meta.get("tag", ()), SUBSETTED]
    out["meta"] = meta
    return out


@cache
def _mandatory(resource_type: str) -> frozenset[str]:
    """The top-level elements of ``resource_type`` with a minimum cardinality of 1: a
    subset keeps them whatever was asked (R4 ``search.html#elements``: servers SHOULD return
    mandatory elements), so the subset is still a valid resource."""
    model = get_fhir_model_class(resource_type)
    out = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if info.is_required() or extra.get("element_required"):
            out.add(info.alias or name)
    return frozenset(out)


def shaped(resource: Resource, shape: Shape) -> Resource:
    """``resource`` as ``_summary``/``_elements`` ask (unchanged when neither does)."""
    kind = str(resource["resourceType"])
    if shape.summary == "true":
        model = get_fhir_model_class(kind)
        return _subsetted(resource, set(model.summary_elements_sequence()) | _mandatory(kind))
    if shape.summary == "data":
        return _subsetted(resource, set(resource) - {"text"})
    if shape.elements:
        return _subsetted(resource, set(shape.elements) | _mandatory(kind))
    return resource


def _about_the_record(oo: Resource) -> bool:
    """A merge warning (``urn:caregateway:merge-warning``), not a finding about this request."""
    return any(
        c.get("system") == MERGE_WARNING_SYSTEM
        for issue in oo.get("issue", ())
        for c in issue.get("details", {}).get("coding", ())
    )


def searchset(
    base_url: str,
    path: str,
    matches: Sequence[Resource],
    shape: Shape,
    *,
    filters: Mapping[str, str],
    pool: Sequence[Resource] = (),
    outcomes: Sequence[Resource] = (),
) -> Resource:
    """The searchset Bundle of one page: matches (shaped), includes, then ``outcomes``
    (merge warnings on the first page only); ``self``/``next``/``previous`` links carry
    ``filters`` (the applied filters, as the route canonicalised them) and the applied
    result parameters."""
    chosen = select(matches, shape)
    page = chosen[shape.offset : shape.offset + shape.count] if shape.count else []
    bundle = BundleBuilder(base_url)
    params: dict[str, Any] = {**filters}
    if shape.last_updated:
        params["_lastUpdated"] = list(shape.last_updated)
    params.update(shape.applied)
    for spec_name, specs in (("_include", shape.include), ("_revinclude", shape.revinclude)):
        if specs:
            params[spec_name] = list(specs)
    paging = {"_count": str(shape.count)} if shape.summary != "count" else {}
    bundle.link("self", path, {**params, **paging, "_offset": str(shape.offset)})
    if shape.count and shape.offset + shape.count < len(chosen):
        bundle.link("next", path, {**params, **paging, "_offset": str(shape.offset + shape.count)})
    if shape.count and shape.offset > 0:
        previous = str(max(0, shape.offset - shape.count))
        bundle.link("previous", path, {**params, **paging, "_offset": previous})
    bundle.add_all(shaped(r, shape) for r in page)
    bundle.add_all((shaped(r, shape) for r in included(page, shape, pool)), mode="include")
    for oo in outcomes:
        if shape.offset == 0 or not _about_the_record(oo):
            bundle.add_outcome(oo)
    return bundle.build(total=None if shape.total == "none" else len(chosen))

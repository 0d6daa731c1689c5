"""The audit trail for IG leads: search, access report, break-glass review, privacy alerts.

======================================  ==================================================
``GET /fhir/AuditEvent``                search the trail → searchset Bundle, newest first
``GET /fhir/Patient/{nhs}/$access-report``  every AuditEvent about the person (a subject
                                        access request) → Bundle, or CSV with
                                        ``_format=text/csv`` / ``Accept: text/csv``
``POST /fhir/AuditEvent/{id}/$review``  record ``appropriate`` / ``inappropriate`` + note
                                        → the review as ``Parameters``
``GET /fhir/$break-glass-queue``        break-glass AuditEvents without a review, oldest
                                        first → searchset Bundle
``GET /fhir/$privacy-alerts``           monitoring alerts (``DetectedIssue``) over the
                                        events since ``since`` (default: the last 24 hours)
======================================  ==================================================

Only roles whose policy rule has ``may_read_audit`` (``R0001``, ``R5105`` by default) get
past the role check (``403 role-not-permitted``), and only for a purpose their rule allows
(``HOPERAT``; else ``403 purpose-not-permitted``). Searches need a scope that allows searching
AuditEvent (``user/AuditEvent.rs`` or ``user/*.rs``); ``$review`` writes, so it needs create
(``user/AuditEvent.c``). Every one of these requests is itself audited by the app's middleware,
so reading the trail leaves a trace in the trail.

AuditEvent search parameters: ``patient`` (NHS number, ``Patient/{nhs}`` or
``system|nhs``), ``agent`` (the user's token ``sub``, or ``system|sub``), ``agent-org`` (ODS
code), ``date`` (``ge``/``gt``/``le``/``lt``/``eq`` prefixes, repeatable; a bare date means
that whole UTC day), ``outcome`` (``0``/``4``/``8``/``12``), ``purpose`` (PurposeOfUse code),
``break-glass`` (``true``/``false``), ``_count`` (default 50, max 200), ``_offset``. The
review state is not a search parameter: the unreviewed break-glass events are
``$break-glass-queue`` (reviews are in table ``audit_review``, see :mod:`gateway.audit.reviews`).

The access report lists every event about the person, newest first (at most
:data:`REPORT_MAX`; a warning entry says when more exist), including IG reads of the
person's trail: those are accesses to information about the person too. CSV rows follow
:data:`gateway.audit.CSV_COLUMNS` (:mod:`gateway.audit.report`).

``$privacy-alerts`` runs the monitoring rules (:mod:`gateway.audit.monitoring`) and looks up
each person's surname and deceased flag from the sources (at most
:data:`~gateway.audit.monitoring.FACTS_MAX` people; used only inside the gateway, never
returned) for the surname-match and deceased rules; a person no source answers for is
skipped by those two.

This module is the HTTP side only: parameters, the role check and the Bundles. What an event
says, how reviews are stored and what the rules find are the audit package's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from adapters import ukcore
from adapters.base import Outcome
from gateway.audit import (
    AuditStore,
    MonitoringConfig,
    ReviewStore,
    access_report_csv,
    alert_resource,
    gather_facts,
    parse_review,
    review_parameters,
    run_rules,
)
from gateway.audit import note as audit_trail
from gateway.deps import StateDep, gate, parse_nhs_number, patient_reference_value, policy_of
from gateway.errors import BadRequest, Forbidden, GatewayError, NotFound
from gateway.fhir.params import (
    JSON_FORMATS,
    MAX_TEXT,
    check_params,
    choice,
    count_param,
    date_bounds,
    instant_param,
    offset_param,
    one,
    repeated,
    text,
    token,
)
from gateway.fhir.responses import NO_STORE, BundleBuilder, FHIRResponse
from gateway.fhir.responses import outcome as operation_outcome
from gateway.fhir.versioned import check_id
from gateway.policy.decision import requester
from gateway.records.access import RequestContext
from gateway.routes import patient_log
from gateway.state import GatewayState

router = APIRouter(prefix="/fhir")

AuditSearch = Annotated[RequestContext, Depends(gate("AuditEvent", "search"))]
AuditCreate = Annotated[RequestContext, Depends(gate("AuditEvent", "create"))]

SEARCH_PARAMS: Final = (
    "patient",
    "agent",
    "agent-org",
    "date",
    "outcome",
    "purpose",
    "break-glass",
    "_count",
    "_offset",
)
CSV_TYPES: Final = frozenset({"text/csv", "csv"})
REPORT_MAX: Final = 10_000  # events in one access report
ALERT_WINDOW_MAX: Final = 50_000  # events the monitoring rules look at in one request
MAX_SUB: Final = 255  # the width of the trail's agent column (a token's ``sub``)
_OUTCOMES: Final = frozenset({"0", "4", "8", "12"})
_BOOLEANS: Final = ("true", "false")


# --- state and the role check -----------------------------------------------------------


def _audit(state: GatewayState) -> AuditStore:
    if state.audit is None:
        raise GatewayError("The audit trail is not configured.")
    return state.audit


def _reviews(request: Request, state: GatewayState) -> ReviewStore:
    """The state's :class:`ReviewStore`, on the audit trail's database."""
    engine = _audit(state).engine
    if state.reviews is None or state.reviews.engine is not engine:
        state.reviews = ReviewStore(engine)  # a gateway built from parts, without one
    return state.reviews


def require_ig(state: GatewayState, ctx: RequestContext) -> None:
    """``403 role-not-permitted`` unless the policy lets this role read the audit trail."""
    policy = policy_of(state)
    who = requester(ctx)
    if not policy.may_read_audit(who):
        raise Forbidden("This role may not read the audit trail.", reasons=["role-not-permitted"])
    rule = policy.rule_for(who)
    if rule is None or not rule.allows_purpose(ctx.purpose):
        raise Forbidden(
            "The audit trail may be read only for information governance (purpose HOPERAT).",
            reasons=["purpose-not-permitted"],
        )


async def _ig_searcher(ctx: AuditSearch, state: StateDep) -> RequestContext:
    require_ig(state, ctx)
    return ctx


async def _ig_reviewer(ctx: AuditCreate, state: StateDep) -> RequestContext:
    require_ig(state, ctx)
    return ctx


IGCaller = Annotated[RequestContext, Depends(_ig_searcher)]
"""An IG caller reading the audit trail: the gate, then :func:`require_ig` (403 otherwise)."""
IGReviewer = Annotated[RequestContext, Depends(_ig_reviewer)]
"""An IG caller recording a review (``AuditEvent`` create scope), checked as :data:`IGCaller`."""


def monitoring_config(state: GatewayState) -> MonitoringConfig:
    """The state's privacy-alert rules (``CAREGW_OUT_OF_HOURS`` ..., read by ``build_state``)."""
    if state.monitoring is None:
        raise GatewayError("Monitoring settings are not configured.")
    return state.monitoring


# --- parameters --------------------------------------------------------------------------


def _patient_param(request: Request, value: str, name: str = "patient") -> str:
    raw = text(value, name, max_chars=MAX_TEXT)
    if "://" in raw and "|" not in raw:
        return parse_nhs_number(patient_reference_value(request, raw, name), name)
    system, _, rest = raw.rpartition("|")
    if system and system != ukcore.NHS_NUMBER_SYSTEM:
        raise BadRequest(f"{name} must be an NHS number.", expression=[name])
    return parse_nhs_number(rest.removeprefix("Patient/"), name)


def _search_filters(request: Request) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The store's filters and the normalised parameters (for the Bundle's links)."""
    filters: dict[str, Any] = {}
    echo: list[tuple[str, str]] = []

    def take(name: str, key: str, parse: Callable[[str], Any]) -> None:
        value = one(request, name)
        if value is not None:
            filters[key] = parse(value)
            echo.append((name, value))

    patient = one(request, "patient")
    if patient is not None:
        filters["patient"] = _patient_param(request, patient)
        echo.append(("patient", filters["patient"]))
    take("agent", "agent", lambda v: token(v, "agent", max_chars=MAX_SUB)[1])
    take("agent-org", "agent_org", lambda v: token(v, "agent-org")[1])
    dates = repeated(request, "date")
    if dates:
        filters["date_ge"], filters["date_le"] = date_bounds(dates)
        echo.extend(("date", d) for d in dates)
    take("outcome", "outcome", lambda v: choice(v, "outcome", _OUTCOMES))
    take("purpose", "purpose", lambda v: token(v, "purpose")[1])
    take("break-glass", "break_glass", lambda v: choice(v, "break-glass", _BOOLEANS) == "true")
    return filters, echo


def _page_links(
    bundle: BundleBuilder,
    path: str,
    echo: list[tuple[str, str]],
    count: int,
    offset: int,
    total: int,
) -> None:
    def url(at: int) -> str:
        query = urlencode([*echo, ("_count", str(count)), ("_offset", str(at))])
        return f"{bundle.base_url}/{path}?{query}"

    bundle.links.append({"relation": "self", "url": url(offset)})
    if count and offset + count < total:  # _count=0: the total only, no pages to follow
        bundle.links.append({"relation": "next", "url": url(offset + count)})
    if count and offset > 0:
        bundle.links.append({"relation": "previous", "url": url(max(0, offset - count))})


# --- routes ------------------------------------------------------------------------------


@router.get("/AuditEvent")
async def search_audit_events(ctx: AuditSearch, state: StateDep, request: Request) -> FHIRResponse:
    if ctx.client_kind == "patient":  # "who has looked at my record": gateway.routes.patient_log
        return await _own_access_log(ctx, state, request)
    require_ig(state, ctx)
    check_params(request, SEARCH_PARAMS)
    filters, echo = _search_filters(request)
    count, offset = count_param(request), offset_param(request)
    store = _audit(state)
    total = await store.count(**filters)
    found = await store.search(**filters, count=count, offset=offset)
    bundle = BundleBuilder(state.base_url)
    _page_links(bundle, "AuditEvent", echo, count, offset, total)
    bundle.add_all(found)
    return FHIRResponse(bundle.build(total=total))


async def _own_access_log(
    ctx: RequestContext, state: GatewayState, request: Request
) -> FHIRResponse:
    policy = policy_of(state)
    check_params(request, patient_log.PARAMS)
    raw = one(request, "patient")
    nhs = _patient_param(request, raw) if raw is not None else None
    dates = repeated(request, "date")
    bounds = date_bounds(dates) if dates else None
    count, offset = count_param(request), offset_param(request)
    return await patient_log.patient_access_log(
        ctx, state, policy, _audit(state), nhs, bounds, count, offset
    )


def _wants_csv(request: Request) -> bool:
    fmt = request.query_params.get("_format")
    if fmt is not None:
        return fmt.split(";")[0].strip().lower() in CSV_TYPES
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/csv" for part in accept.split(","))


@router.get("/Patient/{nhs}/$access-report")
async def access_report(nhs: str, ctx: IGCaller, state: StateDep, request: Request) -> Response:
    check_params(request, (), formats=JSON_FORMATS | CSV_TYPES)
    number = parse_nhs_number(nhs)
    store = _audit(state)
    total = await store.count(patient=number)
    events = await store.search(patient=number, count=REPORT_MAX)
    if _wants_csv(request):
        return Response(
            access_report_csv(events).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={
                **NO_STORE,
                "Content-Disposition": 'attachment; filename="access-report.csv"',
            },
        )
    bundle = BundleBuilder(state.base_url)
    bundle.link("self", f"Patient/{number}/$access-report", {})
    bundle.add_all(events)
    if total > len(events):
        bundle.add_outcome(
            operation_outcome(
                "too-costly",
                "warning",
                f"Only the newest {len(events)} of {total} events are listed; search "
                "/AuditEvent?patient=... with date and paging for the rest.",
            )
        )
    return FHIRResponse(bundle.build(total=total))


async def _review_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The request body is not valid JSON.") from exc


@router.post("/AuditEvent/{event_id}/$review")
async def review_event(
    event_id: str, ctx: IGReviewer, state: StateDep, request: Request
) -> FHIRResponse:
    check_params(request, ())
    check_id(event_id)
    outcome, note = parse_review(await _review_body(request))
    event = await _audit(state).get(event_id)
    if event is None:
        raise NotFound("No AuditEvent with this id.")
    note_ = audit_trail.current()
    if note_ is not None:  # the $review request's own AuditEvent points at the reviewed event
        note_.resource_ids = (f"AuditEvent/{event_id}",)
    review = await _reviews(request, state).add(
        event_id, reviewer_sub=ctx.sub, reviewer_org=ctx.org, outcome=outcome, note=note
    )
    return FHIRResponse(review_parameters(review, ctx.name))


@router.get("/$break-glass-queue")
async def break_glass_queue(ctx: IGCaller, state: StateDep, request: Request) -> FHIRResponse:
    check_params(request, ("_count", "_offset"))
    count, offset = count_param(request), offset_param(request)
    reviews = _reviews(request, state)
    total = await reviews.break_glass_queue_size()
    found = await reviews.break_glass_queue(count=count, offset=offset)
    bundle = BundleBuilder(state.base_url)
    _page_links(bundle, "$break-glass-queue", [], count, offset, total)
    bundle.add_all(found)
    return FHIRResponse(bundle.build(total=total))


async def _facts_of(state: GatewayState, nhs: str) -> Sequence[Mapping[str, Any]]:
    """What the sources found about one person (for the surname and deceased rules)."""
    results = await state.access.source_results(nhs)
    return [res for r in results if r.outcome is Outcome.FOUND for res in r.resources]


@router.get("/$privacy-alerts")
async def privacy_alerts(ctx: IGCaller, state: StateDep, request: Request) -> FHIRResponse:
    check_params(request, ("since",))
    now = datetime.now(UTC)
    since_raw = one(request, "since")
    since = instant_param(since_raw, "since") if since_raw else now - timedelta(hours=24)
    config = monitoring_config(state)
    events = await _audit(state).search(date_ge=since, count=ALERT_WINDOW_MAX)
    facts = await gather_facts(events, lambda nhs: _facts_of(state, nhs))
    alerts = run_rules(events, config, facts)
    bundle = BundleBuilder(state.base_url)
    bundle.link("self", "$privacy-alerts", {"since": since.isoformat()})
    bundle.add_all(alert_resource(a, now) for a in alerts)
    return FHIRResponse(bundle.build(total=len(alerts)))

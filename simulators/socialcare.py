"""Simulated council adult social care API (``specs/social-care-api.md``), a real FastAPI app.

Data endpoints (all need ``X-Api-Key``; a missing or wrong key gets ``401``
``{"error": "unauthorized"}``):

=====================================  ==================================================
``GET /people?nhsNumber={10 digits}``  people whose stored NHS number, with spaces and
                                       dashes removed, equals it; stored values that are
                                       not ten digits or fail Modulus 11 never match
``GET /people/{personId}``             one Person (``404 {"error": "not_found"}``)
``GET /people/{personId}/support-plans``  SupportPlans of every status, pages of
                                       :data:`PLAN_PAGE_SIZE`
``GET /people/{personId}/involvements``   workers allocated, current and historic, pages of
                                       :data:`INVOLVEMENT_PAGE_SIZE`
``GET /changes?since={RFC 3339}``      ``{"personId", "nhsNumber", "changedAt"}`` for
                                       records changed after ``since``, oldest first
=====================================  ==================================================

Lists are ``{"items": [...], "next": cursor | null}``; pass ``cursor=<next>`` for the next
page (an unknown cursor gets ``400 {"error": "bad_cursor"}``). Small page sizes are
deliberate, so clients must page.

Fault control is described in :mod:`simulators.control`. This simulator adds
``POST /_control/touch/{personId}``: record a change to that person now, so it shows in
``/changes`` (and in the Person's ``lastUpdated``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from simulators._http import JSONBytes, decode_cursor, encode_cursor, iso_date, rfc3339
from simulators.control import CONTROL_PREFIX, ControlState, FaultMiddleware, control_router
from simulators.model import (
    CouncilPerson,
    Frequency,
    Involvement,
    Population,
    SupportPlan,
    Worker,
)
from vocabulary import NHS_NUMBER_RE as _TEN_DIGITS

__all__ = ["DEFAULT_API_KEY", "PLAN_PAGE_SIZE", "create_app"]

DEFAULT_API_KEY = "demo-social-care-key"
PEOPLE_PAGE_SIZE = 10
PLAN_PAGE_SIZE = 2
INVOLVEMENT_PAGE_SIZE = 2
CHANGES_PAGE_SIZE = 100
Cursor = Annotated[str | None, Query()]


class SourceError(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


def _error(status: int, retry_after_s: int | None = None) -> Response:
    code = {401: "unauthorized", 404: "not_found", 429: "too_many_requests",
            503: "unavailable"}.get(status, "error")
    return JSONBytes({"error": code}, status_code=status)


# --- serialisation (vendor JSON shape) --------------------------------------------------


def person_json(person: CouncilPerson, last_updated: datetime | None = None) -> dict[str, Any]:
    name = person.name
    return {
        "personId": person.person_id,
        "nhsNumber": person.nhs_number,
        "nhsNumberStatus": person.nhs_number_status,
        "name": {"title": name.title, "given": list(name.given), "family": name.family,
                 "preferred": name.preferred},
        "birthDate": person.birth_date.isoformat(),
        "deathDate": iso_date(person.death_date),
        "gender": person.gender,
        "ethnicity": person.ethnicity,
        "addresses": [
            {"use": a.use, "lines": list(a.lines), "town": a.town, "postcode": a.postcode,
             "from": iso_date(a.start), "to": iso_date(a.end)}
            for a in person.addresses
        ],
        "telecom": (
            [{"system": "phone", "value": person.phone, "use": "home"}] if person.phone else []
        ),
        "gp": {"odsCode": person.gp.ods_code, "name": person.gp.name} if person.gp else None,
        "primarySupportReason": (
            {"code": person.primary_support_reason[0], "text": person.primary_support_reason[1]}
            if person.primary_support_reason
            else None
        ),
        "restricted": person.restricted,
        "lastUpdated": rfc3339(last_updated or person.last_updated),
    }


def _frequency(freq: Frequency | str | None) -> dict[str, Any] | str | None:
    if isinstance(freq, Frequency):
        return {"count": freq.count, "period": freq.period}
    return freq


def worker_json(w: Worker) -> dict[str, Any]:
    """A member of staff as the API names one: a plan's author, an involvement's worker."""
    return {"staffId": w.staff_id, "name": w.name, "role": w.role, "team": w.team}


def plan_json(plan: SupportPlan) -> dict[str, Any]:
    return {
        "planId": plan.plan_id,
        "personId": plan.person_id,
        "planType": plan.plan_type,
        "status": plan.status,
        "title": plan.title,
        "start": plan.start.isoformat(),
        "end": iso_date(plan.end),
        "nextReview": iso_date(plan.next_review),
        "createdBy": worker_json(plan.created_by),
        "needs": [{"domain": n.domain, "description": n.description} for n in plan.needs],
        "outcomes": [{"description": o.description, "status": o.status} for o in plan.outcomes],
        "services": [
            {
                "serviceId": s.service_id,
                "serviceType": s.service_type,
                "description": s.description,
                "provider": {"name": s.provider_name, "cqcLocationId": s.cqc_location_id},
                "frequency": _frequency(s.frequency),
                "start": s.start.isoformat(),
                "end": iso_date(s.end),
                "status": s.status,
            }
            for s in plan.services
        ],
        "confidentiality": plan.confidentiality,
        "lastUpdated": rfc3339(plan.last_updated),
    }


def involvement_json(inv: Involvement) -> dict[str, Any]:
    return {
        **worker_json(inv.worker),
        "organisation": {"odsCode": inv.organisation_ods, "name": inv.organisation_name},
        "start": inv.start.isoformat(),
        "end": iso_date(inv.end),
        "isLead": inv.is_lead,
    }


# --- state ------------------------------------------------------------------------------


@dataclass
class _Change:
    person_id: str
    nhs_number: str | None
    changed_at: datetime

    def json(self) -> dict[str, Any]:
        return {"personId": self.person_id, "nhsNumber": self.nhs_number,
                "changedAt": rfc3339(self.changed_at)}


@dataclass
class _State:
    population: Population
    control: ControlState = field(default_factory=ControlState)
    touched: dict[str, datetime] = field(default_factory=dict)
    changes: list[_Change] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.changes = sorted(
            (_Change(p.person_id, p.nhs_number, p.last_updated)
             for p in self.population.council_people),
            key=lambda c: c.changed_at,
        )

    def person(self, person_id: str) -> CouncilPerson:
        person = self.population.council_person(person_id)
        if person is None:
            raise SourceError(404, "not_found")
        return person


def _page(items: Sequence[dict[str, Any]], cursor: str | None, size: int) -> dict[str, Any]:
    offset = decode_cursor(cursor)
    if offset is None:
        raise SourceError(400, "bad_cursor")
    end = offset + size
    return {"items": list(items[offset:end]), "next": encode_cursor(end) if end < len(items)
            else None}


def create_app(population: Population, api_key: str = DEFAULT_API_KEY) -> FastAPI:
    """The social care simulator as an ASGI app serving ``population``."""
    state = _State(population)

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if x_api_key is None or not secrets.compare_digest(x_api_key.encode(), api_key.encode()):
            raise SourceError(401, "unauthorized")

    app = FastAPI(title="Simulated social care API", openapi_url=None)
    app.add_middleware(FaultMiddleware, state=state.control, error=_error)

    @app.exception_handler(SourceError)
    async def source_error(_: Request, exc: SourceError) -> Response:
        return JSONBytes({"error": exc.code}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return JSONBytes({"error": "bad_request"}, status_code=400)

    Auth = Depends(require_key)

    @app.get("/people", dependencies=[Auth])
    async def search_people(
        nhs: Annotated[str, Query(alias="nhsNumber")], cursor: Cursor = None
    ) -> Response:
        if not _TEN_DIGITS.fullmatch(nhs):
            raise SourceError(400, "bad_request")
        found = [person_json(p, state.touched.get(p.person_id))
                 for p in population.council_people_with(nhs)]
        return JSONBytes(_page(found, cursor, PEOPLE_PAGE_SIZE))

    @app.get("/people/{person_id}", dependencies=[Auth])
    async def read_person(person_id: str) -> Response:
        person = state.person(person_id)
        return JSONBytes(person_json(person, state.touched.get(person_id)))

    @app.get("/people/{person_id}/support-plans", dependencies=[Auth])
    async def read_support_plans(person_id: str, cursor: Cursor = None) -> Response:
        state.person(person_id)
        plans = [plan_json(p) for p in population.support_plans.get(person_id, ())]
        return JSONBytes(_page(plans, cursor, PLAN_PAGE_SIZE))

    @app.get("/people/{person_id}/involvements", dependencies=[Auth])
    async def read_involvements(person_id: str, cursor: Cursor = None) -> Response:
        state.person(person_id)
        found = [involvement_json(i) for i in population.involvements.get(person_id, ())]
        return JSONBytes(_page(found, cursor, INVOLVEMENT_PAGE_SIZE))

    @app.get("/changes", dependencies=[Auth])
    async def read_changes(since: str, cursor: Cursor = None) -> Response:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError as exc:
            raise SourceError(400, "bad_request") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        items = [c.json() for c in state.changes if c.changed_at > moment]
        return JSONBytes(_page(items, cursor, CHANGES_PAGE_SIZE))

    @app.post(CONTROL_PREFIX + "/touch/{person_id}")
    async def touch_person(person_id: str) -> Response:
        person = state.person(person_id)
        now = datetime.now(UTC)
        state.touched[person_id] = now
        change = _Change(person_id, person.nhs_number, now)
        state.changes.append(change)
        return JSONBytes(change.json())

    app.include_router(control_router(state.control))
    return app

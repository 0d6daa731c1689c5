"""Simulated community health FHIR STU3 API (``specs/community-fhir-stu3.md``), a real FastAPI app.

Every data request needs ``Authorization: Bearer <token>``; otherwise ``401``. Responses are
STU3 JSON with content type ``application/fhir+json``; errors are STU3 ``OperationOutcome``.

==========================================================  ==================================
``GET /Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}``  CareConnect Patients
``GET /Patient/{id}``                                       one Patient
``GET /CarePlan?subject=Patient/{id}``                      CarePlans of every status, pages
                                                            of :data:`CAREPLAN_PAGE_SIZE`;
                                                            ``_include=CarePlan:care-team``
                                                            adds the referenced CareTeams
``GET /CareTeam?subject=Patient/{id}``                      CareTeams with participants
``GET /Organization/{id}``, ``GET /Practitioner/{id}``      referenced resources
==========================================================  ==================================

Searches return ``Bundle`` (``searchset``, ``total``) and page through
``link[relation=next]`` (``_count`` and ``_offset`` in the URL; ``patient=`` is accepted as
well as ``subject=``). Some CarePlans and CareTeams carry their Practitioner and Organization
as ``contained`` resources, others reference them.

Fault control is described in :mod:`simulators.control`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from adapters.nhs_number import NHS_NUMBER_SYSTEM
from simulators import _stu3
from simulators._http import FHIRJSON, rfc3339
from simulators.control import ControlState, FaultMiddleware, control_router
from simulators.model import Population

__all__ = ["CAREPLAN_PAGE_SIZE", "DEFAULT_BEARER_TOKEN", "create_app"]

DEFAULT_BEARER_TOKEN = "demo-community-token"
PATIENT_PAGE_SIZE = 10
CAREPLAN_PAGE_SIZE = 2
CARETEAM_PAGE_SIZE = 2
MAX_COUNT = 100

AuthHeader = Annotated[str | None, Header()]
Count = Annotated[int | None, Query(alias="_count", ge=1, le=MAX_COUNT)]
Offset = Annotated[int, Query(alias="_offset", ge=0)]
Include = Annotated[str | None, Query(alias="_include")]

_ISSUE_CODES = {400: "invalid", 401: "security", 403: "forbidden", 404: "not-found",
                429: "throttled", 503: "transient"}


class FHIRError(Exception):
    def __init__(self, status: int, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics


def _outcome(status: int, diagnostics: str) -> Response:
    body = _stu3.operation_outcome(_ISSUE_CODES.get(status, "exception"), diagnostics)
    return FHIRJSON(body, status_code=status)


def _fault(status: int, retry_after_s: int | None = None) -> Response:
    return _outcome(status, "simulated source fault")


@dataclass(frozen=True, slots=True)
class SubjectSearch:
    """What a CarePlan or CareTeam search asks for: the caller's token, the patient
    (``subject=`` or ``patient=``), ``_include`` and the page."""

    authorization: str | None
    subject: str | None
    include: str | None
    count: int | None
    offset: int

    def patient_id(self) -> str:
        if not self.subject:
            raise FHIRError(400, "search needs subject=Patient/{id}")
        return self.subject.removeprefix("Patient/")


def _subject_search(
    authorization: AuthHeader = None,
    subject: str | None = None,
    patient: str | None = None,
    include: Include = None,
    count: Count = None,
    offset: Offset = 0,
) -> SubjectSearch:
    return SubjectSearch(authorization, subject or patient, include, count, offset)


Search = Annotated[SubjectSearch, Depends(_subject_search)]


def _bundle(
    request: Request,
    matches: list[dict[str, Any]],
    offset: int,
    count: int,
    include: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> Response:
    base = str(request.base_url)
    page = matches[offset : offset + count]
    entries = [
        {"fullUrl": f"{base}{r['resourceType']}/{r['id']}", "resource": r,
         "search": {"mode": "match"}}
        for r in page
    ]
    if include is not None:
        entries.extend(
            {"fullUrl": f"{base}{r['resourceType']}/{r['id']}", "resource": r,
             "search": {"mode": "include"}}
            for r in include(page)
        )
    links = [{"relation": "self", "url": str(request.url)}]
    if offset + count < len(matches):
        nxt = request.url.include_query_params(_offset=offset + count, _count=count)
        links.append({"relation": "next", "url": str(nxt)})
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": rfc3339(datetime.now(UTC))},
        "type": "searchset",
        "total": len(matches),
        "link": links,
        "entry": entries,
    }
    return FHIRJSON(bundle)


def create_app(population: Population, bearer_token: str = DEFAULT_BEARER_TOKEN) -> FastAPI:
    """The community simulator as an ASGI app serving ``population``."""
    control = ControlState()
    expected = f"Bearer {bearer_token}".encode()

    def authorise(authorization: str | None) -> None:
        if authorization is None or not secrets.compare_digest(authorization.encode(), expected):
            raise FHIRError(401, "missing or invalid bearer token")

    app = FastAPI(title="Simulated community FHIR STU3 API", openapi_url=None)
    app.add_middleware(FaultMiddleware, state=control, error=_fault)

    @app.exception_handler(FHIRError)
    async def fhir_error(_: Request, exc: FHIRError) -> Response:
        response = _outcome(exc.status, exc.diagnostics)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _outcome(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _outcome(400, "invalid search parameters")

    def care_teams_for(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        wanted = {ref["reference"].removeprefix("CareTeam/")
                  for r in page for ref in r.get("careTeam", ())}
        out = []
        for r in page:
            pid = r["subject"]["reference"].removeprefix("Patient/")
            for team in population.care_teams.get(pid, ()):
                if team.team_id in wanted:
                    wanted.discard(team.team_id)
                    out.append(_stu3.care_team(team, population))
        return out

    @app.get("/Patient")
    async def search_patient(
        request: Request,
        identifier: str | None = None,
        authorization: AuthHeader = None,
        count: Count = None,
        offset: Offset = 0,
    ) -> Response:
        authorise(authorization)
        if not identifier:
            raise FHIRError(400, "search needs identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}")
        system, sep, value = identifier.rpartition("|")
        if sep and system and system != NHS_NUMBER_SYSTEM:
            matches: list[dict[str, Any]] = []
        else:
            matches = [_stu3.patient(p) for p in population.community_patients_with(value)]
        return _bundle(request, matches, offset, count or PATIENT_PAGE_SIZE)

    @app.get("/Patient/{patient_id}")
    async def read_patient(patient_id: str, authorization: AuthHeader = None) -> Response:
        authorise(authorization)
        found = population.community_patient(patient_id)
        if found is None:
            raise FHIRError(404, f"Patient/{patient_id} is not known")
        return FHIRJSON(_stu3.patient(found))

    def searched_patient(search: SubjectSearch) -> str:
        """The patient a search is for, once the caller is let in (a bad token before a
        missing subject, as for every other request)."""
        authorise(search.authorization)
        return search.patient_id()

    @app.get("/CarePlan")
    async def search_care_plan(request: Request, search: Search) -> Response:
        plans = population.care_plans.get(searched_patient(search), ())
        matches = [_stu3.care_plan(cp, population) for cp in plans]
        extra = care_teams_for if search.include == "CarePlan:care-team" else None
        return _bundle(request, matches, search.offset, search.count or CAREPLAN_PAGE_SIZE, extra)

    @app.get("/CareTeam")
    async def search_care_team(request: Request, search: Search) -> Response:
        teams = population.care_teams.get(searched_patient(search), ())
        matches = [_stu3.care_team(ct, population) for ct in teams]
        return _bundle(request, matches, search.offset, search.count or CARETEAM_PAGE_SIZE)

    @app.get("/Organization/{org_id}")
    async def read_organization(org_id: str, authorization: AuthHeader = None) -> Response:
        authorise(authorization)
        org = population.organizations.get(org_id)
        if org is None:
            raise FHIRError(404, f"Organization/{org_id} is not known")
        return FHIRJSON(_stu3.organization(org))

    @app.get("/Practitioner/{practitioner_id}")
    async def read_practitioner(
        practitioner_id: str, authorization: AuthHeader = None
    ) -> Response:
        authorise(authorization)
        found = population.practitioners.get(practitioner_id)
        if found is None:
            raise FHIRError(404, f"Practitioner/{practitioner_id} is not known")
        return FHIRJSON(_stu3.practitioner(found))

    app.include_router(control_router(control))
    return app

"""``Goal``, ``CareTeam`` and ``Provenance``: read by id and search by patient.

A CarePlan references its Goals and CareTeam, and every resource has a Provenance; a client
follows those references one by one (``Goal/{id}``), or asks for them all (``Goal?patient=``),
outside ``$everything``. Every answer comes from the same decided, merged record as a
``CarePlan`` search (:class:`~gateway.records.access.RecordAccess`), so a resource the decision
withheld is never returned: a search leaves it out (and says that something was withheld),
a read by id is ``403`` with the reasons, like ``CarePlan/{id}``.

Ids are ``{source}.{personId}.{localId}``, so a read finds the source and the person from the
id alone. The search parameters are R4's: ``patient`` (and ``subject`` for Goal and
CareTeam; ``patient.identifier`` for all), ``status`` for CareTeam, plus the result
parameters of :mod:`gateway.fhir.search`.

The handlers are made per type (:func:`_searcher`, :func:`_reader`), so this module does not
use postponed annotations: FastAPI reads each handler's ``Depends`` from the annotation
objects themselves.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request

from adapters.base import Resource
from gateway.deps import AccessDep, StateDep, gate, subject_nhs_number
from gateway.errors import BadRequest
from gateway.fhir.params import check_params, token_list
from gateway.fhir.responses import FHIRResponse
from gateway.fhir.search import RESULT_PARAMS, parse_shape
from gateway.records.access import RequestContext
from gateway.routes.searching import read_one, record_searchset, search_request

router = APIRouter(prefix="/fhir")

CARETEAM_STATUS: Final = frozenset(
    {"proposed", "active", "suspended", "inactive", "entered-in-error"}
)
SUBJECTS: Final = {
    "Goal": ("patient", "subject", "patient.identifier"),
    "CareTeam": ("patient", "subject", "patient.identifier"),
    "Provenance": ("patient", "patient.identifier"),
}


def _mine(kind: str, resources: list[Resource], request: Request) -> list[Resource]:
    out = [r for r in resources if r.get("resourceType") == kind]
    if kind == "CareTeam":
        statuses = token_list(request, "status")
        if set(statuses) - CARETEAM_STATUS:
            raise BadRequest(
                f"Unknown CareTeam status; use {', '.join(sorted(CARETEAM_STATUS))}.",
                expression=["status"],
            )
        if statuses:
            out = [r for r in out if r.get("status") in statuses]
    return out


def _searcher(kind: str) -> Callable[..., Awaitable[FHIRResponse]]:
    subjects = SUBJECTS[kind]
    extra = ("status",) if kind == "CareTeam" else ()
    Gate = Annotated[RequestContext, Depends(gate(kind, "search"))]

    async def search(
        ctx: Gate, access: AccessDep, state: StateDep, request: Request
    ) -> FHIRResponse:
        request = await search_request(request)
        check_params(request, (*subjects, *extra, *RESULT_PARAMS))
        nhs = subject_nhs_number(request, kind, subjects)
        shape = parse_shape(request, kind)
        result = await access.read(ctx, nhs)
        filters = {"patient": nhs}
        if extra and token_list(request, "status"):
            filters["status"] = ",".join(token_list(request, "status"))
        mine = _mine(kind, result.record.resources(), request)
        return record_searchset(state.base_url, kind, mine, shape, filters, result)

    search.__name__ = f"search_{kind.lower()}"
    return search


def _reader(kind: str) -> Callable[..., Awaitable[FHIRResponse]]:
    Gate = Annotated[RequestContext, Depends(gate(kind, "read"))]

    async def read(
        resource_id: str, ctx: Gate, access: AccessDep, request: Request
    ) -> FHIRResponse:
        check_params(request, ())
        return FHIRResponse(await read_one(kind, resource_id, ctx, access))

    read.__name__ = f"read_{kind.lower()}"
    return read


for _kind in SUBJECTS:
    router.get(f"/{_kind}")(_searcher(_kind))
    router.post(f"/{_kind}/_search")(_searcher(_kind))
    router.get(f"/{_kind}/{{resource_id}}")(_reader(_kind))

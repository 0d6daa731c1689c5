"""The hottest read, ``GET /fhir/Patient/{nhs}/$everything``, without FastAPI's per-request
machinery.

The FastAPI route in :mod:`gateway.routes.fhir` stays the documented one (OpenAPI, and the
handler's own tests); this Starlette route is put in front of it and does exactly what it
does — the same gate (token, scope, purpose), the same parameter check, the same
:class:`~gateway.records.access.RecordAccess` read and the same Bundle — through the same error
boundary, which audits it. What it leaves out is the dependency solving, the per-request
handler wrapping and the search through every route of the API: a fifth of a warm read's
CPU. ``HEAD`` is not answered here (the FastAPI route does not answer it either).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Scope

from gateway.deps import gate, get_state
from gateway.fhir.responses import FHIRResponse
from gateway.routes import fhir

PATH = "/fhir/Patient/{nhs}/$everything"
_gate = gate("Patient", "read")


async def patient_everything(request: Request) -> FHIRResponse:
    state = await get_state(request)
    ctx = await _gate(request, state)
    return await fhir.patient_everything(
        request.path_params["nhs"], ctx, state.access, state, request
    )


class _HotRoute(Route):
    """A Starlette route that names itself in the scope as FastAPI's do (``scope["route"]``),
    so the access log and the request metrics label it with its template, not "unmatched"."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child = {**child, "route": self}
        return match, child


def everything_route() -> Route:
    route = _HotRoute(PATH, patient_everything, methods=["GET"], name="patient_everything_hot")
    route.methods = {"GET"}  # Starlette adds HEAD to every GET route; the API has none
    return route

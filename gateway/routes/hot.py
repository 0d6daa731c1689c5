"""The hottest read, ``GET /fhir/Patient/{nhs}/$everything``, without FastAPI's per-request
machinery.

The FastAPI route in :mod:`gateway.routes.fhir` stays the documented one (OpenAPI, and the
handler's own tests); :class:`HotLane` answers the same path in front of the router and does
exactly what that route does — the same gate (token, scope, purpose), the same parameter
check, the same :class:`~gateway.records.access.RecordAccess` read and the same Bundle —
inside the same error boundary and content negotiation, which audit and shape it as any
other answer. What it leaves out is the dependency solving, the handler wrapping, the
search through every route of the API and the layers between negotiation and the router
(exception handling that hands every failure on to the boundary anyway, the exit stack that
only dependencies with ``yield`` use): together about a third of a warm read's CPU once the
rest had been made cheaper. ``HEAD`` comes here as the ``GET`` negotiation makes of it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.deps import gate, get_state
from gateway.fhir.responses import FHIRResponse
from gateway.routes import fhir

PATH = "/fhir/Patient/{nhs}/$everything"
_PREFIX, _SUFFIX = "/fhir/Patient/", "/$everything"
_gate = gate("Patient", "read")


async def patient_everything(request: Request) -> FHIRResponse:
    state = await get_state(request)
    ctx = await _gate(request, state)
    return await fhir.patient_everything(
        request.path_params["nhs"], ctx, state.access, state, request
    )


class HotLane:
    """Pure ASGI: ``GET`` of :data:`PATH` answered by :func:`patient_everything`; everything
    else goes on to the application. The scope names the route as the router would
    (``scope["route"]``, its ``path_params``), so the access log and the request metrics
    label it with its template, and the audit event finds the NHS number asked for."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route = Route(PATH, patient_everything, methods=["GET"], name="patient_everything")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope.get("method") == "GET"
            and path.startswith(_PREFIX)
            and path.endswith(_SUFFIX)
        ):
            nhs = path[len(_PREFIX) : -len(_SUFFIX)]
            if nhs and "/" not in nhs and not scope.get("root_path"):
                # what the route's pattern ({nhs}: no slash) would match, without its regex
                scope["path_params"] = {"nhs": nhs}
                scope["endpoint"] = patient_everything
                scope["route"] = self.route
                response = await patient_everything(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

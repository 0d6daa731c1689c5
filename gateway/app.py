"""The FastAPI application: middleware, one error handler, routers, lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from adapters import nhs_number
from adapters.resilience import SourceFault
from gateway import audit_trail
from gateway.apps import router as apps_router
from gateway.audit import AuditUnavailable
from gateway.deps import request_id_from
from gateway.errors import BadRequest, GatewayError, ServiceUnavailable
from gateway.fhir.openapi import install_openapi
from gateway.fhir.responses import FHIRResponse, outcome
from gateway.routes import audit, consent, fhir, health
from gateway.smart import router as smart_router
from gateway.state import GatewayState

log = structlog.get_logger("caregateway.access")

StateFactory = Callable[[], Awaitable[tuple[GatewayState, Callable[[], Awaitable[None]]]]]


def create_app(state_factory: StateFactory) -> FastAPI:
    """Build the app; ``state_factory`` makes the shared state and its closer at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state, close = await state_factory()
        app.state.gateway = state
        try:
            yield
        finally:
            await close()

    app = FastAPI(
        title="caregateway",
        summary="FHIR R4 shared care record gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(fhir.router)
    app.include_router(consent.router)
    app.include_router(audit.router)
    app.include_router(health.router)
    app.include_router(smart_router)  # /auth/* and /fhir/.well-known/smart-configuration
    app.include_router(apps_router)  # /apps/*: the browser apps, static files (gateway/apps)
    install_openapi(app)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request_id_from(request.headers.get("x-request-id"))
        request.state.request_id = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        path = request.url.path
        audited = path.startswith("/fhir/") and path != "/fhir/metadata"
        note = audit_trail.open_note() if audited else None
        try:
            response = await call_next(request)
            status = response.status_code
            if note is not None:
                response = await _commit_audit(request, note, response, request_id)
                status = response.status_code
            response.headers["X-Request-ID"] = request_id
            return response
        finally:
            route = request.scope.get("route")
            log.info(
                "request",
                method=request.method,
                route=getattr(route, "path", "unmatched"),
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> FHIRResponse:
        note = audit_trail.current()
        if note is not None and exc.reasons and not note.reasons:
            note.reasons = exc.reasons
        return FHIRResponse(exc.to_operation_outcome(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(SourceFault)
    async def source_fault(request: Request, exc: SourceFault) -> FHIRResponse:
        err = ServiceUnavailable("A source system needed for this request did not answer.")
        return FHIRResponse(err.to_operation_outcome(), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> FHIRResponse:
        err = BadRequest(
            "The request is not valid: "
            + "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                for e in exc.errors()
            )
        )
        return FHIRResponse(err.to_operation_outcome(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> FHIRResponse:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        text = {404: "No such endpoint.", 405: "Method not allowed."}.get(
            exc.status_code, str(exc.detail)
        )
        return FHIRResponse(outcome(code, "error", text), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> FHIRResponse:
        log.error("unhandled_error", error=type(exc).__name__)
        return FHIRResponse(
            outcome("exception", "fatal", "Internal error; it has been logged."), status_code=500
        )

    return app


_SUBJECT_PARAMS = ("patient", "subject", "patient.identifier")


def _requested_patient(request: Request) -> str | None:
    """The valid NHS number in the request's path (``{nhs}``) or subject parameter, if any."""
    candidates = [str(request.scope.get("path_params", {}).get("nhs") or "")]
    for name in _SUBJECT_PARAMS:
        value = request.query_params.get(name) or ""
        candidates.append(value.rpartition("|")[2].removeprefix("Patient/"))
    for candidate in candidates:
        digits = nhs_number.normalise(candidate)
        if digits.isascii() and nhs_number.is_valid(digits):
            return digits
    return None


async def _commit_audit(
    request: Request, note: audit_trail.AuditNote, response: Response, request_id: str
) -> Response:
    """Commit the request's AuditEvent before the answer goes; 503 (no data) if we cannot."""
    state: GatewayState | None = getattr(request.app.state, "gateway", None)
    if state is None or state.audit is None:
        return response
    last = request.url.path.rsplit("/", 1)[-1]
    if last.startswith("$"):
        note.subtype, note.operation = "operation", last[1:]
    if note.patient_nhs is None:
        # Refused before the route read the NHS number (no token, bad token): the event
        # still names whose record was asked for, when the request says so validly.
        note.patient_nhs = _requested_patient(request)
    event = audit_trail.build_event(
        note,
        status=response.status_code,
        method=request.method,
        query=request.url.query,
        request_id=request_id,
        client_address=request.client.host if request.client else None,
        base_url=state.base_url,
    )
    try:
        await state.audit.append(event)
    except AuditUnavailable:
        log.error("audit_unavailable")
        err = ServiceUnavailable(
            "The access could not be recorded in the audit trail, so no data is released."
        )
        return FHIRResponse(err.to_operation_outcome(), status_code=err.status)
    return response

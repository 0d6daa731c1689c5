"""The FastAPI application: routers, lifespan and the one error boundary around them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from gateway.apps import router as apps_router
from gateway.boundary import ErrorBoundary, reraise
from gateway.fhir.openapi import install_openapi
from gateway.http_conformance import Negotiation, cors_options, parse_origins
from gateway.joint import routes as joint
from gateway.limits import Limits
from gateway.ops import Operations
from gateway.routes import access_check, audit, consent, definitions, fhir, health, hot, references
from gateway.settings import get_settings
from gateway.smart import router as smart_router
from gateway.state import StateFactory


def create_app(
    state_factory: StateFactory,
    *,
    limits: Limits | None = None,
    ops: Operations | None = None,
    cors_origins: Sequence[str] | None = None,
) -> FastAPI:
    """Build the app; ``state_factory`` makes the shared state and its closer at start-up.

    ``cors_origins``: the browser origins allowed to call the API; by default those of
    ``CAREGW_CORS_ORIGINS`` (none unless set).

    ``limits``: the request size limits; by default those of the settings
    (``CAREGW_MAX_*``, see ``docs/reliability.md``). ``ops``: metrics, rate limits and the
    shutdown drain (:mod:`gateway.ops`), started on the state once it is built.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state, close = await state_factory()
        app.state.gateway = state
        try:
            if ops is not None:
                await ops.start(state)
            yield
        finally:
            if ops is not None:
                await ops.stop()
            await close()

    app = FastAPI(
        title="caregateway",
        summary="FHIR R4 shared care record gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry looked for a configured provider on every request and
        # found none; the gateway propagates trace context itself (gateway.ops.tracing).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(fhir.router)
    app.include_router(references.router)  # Goal, CareTeam, Provenance
    app.include_router(definitions.router)  # our StructureDefinitions and CodeSystems
    app.include_router(consent.router)
    app.include_router(access_check.router)  # Patient/{nhs}/$access-check
    for router in joint.routers:
        app.include_router(router)
    app.include_router(audit.router)
    app.include_router(health.router)
    app.include_router(smart_router)  # /auth/* and /fhir/.well-known/smart-configuration
    app.include_router(apps_router)  # /apps/*: the browser apps, static files (gateway/apps)
    install_openapi(app)

    # One boundary renders every failure and audits it (gateway.boundary). FastAPI's own
    # handlers for these would answer inside the routes, before the boundary could see the
    # failure; handing them on keeps one place that answers and audits.
    app.add_exception_handler(StarletteHTTPException, reraise)
    app.add_exception_handler(RequestValidationError, reraise)
    app.add_middleware(hot.HotLane)  # the same read as its FastAPI route, before the router
    app.add_middleware(Negotiation)  # inside the boundary: its refusals are audited outcomes
    app.add_middleware(ErrorBoundary, limits=limits or Limits.from_settings(get_settings()))
    origins = parse_origins(get_settings().cors_origins) if cors_origins is None else cors_origins
    app.state.cors_origins = tuple(origins)
    if origins:  # outermost: preflights need no token, and refusals must be readable too
        opts = cors_options(origins)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=opts["allow_origins"],
            allow_methods=opts["allow_methods"],
            allow_headers=opts["allow_headers"],
            expose_headers=opts["expose_headers"],
            max_age=opts["max_age"],
        )
    if ops is not None:
        ops.install(app)  # outside the boundary: counts the status really sent
    return app

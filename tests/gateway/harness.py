"""Run a real gateway in the test's event loop: in-process by default, or behind uvicorn.

``running_gateway`` builds the gateway as ``serve`` does (``build_state``, ``create_app``)
and serves it one of two ways:

* in-process (the default): requests go straight to the ASGI app through
  ``httpx.ASGITransport``, with its lifespan run (``tests.support.inprocess``). For route
  tests, where what is tested is the gateway's answer: the same app, middleware, state,
  database and source simulators, without a socket, an HTTP parser or a server task;
* ``socket=True`` (or, for ``tests/gateway/conftest.py``'s ``gw``, the module marked
  ``pytest.mark.socket``): uvicorn on a free loopback port, for tests where the socket is
  the point. Those are: HTTP itself and what uvicorn does to it (test_fhir_conventions and
  test_fhir_patient_routes: ``HEAD``, CORS, conformance; test_limits: size limits;
  test_boundary and test_db_outage: a kept-alive connection; test_health's own clients and
  sockets); clients outside this event loop (test_openapi: schemathesis through ``requests``
  in a worker thread; test_fhir_clients, test_fhir_validation: fhirclient in a thread, node's
  clients and validator); and the SMART/OIDC flows (tests/smart). Tests that run
  ``caregateway serve`` or the demo as processes, browsers, replicas behind a socket and
  crash tests have their own harnesses and are untouched by this choice. Replicas that
  only share a database or a cache (test_joint_replicas, test_cache_e2e) stay in-process.

Either way a gateway given no ``database_url`` starts on a new SQLite file of its own, a
copy of one migrated once per run (``tests.support.migrated``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adapters.base import SourceConfig
from gateway.app import create_app
from gateway.audit import AuditStore
from gateway.auth import TokenVerifier
from gateway.cache import RecordCache
from gateway.embedded import free_port, running_server
from gateway.joint.store import JointPlanStore
from gateway.limits import Limits
from gateway.records.access import Decider
from gateway.smart import SmartConfig, SmartServer
from gateway.state import Closer, GatewayState
from gateway.wiring import Overrides, build_state, defaults
from tests.support.fhir import FHIR_JSON, assert_fhir, assert_outcome
from tests.support.inprocess import serving_in_process
from tests.support.migrated import migrated_sqlite_url
from tests.support.tokens import ISSUER, user_token


@dataclass
class Gateway:
    base_url: str
    private_pem: bytes
    client: httpx.AsyncClient
    app: Any = None  # the FastAPI app (``app.state.gateway`` is its GatewayState once started)
    socket: bool = False  # served by uvicorn on ``base_url``'s port (else in-process)

    @property
    def state(self) -> GatewayState:
        state: GatewayState = self.app.state.gateway
        return state

    # What every test gateway has (build_state wires them; the state's fields are optional
    # only because a gateway may run without them).
    @property
    def audit(self) -> AuditStore:
        assert self.state.audit is not None, "the test gateway has an audit store"
        return self.state.audit

    @property
    def joint(self) -> JointPlanStore:
        assert self.state.joint is not None, "the test gateway has a joint plan store"
        return self.state.joint

    @property
    def smart(self) -> SmartServer:
        assert self.state.smart is not None, "this test gateway runs the SMART server"
        return self.state.smart

    def token(
        self,
        *,
        role: str | None = "R8000",
        org: str = "F81001",
        scopes: Sequence[str] = ("user/*.rs",),
        purpose: str | None = "TREAT",
        sub: str = "test-user-0001",
        **kw: Any,
    ) -> str:
        return user_token(
            self.private_pem,
            self.base_url,
            role=role,
            org=org,
            scopes=scopes,
            purpose=purpose,
            sub=sub,
            **kw,
        )

    def headers(self, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kw)}"}

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", None)
        if headers is None:
            headers = self.headers()
        return await self.client.get(f"{self.base_url}{path}", headers=headers, **kw)


@asynccontextmanager
async def running_gateway(
    sources: Sequence[SourceConfig],
    private_pem: bytes,
    public_jwk: dict[str, Any],
    *,
    decider: Decider | None = None,
    cache: RecordCache | None = None,
    change_poll_interval_s: float | None = None,
    smart: Callable[[str], SmartConfig] | None = None,
    database_url: str | None = None,
    limits: Limits | None = None,
    cors_origins: Sequence[str] = (),
    socket: bool = False,
) -> AsyncIterator[Gateway]:
    """A gateway with its own SQLite file (removed afterwards), served in-process; with
    ``socket`` by uvicorn on a free loopback port (see the module docstring for which).

    ``base_url`` names a free loopback port either way (tokens' audience, absolute URLs in
    answers); in-process nothing listens there, so only ``gateway.client`` reaches it.

    ``database_url``: another database instead (a PostgreSQL one, or an SQLite file the test
    controls; two gateways given the same one are replicas); it is left in place afterwards.
    ``limits``: request size limits other than the defaults.

    ``cache``: the record cache to read through (none by default); the gateway closes it.
    Its change-feed pollers are built but not run unless ``change_poll_interval_s`` is given:
    tests call ``gateway.state.change_pollers[i].poll_once()`` when they want a poll. ``0``
    builds no pollers at all (as ``CAREGW_CHANGE_POLL_INTERVAL_S=0`` does).
    ``smart``: given the FHIR base URL, the SMART authorization server's configuration.
    ``cors_origins``: browser origins allowed (none by default, as outside the demo).
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    verifier = TokenVerifier(issuer=ISSUER, audience=base_url, jwks={"keys": [public_jwk]})

    workdir = tempfile.mkdtemp(prefix="caregw-test-")
    database_url = database_url or await migrated_sqlite_url(Path(workdir) / "gateway.db")

    overrides = Overrides(
        base_url=base_url,
        sources=sources,
        verifier=verifier,
        database_url=database_url,
        decider=decider,
        cache=cache,
        change_poll_interval_s=change_poll_interval_s,
        auto_upgrade=True,
        smart=None if smart is None else smart(base_url),
    )

    async def factory() -> tuple[GatewayState, Closer]:
        return await build_state(defaults(), overrides)

    app = create_app(factory, limits=limits, cors_origins=cors_origins)
    try:
        async with _served(app, port, socket) as client:
            yield Gateway(
                base_url=base_url, private_pem=private_pem, client=client, app=app, socket=socket
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@asynccontextmanager
async def _served(app: Any, port: int, socket: bool) -> AsyncIterator[httpx.AsyncClient]:
    if not socket:
        async with serving_in_process(app, f"http://127.0.0.1:{port}") as client:
            yield client
        return
    async with (
        running_server(app, "127.0.0.1", port),
        httpx.AsyncClient(timeout=30) as client,
    ):
        yield client


# --- assertions on FHIR answers (kept importable from here) -----------------------------

__all__ = ["FHIR_JSON", "ISSUER", "Gateway", "assert_fhir", "assert_outcome", "running_gateway"]

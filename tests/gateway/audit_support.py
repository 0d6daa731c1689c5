"""Gateways and stores the audit tests build the same way, said once.

``own_gateway`` and ``gateway_per_backend`` make a module's gateway fixture: the tests that
need a gateway of their own (their own audit trail, their own Consents), or one over each
database backend, name the fixture once and the making of it lives here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio

from adapters.base import SourceConfig
from gateway.audit import AuditStore, AuditUnavailable
from gateway.audit.store import audit_checkpoint, audit_event
from gateway.db import create_schema, make_engine
from simulators.runner import source_configs
from tests.gateway.boundary_support import gateway_on
from tests.gateway.harness import Gateway, running_gateway

SigningKey = tuple[bytes, dict[str, Any]]
# How a gateway is started: ``running_gateway(sources, private_pem, public_jwk)`` or the like.
Running = Callable[
    [Sequence[SourceConfig], bytes, dict[str, Any]], AbstractAsyncContextManager[Any]
]


def own_gateway(
    running: Running = running_gateway,
    *,
    scope: Literal["function", "module"] = "function",
    loop_scope: Literal["session"] | None = None,
) -> Any:
    """A fixture yielding a gateway started by ``running`` (``running_gateway`` by default)
    in front of the session's simulators, one per ``scope`` (a test, or a module)."""

    async def gateway(running_sources: Any, signing_key: SigningKey) -> AsyncIterator[Any]:
        async with running(source_configs(running_sources), *signing_key) as started:
            yield started

    return pytest_asyncio.fixture(gateway, scope=scope, loop_scope=loop_scope)


def gateway_per_backend(*backends: str, source_timeout_s: float | None = None) -> Any:
    """A fixture yielding, once per backend in ``backends`` (the test ids, in that order), a
    gateway whose database is that backend (``boundary_support.gateway_on``).
    ``source_timeout_s``: how long the gateway waits for a simulated source, if not the
    default."""

    async def gateway(
        request: pytest.FixtureRequest,
        tmp_path: Path,
        running_sources: Any,
        signing_key: SigningKey,
    ) -> AsyncIterator[Gateway]:
        sources = source_configs(running_sources)
        if source_timeout_s is not None:
            sources = [replace(c, timeout_s=source_timeout_s) for c in sources]
        async with gateway_on(request.param, request, tmp_path, sources, signing_key) as started:
            yield started

    return pytest.fixture(params=list(backends))(gateway)


@asynccontextmanager
async def started_store(url: str, *, emptied: bool = False) -> AsyncIterator[AuditStore]:
    """A started audit store on the database at ``url``, its schema created; ``emptied``: no
    event or checkpoint left from an earlier test (a database the session shares). Closed,
    and its engine disposed, afterwards."""
    engine = make_engine(url)
    await create_schema(engine)
    if emptied:
        async with engine.begin() as conn:
            await conn.execute(audit_event.delete())
            await conn.execute(audit_checkpoint.delete())
    store = AuditStore(engine)
    await store.start()
    yield store
    await store.close()
    await engine.dispose()


async def assert_append_unavailable(store: AuditStore, event: Any) -> None:
    """Appending ``event`` raises ``AuditUnavailable``; the store and its engine are closed
    afterwards whatever happened."""
    try:
        with pytest.raises(AuditUnavailable):
            await store.append(event)
    finally:
        await store.close()
        await store.engine.dispose()

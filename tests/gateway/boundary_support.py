"""Helpers for the error-boundary, limit and audit-truth tests."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from adapters.base import SourceConfig
from gateway.audit import AuditStore
from gateway.logging import configure_logging
from tests.gateway.harness import Gateway, running_gateway
from tests.gateway.postgres_server import fresh_database
from tests.support.migrated import migrated_sqlite_url

REQUEST_ID_CODE = "XrequestId"


async def events_for(store: AuditStore, request_id: str) -> list[dict[str, Any]]:
    """Every stored event whose request-id entity is ``request_id``."""
    events = await store.search(count=10_000)
    return [
        e
        for e in events
        for ent in e.get("entity", ())
        if ent.get("type", {}).get("code") == REQUEST_ID_CODE
        and ent.get("what", {}).get("identifier", {}).get("value") == request_id
    ]


def client_port(resp: httpx.Response) -> int:
    """The client-side port of the TCP connection ``resp`` came on (same port: same
    keep-alive connection)."""
    stream = resp.extensions["network_stream"]
    address = stream.get_extra_info("client_addr")
    return int(address[1])


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the process logs (structlog and stdlib, uvicorn's tracebacks included), as
    the gateway's own configuration renders it, into a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level
        logging.getLogger("uvicorn.access").disabled = False


@asynccontextmanager
async def gateway_on(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sources: Sequence[SourceConfig],
    signing_key: tuple[bytes, dict[str, Any]],
    **kw: Any,
) -> AsyncIterator[Gateway]:
    """A running gateway whose database is ``backend``: ``"sqlite"`` (a file in
    ``tmp_path``) or ``"postgres"`` (a fresh database on the session's server)."""
    if backend == "postgres":
        url = await fresh_database(request.getfixturevalue("postgres_url"))
    else:
        url = await migrated_sqlite_url(tmp_path / "gateway.db")
    kw.setdefault("socket", request.node.get_closest_marker("socket") is not None)
    async with running_gateway(sources, *signing_key, database_url=url, **kw) as gateway:
        yield gateway

"""Readiness against a real gateway: ok, degraded (a source's circuit open) and 503 (no database).

Each test runs its own gateway (own SQLite file, own circuit breakers) in front of the shared
source simulators, which are reset before and after.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from gateway.db import make_engine
from gateway.routes import health
from tests.gateway.harness import Gateway
from tests.gateway.source_faults import fresh_gateway, set_control
from tests.support.people import nhs

SOURCES = {"socialcare", "community"}


@pytest.fixture
async def gw(
    running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    async with fresh_gateway(running_sources, signing_key, socket=True) as gateway:
        yield gateway


async def _health(gw: Gateway, which: str) -> httpx.Response:
    base = gw.base_url.removesuffix("/fhir")
    return await gw.client.get(f"{base}/health/{which}")


async def test_ready_is_ok_with_the_database_reachable(gw: Gateway) -> None:
    resp = await _health(gw, "ready")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    assert body["status"] == "ok"
    assert body["database"] == {"reachable": True}
    assert body["sources"] == dict.fromkeys(SOURCES, "closed")


async def test_ready_is_503_when_the_database_cannot_be_reached(gw: Gateway) -> None:
    engine = gw.audit.engine
    assert engine.url.database is not None
    database = Path(engine.url.database)
    assert database.is_file()
    # Take the database away for real: close the pooled connections (an open SQLite handle
    # would still read an unlinked file) and remove the directory the file lives in, so a new
    # connection cannot open or create it.
    await engine.dispose()
    shutil.rmtree(database.parent)
    with pytest.raises(OperationalError):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    resp = await _health(gw, "ready")
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["status"] == "unavailable"
    assert body["database"] == {"reachable": False}
    assert body["sources"] == dict.fromkeys(SOURCES, "closed")
    for secret in (str(engine.url), str(database), str(database.parent), "sqlite", "gateway.db"):
        assert secret not in resp.text

    live = await _health(gw, "live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback port that takes TCP connections and never says a word (a hung database)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def test_a_hung_database_gives_503_within_the_probe_timeout(
    gw: Gateway, silent_listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "DATABASE_TIMEOUT_S", 0.5)
    url = f"postgresql+asyncpg://caregw:s3cret-pw@127.0.0.1:{silent_listener}/caregw"
    hung = make_engine(url)
    audit = gw.audit
    original, audit.engine = audit.engine, hung
    try:
        with capture_logs() as logs:
            resp = await _health(gw, "ready")
    finally:
        audit.engine = original
        await hung.dispose()
    assert resp.status_code == 503, resp.text
    # The probe's own timeout ended the wait (the driver's connect timeout is a minute).
    assert {"event": "database_unreachable", "error": "TimeoutError"} in [
        {k: e.get(k) for k in ("event", "error")} for e in logs
    ]
    body = resp.json()
    assert body["status"] == "unavailable"
    assert body["database"] == {"reachable": False}
    for secret in ("s3cret-pw", "postgresql", str(silent_listener)):
        assert secret not in resp.text


async def test_ready_is_degraded_when_a_source_circuit_is_open(
    gw: Gateway, running_sources: Any
) -> None:
    await set_control(running_sources.community_url, fail_status=503)
    number = nhs("both")

    body: dict[str, Any] = {}
    for _ in range(20):  # the breaker opens after a handful of consecutive failures
        read = await gw.get(f"/Patient/{number}")
        assert read.status_code == 200, read.text
        resp = await _health(gw, "ready")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if body["sources"]["community"] == "open":
            break
    assert body["sources"] == {"community": "open", "socialcare": "closed"}
    assert body["status"] == "degraded"
    assert body["database"] == {"reachable": True}


@pytest.fixture
async def quick_gw(
    running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    """A gateway whose sources time out after 0.3 s."""
    async with fresh_gateway(running_sources, signing_key, timeout_s=0.3, socket=True) as gateway:
        yield gateway


async def test_ready_is_degraded_when_a_source_stops_answering_with_its_circuit_closed(
    quick_gw: Gateway, running_sources: Any
) -> None:
    """Timeouts end in cancellation, which the breaker may never count: a source that answers
    nothing for minutes kept a closed circuit, and readiness said it was healthy."""
    await set_control(running_sources.community_url, latency_ms=1500)
    number = nhs("both")
    for _ in range(3):
        read = await quick_gw.get(f"/Patient/{number}")
        assert read.status_code == 200, read.text  # partial: social care still answers
    resp = await _health(quick_gw, "ready")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "degraded"
    assert body["sources"] == {"community": "closed", "socialcare": "closed"}
    community = body["sourceHealth"]["community"]
    assert community["healthy"] is False and community["circuit"] == "closed"
    assert community["consecutiveFailures"] == 3
    assert community["lastOutcome"] == "timed-out"
    assert community["lastFailure"] is not None
    social = body["sourceHealth"]["socialcare"]
    assert social["healthy"] is True and social["consecutiveFailures"] == 0
    assert social["lastSuccess"] is not None and social["lastOutcome"] == "found"

    async with httpx.AsyncClient() as client:
        (await client.post(f"{running_sources.community_url}/_control/reset")).raise_for_status()
    read = await quick_gw.get(f"/Patient/{number}")
    assert read.status_code == 200, read.text
    body = (await _health(quick_gw, "ready")).json()
    assert body["status"] == "ok"
    assert body["sourceHealth"]["community"]["healthy"] is True
    assert body["sourceHealth"]["community"]["lastOutcome"] == "found"
    assert body["sourceHealth"]["community"]["poolRenewals"] >= 0

"""Liveness and readiness (no token, no patient data).

Ready is ``degraded`` (still ``200``: the gateway answers from the sources) when a source's
circuit is open, when a source has not answered lately, or when the record cache cannot be
reached. ``sources`` lists each source's circuit state (``specs/gateway-interface.md``);
``sourceHealth`` says, per source, whether it is healthy and why: how its recent fetches
ended (:class:`gateway.records.service.SourceHealth`: failures in a row, last outcome, last
answer and last failure) and how often its connection pool was replaced for making no progress
(:class:`adapters.http_source.BoundedClient`). A circuit can stay closed while every fetch
times out — a deadline is a cancellation the breaker never counts — so the circuit alone
said a lost source was healthy. Readiness probes Redis with a PING
each time, so it reports the cache as it is now, and a Redis that has come back is used
again at once rather than after the cache's back-off window.

Ready is ``draining`` with ``503`` while the process shuts down (SIGTERM,
:mod:`gateway.ops.shutdown`), so a load balancer stops sending it requests; liveness stays
``200``. Otherwise ready is ``unavailable`` with ``503`` only when the database cannot be
reached: without it no access can be audited, so no record may be released. Each probe runs
``SELECT 1`` on the database engine the audit trail writes through (the consent stores share
it), bounded by :data:`DATABASE_TIMEOUT_S` so a hung database cannot hang the probe. The
body says only whether the database is reachable, never its URL (which may hold a
password). A state built without an audit store (some test harnesses) has no database check.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cache import MemoryBackend, RecordCache, TieredBackend
from gateway.deps import StateDep
from gateway.fhir.responses import FHIRResponse
from gateway.joint.rules import JOINT_SOURCE
from gateway.records.access import RecordAccess
from gateway.state import GatewayState

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/health")

DATABASE_TIMEOUT_S = 2.0


@router.get("/live")
async def live() -> FHIRResponse:
    return FHIRResponse({"status": "ok"})


@router.get("/ready")
async def ready(state: StateDep) -> FHIRResponse:
    access = state.access
    # Source systems only: the joint care plans are the database, checked below.
    systems = [a for a in access.sources() if a.name != JOINT_SOURCE]
    sources = {a.name: _circuit(state, a) for a in systems}
    health = {a.name: _source_health(access, a, sources[a.name]) for a in systems}
    degraded = not all(h["healthy"] for h in health.values())
    body: dict[str, Any] = {"status": "ok", "sources": sources, "sourceHealth": health}
    unavailable = False
    engine: AsyncEngine | None = getattr(state.audit, "engine", None)
    if engine is not None:
        reachable = await _database_reachable(engine, DATABASE_TIMEOUT_S)
        unavailable = not reachable
        body["database"] = {"reachable": reachable}
    if state.cache is not None:
        cache = await _cache(state.cache)
        degraded = degraded or not cache["reachable"]
        body["cache"] = cache
    if state.change_pollers:
        body["changeFeeds"] = {
            p.name: {"polls": p.polls, "failures": p.failures, "evicted": p.evicted}
            for p in state.change_pollers
        }
    if getattr(state.drain, "draining", False):  # shutting down (gateway.ops.shutdown)
        body["status"] = "draining"
        return FHIRResponse(body, status_code=503)
    if unavailable:
        body["status"] = "unavailable"
        return FHIRResponse(body, status_code=503)
    body["status"] = "degraded" if degraded else "ok"
    return FHIRResponse(body)


def _circuit(state: GatewayState, adapter: Any) -> str:
    breaker = getattr(adapter, "breaker", None) or state.breakers.get(adapter.name)
    return str(getattr(breaker, "state", "unknown"))


def _source_health(access: RecordAccess, adapter: Any, circuit: str) -> dict[str, Any]:
    """Healthy when its circuit is not open and its recent fetches answered."""
    seen = access.source_health(adapter.name)
    fetches = seen.as_dict() if seen is not None else {"healthy": True}
    return {
        **fetches,
        "healthy": circuit != "open" and bool(fetches["healthy"]),
        "circuit": circuit,
        "poolRenewals": int(getattr(adapter, "pool_renewals", 0)),
    }


async def _database_reachable(engine: AsyncEngine, timeout_s: float) -> bool:
    """``SELECT 1`` answered within ``timeout_s``; any failure (or no answer) is ``False``."""

    async def select_one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(select_one(), timeout_s)
    except Exception as exc:  # refused, unopenable, timed out ...: all mean "cannot be reached"
        # The type only: a driver's message may quote the URL, password included.
        log.warning("database_unreachable", error=type(exc).__name__)
        return False
    return True


async def _cache(cache: RecordCache) -> dict[str, Any]:
    reachable = await cache.ping()
    backend = cache.backend
    kind = (
        "memory"
        if isinstance(backend, MemoryBackend)
        else "redis+memory"
        if isinstance(backend, TieredBackend)
        else "redis"
    )
    stats = cache.stats.as_dict()
    return {"backend": kind, "reachable": reachable, **stats}

"""Liveness and readiness (no token, no patient data).

Ready is ``degraded`` (still ``200``: the gateway answers from the sources) when a source's
circuit is open or the record cache cannot be reached. Readiness probes Redis with a PING
each time, so it reports the cache as it is now, and a Redis that has come back is used
again at once rather than after the cache's back-off window.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway.cache import MemoryBackend, RecordCache, TieredBackend
from gateway.deps import StateDep
from gateway.fhir.responses import FHIRResponse
from gateway.state import GatewayState

router = APIRouter(prefix="/health")


@router.get("/live")
async def live() -> FHIRResponse:
    return FHIRResponse({"status": "ok"})


@router.get("/ready")
async def ready(state: StateDep) -> FHIRResponse:
    sources = {a.name: _circuit(state, a) for a in state.access.records.adapters}
    degraded = any(s == "open" for s in sources.values())
    body: dict[str, Any] = {"status": "ok", "sources": sources}
    if state.cache is not None:
        cache = await _cache(state.cache)
        degraded = degraded or not cache["reachable"]
        body["cache"] = cache
    if state.change_pollers:
        body["changeFeeds"] = {
            p.name: {"polls": p.polls, "failures": p.failures, "evicted": p.evicted}
            for p in state.change_pollers
        }
    body["status"] = "degraded" if degraded else "ok"
    return FHIRResponse(body)


def _circuit(state: GatewayState, adapter: Any) -> str:
    breaker = getattr(adapter, "breaker", None) or state.breakers.get(adapter.name)
    return str(getattr(breaker, "state", "unknown"))


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

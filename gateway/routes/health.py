"""Liveness and readiness (no token, no patient data)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import StateDep
from gateway.fhir.responses import FHIRResponse

router = APIRouter(prefix="/health")


@router.get("/live")
async def live() -> FHIRResponse:
    return FHIRResponse({"status": "ok"})


@router.get("/ready")
async def ready(state: StateDep) -> FHIRResponse:
    sources = {
        a.name: getattr(getattr(a, "breaker", None), "state", "unknown")
        for a in state.access.records.adapters
    }
    degraded = any(s == "open" for s in sources.values())
    return FHIRResponse({"status": "degraded" if degraded else "ok", "sources": sources})

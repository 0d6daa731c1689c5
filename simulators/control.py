"""Fault control shared by both simulators: latency, failures and request counters.

Every simulator mounts these endpoints (no authentication: they exist for tests, the demo
and benchmarks, on loopback only):

``POST /_control``
    JSON ``{"latency_ms": int, "fail_status": int | null, "fail_count": int | null,
    "retry_after_s": int | null}``; fields left out keep their current value.
    ``latency_ms`` delays every data request by that much (``asyncio.sleep`` in the server).
    ``lookup_latency_ms`` delays only the person lookup (``GET /people`` on social care,
    ``GET /Patient`` search on community): a source whose person index is slow while its
    follow-up reads are quick. Benchmarks use it to model "a source that takes 100 ms".
    ``fail_status`` (e.g. 503 or 429) answers data requests with that status instead of data:
    the next ``fail_count`` requests, or every request until reset when ``fail_count`` is
    null. ``retry_after_s`` adds a ``Retry-After`` header to those failures.
``POST /_control/reset``
    Back to no latency, no failures, and the request counters cleared.
``GET /_control``
    The current settings (``fail_count`` is what is left) and ``{"requests": {path: n}}``,
    the number of data requests seen per path since the last reset (failed ones included),
    so tests can count calls; ``most_in_flight`` is the most data requests the server held
    at one moment since then, so tests can see which requests a client sent together.

Requests to ``/_control`` themselves are never delayed, failed or counted.

A source cut off the network altogether (connections refused, open ones dropped) is not a
setting of the app but of its server: :meth:`simulators.runner.RunningSources.cut_off` and
``restore``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "CONTROL_PREFIX",
    "ControlState",
    "ControlUpdate",
    "ErrorFactory",
    "FaultMiddleware",
    "control_router",
]

CONTROL_PREFIX = "/_control"

# (status, retry_after_s) -> the response the source would send for that failure.
ErrorFactory = Callable[[int, int | None], Response]


# The person-lookup searches of both simulated sources (exact paths; query strings aside).
LOOKUP_PATHS = frozenset({"/people", "/Patient"})


class ControlUpdate(BaseModel):
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    lookup_latency_ms: int = Field(default=0, ge=0, le=60_000)
    fail_status: int | None = Field(default=None, ge=400, le=599)
    fail_count: int | None = Field(default=None, ge=0)
    retry_after_s: int | None = Field(default=None, ge=0)


@dataclass
class ControlState:
    """Mutable per-app fault settings and counters (one event loop, so no locking needed)."""

    latency_ms: int = 0
    lookup_latency_ms: int = 0
    fail_status: int | None = None
    fail_count: int | None = None
    retry_after_s: int | None = None
    requests: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    most_in_flight: int = 0

    def update(self, change: ControlUpdate) -> None:
        for name in change.model_fields_set:
            setattr(self, name, getattr(change, name))

    def reset(self) -> None:
        for name, setting in ControlUpdate.model_fields.items():
            setattr(self, name, setting.default)
        self.requests.clear()
        self.most_in_flight = self.in_flight

    def take_failure(self) -> int | None:
        """The status to fail this request with, if any (uses up one of ``fail_count``)."""
        if self.fail_status is None:
            return None
        if self.fail_count is None:
            return self.fail_status
        if self.fail_count <= 0:
            return None
        self.fail_count -= 1
        return self.fail_status

    def snapshot(self) -> dict[str, Any]:
        """The settings (each :class:`ControlUpdate` field, in its order) and the counters."""
        settings = {name: getattr(self, name) for name in ControlUpdate.model_fields}
        return {**settings, "requests": dict(self.requests), "most_in_flight": self.most_in_flight}


class FaultMiddleware:
    """Pure ASGI middleware: count, delay and (when told to) fail each data request."""

    def __init__(self, app: ASGIApp, state: ControlState, error: ErrorFactory) -> None:
        self.app = app
        self.state = state
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        state = self.state
        state.requests[path] += 1
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await self._answer(path, scope, receive, send)
        finally:
            state.in_flight -= 1

    async def _answer(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        delay_ms = state.latency_ms + (state.lookup_latency_ms if path in LOOKUP_PATHS else 0)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        status = state.take_failure()
        if status is not None:
            response = self.error(status, state.retry_after_s)
            if state.retry_after_s is not None:
                response.headers["Retry-After"] = str(state.retry_after_s)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def control_router(state: ControlState) -> APIRouter:
    router = APIRouter(prefix=CONTROL_PREFIX, tags=["control"])

    @router.get("")
    async def read_control() -> dict[str, Any]:
        return state.snapshot()

    @router.post("")
    async def update_control(change: ControlUpdate) -> dict[str, Any]:
        state.update(change)
        return state.snapshot()

    @router.post("/reset")
    async def reset_control() -> dict[str, Any]:
        state.reset()
        return state.snapshot()

    return router

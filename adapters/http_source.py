"""What every HTTP source adapter shares: its config, its pooled client, and result values."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx

from adapters.base import DataIssue, Domain, Outcome, Resource, SourceConfig, SourceResult


class BoundedClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` with at most ``max_in_flight`` exchanges at once (a bulkhead).

    Requests beyond the bound wait on a semaphore (cheap, first come first served) instead
    of in httpcore's pool, whose assignment loop costs O(waiting x connections) per change;
    and every connection is kept alive for reuse instead of being closed and reopened. Under
    a burst of 50 cold ``$everything`` this cut the gateway's CPU per request by about a
    third and removed the timeouts (``bench/burst.py``, ``docs/benchmarks.md``). The wait
    counts against the adapter's overall deadline, so a congested source still answers
    "timed out" on time.
    """

    def __init__(self, *, max_in_flight: int, **kwargs: Any) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        kwargs.setdefault(
            "limits",
            httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
        )
        super().__init__(**kwargs)
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        # Not streamed: ``send`` reads the whole body before returning, so the slot covers
        # the connection's whole use.
        async with self._slots:
            return await super().send(request, **kwargs)


class HTTPSourceAdapter:
    """Base for adapters that speak HTTP to one source (one pooled ``httpx.AsyncClient``).

    A client passed in is the caller's to close; one made here is closed by :meth:`aclose`.
    """

    def __init__(self, config: SourceConfig, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._owns_http = client is None
        self._http = client or BoundedClient(
            max_in_flight=config.max_connections, timeout=httpx.Timeout(config.timeout_s)
        )

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def organisation(self) -> str:
        return self._config.organisation

    @property
    def domain(self) -> Domain:
        return self._config.care_domain

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def _result(
        self,
        outcome: Outcome,
        fetched_at: datetime,
        *,
        resources: tuple[Resource, ...] = (),
        issues: tuple[DataIssue, ...] = (),
        detail: str | None = None,
    ) -> SourceResult:
        return SourceResult(
            source=self.name,
            organisation=self.organisation,
            domain=self.domain,
            outcome=outcome,
            resources=resources,
            issues=issues,
            detail=detail,
            fetched_at=fetched_at,
        )

    def _failed(self, outcome: Outcome, detail: str, fetched_at: datetime) -> SourceResult:
        return self._result(outcome, fetched_at, detail=detail)

"""The record service: ask every source at once (through the cache), return their results.

The cost of a cold read is about the slowest source, not the sum: adapters run concurrently
under ``asyncio.gather``. Each adapter enforces its own timeout and circuit breaker; the
service adds a safety net (an adapter that raises or overruns is reported as a failed source,
never as a failed request). Only complete answers (found / not found) are cached; a source
failure never is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import structlog

from adapters.base import Outcome, SourceAdapter, SourceResult

log = structlog.get_logger(__name__)

# Extra time an adapter is given beyond its own timeout before the service stops waiting.
_GRACE_S = 0.5


class ResultCache(Protocol):
    """What the record service needs of a cache (see :mod:`gateway.cache`)."""

    async def get_or_fetch(
        self, source: str, nhs: str, fetch: Callable[[], Awaitable[SourceResult]]
    ) -> SourceResult:
        """Cached answer, or ``fetch()`` run once for all concurrent callers and cached if ok."""
        ...


class RecordService:
    def __init__(
        self,
        adapters: Sequence[SourceAdapter],
        timeouts: dict[str, float],
        cache: ResultCache | None = None,
    ) -> None:
        self.adapters = list(adapters)
        self._by_name = {a.name: a for a in adapters}
        self._timeouts = timeouts
        self.cache = cache

    def adapter(self, name: str) -> SourceAdapter | None:
        return self._by_name.get(name)

    async def fetch(self, nhs_number: str) -> list[SourceResult]:
        """One result per configured source, in configuration order."""
        return list(await asyncio.gather(*(self._fetch_one(a, nhs_number) for a in self.adapters)))

    async def _fetch_one(self, adapter: SourceAdapter, nhs_number: str) -> SourceResult:
        if self.cache is None:
            return await self._ask(adapter, nhs_number)
        return await self.cache.get_or_fetch(
            adapter.name, nhs_number, lambda: self._ask(adapter, nhs_number)
        )

    async def _ask(self, adapter: SourceAdapter, nhs_number: str) -> SourceResult:
        limit = self._timeouts.get(adapter.name, 2.0) + _GRACE_S
        try:
            async with asyncio.timeout(limit):
                return await adapter.fetch(nhs_number)
        except TimeoutError:
            return self._failed(adapter, Outcome.TIMED_OUT, "no answer in time")
        except Exception as exc:  # an adapter bug must not fail the whole request
            log.error("adapter_error", source=adapter.name, error=type(exc).__name__)
            return self._failed(adapter, Outcome.UNAVAILABLE, "source adapter failed")

    @staticmethod
    def _failed(adapter: SourceAdapter, outcome: Outcome, detail: str) -> SourceResult:
        return SourceResult(
            source=adapter.name,
            organisation=adapter.organisation,
            domain=adapter.domain,
            outcome=outcome,
            detail=detail,
            fetched_at=datetime.now(UTC),
        )

    async def aclose(self) -> None:
        for adapter in self.adapters:
            await adapter.aclose()

"""The record service: ask every source at once (through the cache), return their results.

The cost of a cold read is about the slowest source, not the sum: adapters run concurrently
under ``asyncio.gather``. Each adapter enforces its own timeout and circuit breaker; the
service adds a safety net (an adapter that raises or overruns is reported as a failed source,
never as a failed request). Only complete answers (found / not found) are cached; a source
failure never is.

The service also remembers how each source has answered lately (:class:`SourceHealth`), so
readiness can say a source is failing even while its circuit is closed: a fetch that times
out by the service's or the adapter's deadline is a cancellation the circuit breaker never
sees, and a source could fail every fetch for minutes while readiness said it was healthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import structlog

from adapters.base import Outcome, SourceAdapter, SourceResult

log = structlog.get_logger(__name__)

# Extra time an adapter is given beyond its own timeout before the service stops waiting.
_GRACE_S = 0.5

#: A source is unhealthy after this many failed fetches in a row ...
UNHEALTHY_AFTER: Final = 3
#: ... or as soon as a fetch fails when it has not answered for this long (or ever).
ANSWERED_RECENTLY_S: Final = 30.0


@dataclass(slots=True)
class SourceHealth:
    """How one source answered the fetches this process made (cache hits are not fetches).

    Healthy while its last fetch succeeded (found or not found — both are answers) or no
    fetch was made yet; unhealthy after :data:`UNHEALTHY_AFTER` failures in a row, or after
    one failure when its last answer is older than :data:`ANSWERED_RECENTLY_S`. One answer
    makes it healthy again.
    """

    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    consecutive_failures: int = 0
    last_outcome: Outcome | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    _answered_at: float | None = field(default=None, repr=False)

    def record(self, result: SourceResult) -> None:
        self.last_outcome = result.outcome
        if result.ok:
            self.consecutive_failures = 0
            self.last_success = datetime.now(UTC)
            self._answered_at = self.clock()
        else:
            self.consecutive_failures += 1
            self.last_failure = datetime.now(UTC)

    @property
    def healthy(self) -> bool:
        if self.consecutive_failures == 0:
            return True
        if self.consecutive_failures >= UNHEALTHY_AFTER or self._answered_at is None:
            return False
        return self.clock() - self._answered_at < ANSWERED_RECENTLY_S

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "consecutiveFailures": self.consecutive_failures,
            "lastOutcome": self.last_outcome.value if self.last_outcome else None,
            "lastSuccess": _instant(self.last_success),
            "lastFailure": _instant(self.last_failure),
        }


def _instant(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


class ResultCache(Protocol):
    """What the record service needs of a cache (see :mod:`gateway.cache`)."""

    async def get_or_fetch(
        self, source: str, nhs: str, fetch: Callable[[], Awaitable[SourceResult]]
    ) -> SourceResult:
        """Cached answer, or ``fetch()`` run once for all concurrent callers and cached if ok."""
        ...

    async def get_many(self, sources: Sequence[str], nhs: str) -> list[SourceResult | None]:
        """Each source's cached answer in one round trip, None where not simply a hit."""
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
        self.health = {a.name: SourceHealth() for a in adapters}
        # called after each fetch with (source, result, seconds): the metrics (gateway.ops)
        self.observer: Callable[[str, SourceResult, float], None] | None = None

    def adapter(self, name: str) -> SourceAdapter | None:
        return self._by_name.get(name)

    async def fetch(self, nhs_number: str) -> list[SourceResult]:
        """One result per configured source, in configuration order.

        With a cache, every source's entry is read first in one round trip: a warm record
        is then answered without a task per source. What that read did not return is
        fetched through the cache's read-through path, as without it.
        """
        if self.cache is None:
            return list(await asyncio.gather(*(self._ask(a, nhs_number) for a in self.adapters)))
        cached = await self.cache.get_many([a.name for a in self.adapters], nhs_number)
        missing = [a for a, hit in zip(self.adapters, cached, strict=True) if hit is None]
        if not missing:
            return cached  # type: ignore[return-value]  # no None left
        fetched = iter(await asyncio.gather(*(self._fetch_one(a, nhs_number) for a in missing)))
        return [hit if hit is not None else next(fetched) for hit in cached]

    async def _fetch_one(self, adapter: SourceAdapter, nhs_number: str) -> SourceResult:
        if self.cache is None:
            return await self._ask(adapter, nhs_number)
        return await self.cache.get_or_fetch(
            adapter.name, nhs_number, lambda: self._ask(adapter, nhs_number)
        )

    async def _ask(self, adapter: SourceAdapter, nhs_number: str) -> SourceResult:
        started = time.perf_counter()
        result = await self._fetch_guarded(adapter, nhs_number)
        health = self.health.get(adapter.name)
        if health is not None:
            health.record(result)
        if self.observer is not None:
            self.observer(adapter.name, result, time.perf_counter() - started)
        return result

    async def _fetch_guarded(self, adapter: SourceAdapter, nhs_number: str) -> SourceResult:
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

"""Share one in-flight call among concurrent callers asking for the same key.

Usage::

    flights: SingleFlight[SourceResult] = SingleFlight()
    result = await flights.run(cache_key, lambda: adapter.fetch(nhs))

The first caller starts the call as a task; callers arriving while it runs await the same
task and get the same result or exception. A caller that is cancelled does not cancel the
shared call (the others still want it). Nothing is remembered once the call ends: this is
not a cache.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        """Calls in flight now."""
        return len(self._flights)

    async def run(self, key: Hashable, coro_factory: Callable[[], Awaitable[T]]) -> T:
        task = self._flights.get(key)
        if task is None:
            task = asyncio.create_task(_call(coro_factory))
            self._flights[key] = task
            task.add_done_callback(functools.partial(self._done, key))
        return await asyncio.shield(task)

    def _done(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # mark retrieved even if every waiter was cancelled


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()

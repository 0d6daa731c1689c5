"""Source fetches the cache tests hand to ``RecordCache.get_or_fetch``, said once."""

from __future__ import annotations

from adapters.base import SourceResult
from tests.gateway.cache_factories import found


class CountingFetch:
    """A source fetch that counts its calls and answers ``found(source, nhs)`` at once, so a
    test can show the cache went to the source (once) or did not."""

    def __init__(self, source: str, nhs: str) -> None:
        self.source, self.nhs = source, nhs
        self.calls = 0

    async def __call__(self) -> SourceResult:
        self.calls += 1
        return found(self.source, self.nhs)

"""Build a running gateway's state from configuration (used by ``serve``, ``demo`` and tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from adapters.community.adapter import CommunityAdapter
from adapters.socialcare.adapter import SocialCareAdapter

from adapters.base import SourceAdapter, SourceConfig
from gateway.access import Decider, RecordAccess, permit_all
from gateway.auth import TokenVerifier
from gateway.cache import (
    DEMO_CACHE_KEYS,
    DEMO_INDEX_KEY,
    IndexKey,
    KeyRing,
    MemoryBackend,
    RecordCache,
    RedisBackend,
    refuse_demo_keys,
)
from gateway.cache.backends import CacheBackend
from gateway.record import RecordService
from gateway.state import GatewayState


def make_adapter(config: SourceConfig) -> SourceAdapter:
    if config.kind == "social-care-api":
        return SocialCareAdapter(config)
    return CommunityAdapter(config)


def make_cache(
    *,
    sources: Sequence[SourceConfig],
    ttl_s: float,
    keys: str | None = None,
    index_key: str | None = None,
    redis_url: str | None = None,
    demo: bool = False,
) -> RecordCache:
    """The encrypted record cache: demo keys only for ``demo``; Redis when a URL is given."""
    ring = KeyRing.parse(keys or DEMO_CACHE_KEYS if demo else keys or "")
    index = IndexKey.parse(index_key or DEMO_INDEX_KEY if demo else index_key or "")
    if not demo:
        refuse_demo_keys(ring, index)
    backend: CacheBackend = RedisBackend(redis_url) if redis_url else MemoryBackend(10_000)
    return RecordCache(backend, ring, index, ttl_s=ttl_s, sources=[s.name for s in sources])


async def build_state(
    *,
    base_url: str,
    sources: Sequence[SourceConfig],
    verifier: TokenVerifier,
    cache: RecordCache | None = None,
    decider: Decider = permit_all,
) -> tuple[GatewayState, Callable[[], Awaitable[None]]]:
    adapters = [make_adapter(c) for c in sources]
    records = RecordService(adapters, {c.name: c.timeout_s for c in sources}, cache)
    state = GatewayState(
        base_url=base_url.rstrip("/"),
        verifier=verifier,
        access=RecordAccess(records, decider),
    )

    async def close() -> None:
        await records.aclose()
        if cache is not None:
            await cache.aclose()

    return state, close

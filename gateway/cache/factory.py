"""Build the record cache from configuration values (the app's settings pass them in).

Usage::

    cache = build_record_cache(
        redis_url=settings.redis_url,            # None: in-process cache
        cache_keys=settings.cache_keys,          # CAREGW_CACHE_KEYS
        index_key=settings.cache_index_key,      # CAREGW_CACHE_INDEX_KEY
        ttl_s=settings.cache_ttl_s,
        sources=[s.name for s in sources],
        demo=False,                              # True only for `caregateway demo`
    )

Outside demo both secrets are required and demo keys are refused, each error naming its
variable. With Redis and ``local_ttl_s`` > 0, an in-process layer sits in front of Redis;
run an :class:`~gateway.cache.invalidation.EvictionListener` beside it.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.cache.backends import CacheBackend, MemoryBackend, RedisBackend, TieredBackend
from gateway.cache.crypto import (
    DEMO_CACHE_KEYS,
    DEMO_INDEX_KEY,
    INDEX_VAR,
    KEYS_VAR,
    IndexKey,
    KeyRing,
    refuse_demo_keys,
)
from gateway.cache.errors import CacheConfigError
from gateway.cache.record_cache import RecordCache

__all__ = ["build_record_cache"]


def build_record_cache(
    *,
    redis_url: str | None,
    cache_keys: str | None,
    index_key: str | None,
    ttl_s: float = 300,
    sources: Iterable[str] = (),
    demo: bool = False,
    memory_max_entries: int = 10_000,
    local_ttl_s: float = 0,
    ssl_ca_certs: str | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> RecordCache:
    if ttl_s <= 0:
        raise CacheConfigError("CAREGW_CACHE_TTL_S must be positive")
    if demo:
        ring = KeyRing.parse(cache_keys or DEMO_CACHE_KEYS)
        index = IndexKey.parse(index_key or DEMO_INDEX_KEY)
    else:
        if not cache_keys:
            raise CacheConfigError(f"{KEYS_VAR} is required (caregateway keys generate)")
        if not index_key:
            raise CacheConfigError(f"{INDEX_VAR} is required (caregateway keys generate --index)")
        ring, index = KeyRing.parse(cache_keys), IndexKey.parse(index_key)
        refuse_demo_keys(ring, index)
    backend: CacheBackend
    if redis_url:
        try:
            redis = RedisBackend(
                redis_url,
                ssl_ca_certs=ssl_ca_certs,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
            )
        except ValueError as exc:
            raise CacheConfigError(f"CAREGW_REDIS_URL: {exc}") from None
        backend = (
            TieredBackend(MemoryBackend(memory_max_entries), redis, local_ttl_s=local_ttl_s)
            if local_ttl_s > 0
            else redis
        )
    else:
        backend = MemoryBackend(memory_max_entries)
    return RecordCache(backend, ring, index, ttl_s, sources=sources)

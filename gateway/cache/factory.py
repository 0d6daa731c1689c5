"""Build the record cache from configuration values (the app's settings pass them in).

Usage::

    cache = build_record_cache(
        redis_url=settings.redis_url,            # None: in-process cache
        cache_keys=settings.cache_keys,          # CAREGW_CACHE_KEYS
        index_key=settings.cache_index_key,      # CAREGW_CACHE_INDEX_KEY
        ttl_s=settings.cache_ttl_s,
        sources=[s.name for s in sources],
        demo=False,                              # True only for `caregateway demo`
        local_ttl_s=settings.cache_local_ttl_s,  # CAREGW_CACHE_LOCAL_TTL_S; 0: no local tier
    )

Outside demo both secrets are required and demo keys are refused, each error naming its
variable. With Redis and ``local_ttl_s`` > 0, an in-process layer sits in front of Redis
(``build_state`` runs an :class:`~gateway.cache.invalidation.EvictionListener` beside it);
``local_ttl_s`` may not exceed ``ttl_s``, so no entry outlives the cache lifetime it was
given. Without Redis the cache is in-process already and ``local_ttl_s`` is not used.
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

TTL_VAR = "CAREGW_CACHE_TTL_S"
LOCAL_TTL_VAR = "CAREGW_CACHE_LOCAL_TTL_S"


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
    if not ttl_s > 0:
        raise CacheConfigError(f"{TTL_VAR} must be positive")
    if not local_ttl_s >= 0:
        raise CacheConfigError(f"{LOCAL_TTL_VAR} must be 0 (no in-process tier) or positive")
    if local_ttl_s > ttl_s:
        raise CacheConfigError(f"{LOCAL_TTL_VAR} ({local_ttl_s:g}) exceeds {TTL_VAR} ({ttl_s:g})")
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

"""The encrypted record cache: per source, per NHS number, in Redis or in process.

Modules, each one concept:

* :mod:`.crypto` — ``KeyRing`` (AES-256-GCM, rotation), ``IndexKey`` (HMAC cache keys),
  demo keys and key generation;
* :mod:`.backends` — the ``CacheBackend`` contract; ``RedisBackend``, ``MemoryBackend``
  (LRU + TTL) and ``TieredBackend`` (in-process layer in front of Redis);
* :mod:`.record_cache` — ``RecordCache`` (get / put / get_or_fetch / evict, stats);
* :mod:`.singleflight` — ``SingleFlight``;
* :mod:`.invalidation` — ``ChangePoller`` and ``EvictionListener``;
* :mod:`.factory` — ``build_record_cache`` from configuration values;
* :mod:`.errors` — the exception tree.
"""

from gateway.cache.backends import (
    BackendStats,
    CacheBackend,
    MemoryBackend,
    RedisBackend,
    TieredBackend,
)
from gateway.cache.crypto import (
    DEMO_CACHE_KEYS,
    DEMO_INDEX_KEY,
    IndexKey,
    KeyRing,
    generate_index_key,
    generate_key_entry,
    refuse_demo_keys,
)
from gateway.cache.errors import (
    CacheConfigError,
    CacheError,
    CacheUnavailable,
    UndecryptableValue,
)
from gateway.cache.factory import build_record_cache
from gateway.cache.invalidation import ChangePoller, EvictionListener
from gateway.cache.record_cache import EVICTION_CHANNEL, CacheStats, RecordCache
from gateway.cache.singleflight import SingleFlight

__all__ = [
    "DEMO_CACHE_KEYS",
    "DEMO_INDEX_KEY",
    "EVICTION_CHANNEL",
    "BackendStats",
    "CacheBackend",
    "CacheConfigError",
    "CacheError",
    "CacheStats",
    "CacheUnavailable",
    "ChangePoller",
    "EvictionListener",
    "IndexKey",
    "KeyRing",
    "MemoryBackend",
    "RecordCache",
    "RedisBackend",
    "SingleFlight",
    "TieredBackend",
    "UndecryptableValue",
    "build_record_cache",
    "generate_index_key",
    "generate_key_entry",
    "refuse_demo_keys",
]

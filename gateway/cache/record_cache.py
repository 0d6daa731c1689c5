"""The encrypted cache of normalised source results, per source, per NHS number.

What is cached is a :class:`~adapters.base.SourceResult` (its ``to_json`` form, orjson,
sealed with AES-256-GCM) under ``cgw:v1:r:{HMAC(nhs)}:{HMAC(source)}``. Decisions are never
cached: consent is decided after the cache on every request. Only answers (``FOUND``,
``NOT_FOUND``) are cached; a failed or timed-out source is asked again next time, so a
partial record is never served as complete.

Prefer ``get_or_fetch`` to a ``get`` then ``put`` of one's own: it shares one fetch among
concurrent callers (single flight) and does not cache a fetch that an eviction overtook
(the source changed while we were reading it).

Nothing here raises for a cache problem: an unavailable backend is a miss (and ``put`` a
no-op), an undecryptable or corrupt value is deleted and is a miss; both are counted.

Usage::

    cache = RecordCache(backend, ring, index, ttl_s=300, sources=["social-care", "community"])
    result = await cache.get_or_fetch("social-care", nhs, lambda: adapter.fetch(nhs))
    await cache.evict(nhs)        # all sources; other replicas are told over pub/sub
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import orjson
import structlog

from adapters.base import SourceResult
from gateway.cache.backends import CacheBackend
from gateway.cache.crypto import IndexKey, KeyRing
from gateway.cache.errors import CacheUnavailable, UndecryptableValue
from gateway.cache.singleflight import SingleFlight

__all__ = ["EVICTION_CHANNEL", "CacheStats", "RecordCache"]

log = structlog.get_logger(__name__)

_EVICTIONS_REMEMBERED = 10_000
_OPENED_REMEMBERED = 1_024

EVICTION_CHANNEL = "cgw:v1:evict"
"""Redis pub/sub channel for evictions. A message is ``{origin}:{person_token}``: the
sending replica's random id and the hex HMAC of the NHS number (never the number)."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    errors: int  # undecryptable or corrupt values, deleted
    unavailable: int  # backend calls that failed (each also a miss or a skipped write)
    writes: int  # values stored
    stale: int  # fetches not cached because the person was evicted meanwhile
    degraded: bool  # the backend is failing now

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "unavailable": self.unavailable,
            "writes": self.writes,
            "stale": self.stale,
            "degraded": self.degraded,
        }


class RecordCache:
    def __init__(
        self,
        backend: CacheBackend,
        keyring: KeyRing,
        index_key: IndexKey,
        ttl_s: float = 300.0,
        *,
        sources: Iterable[str] = (),
        origin: str | None = None,
    ) -> None:
        """``sources``: the configured source names, so ``evict`` reaches every source's
        entry even for sources this process has not touched yet."""
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.backend = backend
        self.keyring = keyring
        self.index_key = index_key
        self.ttl_s = ttl_s
        self._sources: set[str] = set(sources)
        self.origin = origin or _random_origin()
        self._flights: SingleFlight[SourceResult] = SingleFlight()
        self._hits = 0
        self._misses = 0
        self._errors = 0
        self._unavailable = 0
        self._writes = 0
        self._stale = 0
        # eviction sequence per person token (bounded): a fetch that was under way when its
        # person was evicted may hold pre-change data, so its result is not cached
        self._eviction_seq = 0
        self._evicted: OrderedDict[str, int] = OrderedDict()
        # the last sealed value read under each key and what it opened to (bounded): the
        # same ciphertext under the same key opens to the same plaintext, so a warm read
        # of an unchanged entry skips the decrypt, the JSON parse and the rebuilding
        self._opened: OrderedDict[bytes, tuple[bytes, SourceResult]] = OrderedDict()
        # the reads of several entries under way now, shared by callers asking the same
        self._reads: dict[tuple[bytes, ...], asyncio.Future[list[SourceResult | None]]] = {}

    # -- reading and writing -----------------------------------------------------------

    async def get(self, source: str, nhs: str) -> SourceResult | None:
        """The cached result of ``source`` for ``nhs``, or None (miss, never raises)."""
        self._sources.add(source)
        return await self._get(source, self.index_key.record_key(source, nhs))

    async def get_many(self, sources: Sequence[str], nhs: str) -> list[SourceResult | None]:
        """Each source's cached result for ``nhs`` in one backend round trip (None where
        it is not a plain hit). Counts only the hits: a ``None`` here is left to
        :meth:`get_or_fetch`, which reads that entry again, counts it, and deletes a
        value that does not open — so a warm read of a whole record is one ``MGET`` and
        no task, and anything else takes the one path that handles it."""
        keys = tuple(self.index_key.record_key(source, nhs) for source in sources)
        self._sources.update(sources)
        shared = self._reads.get(keys)
        if shared is not None:
            # the same entries are being read now: share that read (what the per-source
            # single flight did), at the cost of one future rather than a task per source
            found = list(await asyncio.shield(shared))
        else:
            shared = asyncio.get_running_loop().create_future()
            self._reads[keys] = shared
            try:
                found = await self._read_many(sources, keys)
                shared.set_result(found)
            finally:
                del self._reads[keys]
                if not shared.done():  # cancelled or failed: the others read on their own
                    shared.set_result([None] * len(keys))
            found = list(found)
        self._hits += sum(r is not None for r in found)
        return found

    async def _read_many(
        self, sources: Sequence[str], keys: tuple[bytes, ...]
    ) -> list[SourceResult | None]:
        try:
            blobs = await self.backend.mget(list(keys))
        except CacheUnavailable:
            return [None] * len(keys)
        return [
            None if blob is None else self._open_known(source, key, blob)
            for source, key, blob in zip(sources, keys, blobs, strict=True)
        ]

    def _open_known(self, source: str, key: bytes, blob: bytes) -> SourceResult | None:
        """What ``blob`` opens to, or None where it cannot be told without side effects."""
        opened = self._opened.get(key)
        if opened is not None and opened[0] == blob:
            self._opened.move_to_end(key)
            return opened[1]
        try:
            data = orjson.loads(self.keyring.open(key, blob))
            if not isinstance(data, dict):
                return None
            result = SourceResult.from_json(data)
        except (UndecryptableValue, ValueError, KeyError, TypeError, AttributeError):
            return None
        if result.source != source or not result.ok:
            return None
        self._remember(key, blob, result)
        return result

    async def _get(self, source: str, key: bytes) -> SourceResult | None:
        try:
            blob = await self.backend.get(key)
        except CacheUnavailable:
            self._unavailable += 1
            self._misses += 1
            return None
        if blob is None:
            self._misses += 1
            return None
        opened = self._opened.get(key)
        if opened is not None and opened[0] == blob:
            self._hits += 1
            self._opened.move_to_end(key)
            return opened[1]
        try:
            data = orjson.loads(self.keyring.open(key, blob))
            if not isinstance(data, dict):
                raise TypeError("cached value is not an object")
            result = SourceResult.from_json(data)
            if result.source != source or not result.ok:
                raise ValueError("cached result does not belong here")
        except (UndecryptableValue, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._errors += 1
            self._misses += 1
            log.warning("cache_value_unusable", error=type(exc).__name__, action="deleted")
            await self._delete(key)
            return None
        self._hits += 1
        self._remember(key, blob, result)
        return result

    def _remember(self, key: bytes, blob: bytes, result: SourceResult) -> None:
        """Keep what ``blob`` opened to. Only a value read back from the backend is kept,
        never one this process wrote: what is served is always what the shared layer holds
        now (an eviction there, or another replica's newer value, is a different answer)."""
        self._opened[key] = (blob, result)
        self._opened.move_to_end(key)
        while len(self._opened) > _OPENED_REMEMBERED:
            self._opened.popitem(last=False)

    async def put(self, result: SourceResult, nhs: str) -> None:
        """Cache an answer (FOUND / NOT_FOUND); failures are never cached. Never raises."""
        if not result.ok:
            return
        self._sources.add(result.source)
        key = self.index_key.record_key(result.source, nhs)
        blob = self.keyring.seal(key, orjson.dumps(result.to_json()))
        try:
            await self.backend.set(key, blob, self.ttl_s)
        except CacheUnavailable:
            self._unavailable += 1
            return
        self._writes += 1

    async def get_or_fetch(
        self, source: str, nhs: str, fetch: Callable[[], Awaitable[SourceResult]]
    ) -> SourceResult:
        """From the cache, or fetched once however many callers ask at the same time."""
        key = self.index_key.record_key(source, nhs)
        self._sources.add(source)
        return await self._flights.run(key, lambda: self._read_through(source, key, nhs, fetch))

    async def _read_through(
        self,
        source: str,
        key: bytes,
        nhs: str,
        fetch: Callable[[], Awaitable[SourceResult]],
    ) -> SourceResult:
        cached = await self._get(source, key)
        if cached is not None:
            return cached
        token = self.index_key.person_token(nhs)
        started = self._eviction_seq
        result = await fetch()
        if self._evicted.get(token, -1) > started:
            self._stale += 1  # changed while we fetched: answer, but do not cache
            return result
        await self.put(result, nhs)
        return result

    # -- eviction ------------------------------------------------------------------------

    async def evict(self, nhs: str, *, publish: bool = True) -> None:
        """Drop every source's entry for ``nhs`` here, and tell other replicas."""
        token = self.index_key.person_token(nhs)
        await self.evict_token(token)
        if publish:
            await self.publish_eviction_token(token)

    async def evict_source(self, source: str, nhs: str, *, publish: bool = True) -> None:
        """Drop one source's entry for ``nhs`` here and in the shared layer, and tell other
        replicas (which drop the person from their own layer, every source).

        For a change the gateway itself made to one source's data (a joint care plan
        written): the other sources' entries are still true, so a write does not cost the
        next request a fetch from every source system."""
        token = self.index_key.person_token(nhs)
        self._note_eviction(token)
        await self._delete(self.index_key.record_key_for_token(source, token))
        if publish:
            await self.publish_eviction_token(token)

    async def evict_token(self, person_token: str) -> None:
        """Drop every source's entry for a person named by ``IndexKey.person_token``."""
        self._note_eviction(person_token)
        await self._delete(*self._keys_for(person_token))

    async def publish_eviction(self, nhs: str) -> None:
        """Tell other replicas' in-process layers to drop ``nhs`` (no NHS number is sent)."""
        await self.publish_eviction_token(self.index_key.person_token(nhs))

    async def publish_eviction_token(self, person_token: str) -> None:
        try:
            await self.backend.publish(
                EVICTION_CHANNEL, f"{self.origin}:{person_token}".encode("ascii")
            )
        except CacheUnavailable:
            self._unavailable += 1

    async def drop_local(self, person_token: str) -> None:
        """Drop a person from this process's own layer only: an eviction heard from another
        replica, which has already cleared the shared layer."""
        self._note_eviction(person_token)
        keys = self._keys_for(person_token)
        for key in keys:
            self._opened.pop(key, None)
        await self.backend.drop_local(*keys)

    def clear_local(self) -> None:
        """Forget this process's own layer (after missing evictions while disconnected)."""
        self._opened.clear()
        self.backend.clear_local()

    def _note_eviction(self, person_token: str) -> None:
        self._eviction_seq += 1
        self._evicted[person_token] = self._eviction_seq
        self._evicted.move_to_end(person_token)
        while len(self._evicted) > _EVICTIONS_REMEMBERED:
            self._evicted.popitem(last=False)

    def _keys_for(self, person_token: str) -> list[bytes]:
        return [self.index_key.record_key_for_token(s, person_token) for s in self._sources]

    async def _delete(self, *keys: bytes) -> None:
        if not keys:
            return
        for key in keys:
            self._opened.pop(key, None)
        try:
            await self.backend.delete(*keys)
        except CacheUnavailable:
            self._unavailable += 1

    # -- state ---------------------------------------------------------------------------

    @property
    def sources(self) -> frozenset[str]:
        return frozenset(self._sources)

    @property
    def stats(self) -> CacheStats:
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            errors=self._errors,
            unavailable=self._unavailable,
            writes=self._writes,
            stale=self._stale,
            degraded=self.backend.stats.degraded,
        )

    async def ping(self) -> bool:
        return await self.backend.ping()

    async def aclose(self) -> None:
        await self.backend.aclose()


def _random_origin() -> str:
    return secrets.token_hex(8)

"""The in-process backend (LRU + TTL, injected clock), single flight and the record cache
rules that do not need Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from adapters.base import ChangedPerson, DataIssue, Outcome, SourceResult
from gateway.cache import (
    DEMO_CACHE_KEYS,
    DEMO_INDEX_KEY,
    CacheConfigError,
    ChangePoller,
    IndexKey,
    KeyRing,
    MemoryBackend,
    RecordCache,
    SingleFlight,
    TieredBackend,
    build_record_cache,
    generate_index_key,
    generate_key_entry,
)
from tests.gateway.cache_factories import NHS_A, NHS_B, HeldFetch, failed, fetch_concurrently, found


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(backend: MemoryBackend | None = None) -> RecordCache:
    return RecordCache(
        MemoryBackend(100) if backend is None else backend,
        KeyRing.parse(DEMO_CACHE_KEYS),
        IndexKey.parse(DEMO_INDEX_KEY),
        ttl_s=60,
        sources=["social-care", "community"],
    )


async def test_lru_bound_drops_least_recently_used() -> None:
    mem = MemoryBackend(3)
    for k in (b"a", b"b", b"c"):
        await mem.set(k, k.upper(), 60)
    assert await mem.get(b"a") == b"A"  # a is now most recent
    await mem.set(b"d", b"D", 60)
    assert len(mem) == 3
    assert await mem.get(b"b") is None
    assert [await mem.get(k) for k in (b"a", b"c", b"d")] == [b"A", b"C", b"D"]
    assert mem.stats.entries == 3


async def test_ttl_with_injected_clock() -> None:
    clock = Clock()
    mem = MemoryBackend(10, clock=clock)
    await mem.set(b"k", b"v", 10)
    clock.now += 9.999
    assert await mem.get(b"k") == b"v"
    clock.now += 0.001
    assert await mem.get(b"k") is None
    assert len(mem) == 0
    await mem.set(b"k", b"v", 0)
    assert await mem.get(b"k") is None


async def test_delete_counts_and_rejects_zero_bound() -> None:
    mem = MemoryBackend(2)
    await mem.set(b"a", b"1", 5)
    assert await mem.delete(b"a", b"missing") == 1
    with pytest.raises(ValueError):
        MemoryBackend(0)


async def test_hit_miss_and_stats() -> None:
    cache = make_cache()
    assert await cache.get("social-care", NHS_A) is None
    await cache.put(found("social-care", NHS_A), NHS_A)
    hit = await cache.get("social-care", NHS_A)
    assert hit == found("social-care", NHS_A)
    assert await cache.get("community", NHS_A) is None
    assert await cache.get("social-care", NHS_B) is None
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.errors, stats.writes) == (1, 3, 0, 1)
    assert stats.as_dict()["degraded"] is False


@pytest.mark.parametrize("outcome", [Outcome.UNAVAILABLE, Outcome.TIMED_OUT, Outcome.BAD_DATA])
async def test_failures_are_never_cached(outcome: Outcome) -> None:
    mem = MemoryBackend(10)
    cache = make_cache(mem)
    await cache.put(failed("social-care", outcome), NHS_A)
    assert len(mem) == 0
    assert await cache.get("social-care", NHS_A) is None


async def test_not_found_is_cached() -> None:
    cache = make_cache()
    nf = SourceResult("community", "RAT", "health", Outcome.NOT_FOUND)
    await cache.put(nf, NHS_A)
    assert await cache.get("community", NHS_A) == nf


async def test_corrupt_plaintext_is_deleted_and_counted() -> None:
    mem = MemoryBackend(10)
    cache = make_cache(mem)
    key = cache.index_key.record_key("social-care", NHS_A)
    for plaintext in (b"not json", orjson.dumps({"source": "social-care"}), orjson.dumps([])):
        await mem.set(key, cache.keyring.seal(key, plaintext), 60)
        assert await cache.get("social-care", NHS_A) is None
        assert await mem.get(key) is None
    # a valid result of another source stored under this source's key is not served
    await mem.set(key, cache.keyring.seal(key, orjson.dumps(found("x", NHS_A).to_json())), 60)
    assert await cache.get("social-care", NHS_A) is None
    assert cache.stats.errors == 4


async def test_an_entry_cached_before_issues_had_an_about_still_loads() -> None:
    mem = MemoryBackend(10)
    cache = make_cache(mem)
    key = cache.index_key.record_key("social-care", NHS_A)
    stored = found("social-care", NHS_A).to_json()
    stored["issues"] = [{"code": i["code"], "text": i["text"]} for i in stored["issues"]]
    await mem.set(key, cache.keyring.seal(key, orjson.dumps(stored)), 60)
    loaded = await cache.get("social-care", NHS_A)
    assert loaded is not None
    assert loaded.issues == (DataIssue("unknown-code", "a care plan category was not recognised"),)
    assert loaded.issues[0].about is None
    assert cache.stats.errors == 0


async def test_evict_drops_every_source_of_one_person() -> None:
    mem = MemoryBackend(10)
    cache = make_cache(mem)
    for source in ("social-care", "community"):
        await cache.put(found(source, NHS_A), NHS_A)
        await cache.put(found(source, NHS_B), NHS_B)
    await cache.evict(NHS_A)
    assert await cache.get("social-care", NHS_A) is None
    assert await cache.get("community", NHS_A) is None
    assert await cache.get("community", NHS_B) is not None
    assert len(mem) == 2


async def test_single_flight_shares_one_call() -> None:
    flights: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    tasks = [asyncio.create_task(flights.run("k", work)) for _ in range(20)]
    await asyncio.sleep(0)  # let every task reach the flight (one scheduling turn)
    assert len(flights) == 1
    release.set()
    assert await asyncio.gather(*tasks) == [42] * 20
    assert calls == 1 and len(flights) == 0


async def test_single_flight_shares_errors_and_survives_a_cancelled_caller() -> None:
    flights: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()

    async def boom() -> int:
        await release.wait()
        raise RuntimeError("source down")

    first = asyncio.create_task(flights.run("k", boom))
    others = [asyncio.create_task(flights.run("k", boom)) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    results = await asyncio.gather(first, *others, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, RuntimeError) for r in results[1:])
    assert len(flights) == 0


async def test_get_or_fetch_fetches_once_for_concurrent_callers() -> None:
    cache = make_cache()
    fetch = HeldFetch("social-care", NHS_A)
    results = await fetch_concurrently(cache, fetch)
    assert fetch.calls == 1
    assert len(results) == 20
    assert all(r == found("social-care", NHS_A) for r in results)
    assert await cache.get_or_fetch("social-care", NHS_A, fetch) == results[0]
    assert fetch.calls == 1


async def test_poller_evicts_changed_people_and_advances_since() -> None:
    cache = make_cache()
    for nhs in (NHS_A, NHS_B):
        await cache.put(found("social-care", nhs), nhs)
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    asked: list[datetime] = []
    feed = [ChangedPerson(NHS_A, t0 + timedelta(minutes=2))]

    async def fetch_changes(since: datetime) -> list[ChangedPerson]:
        asked.append(since)
        return [c for c in feed if c.changed_at >= since]

    poller = ChangePoller(fetch_changes, cache, interval_s=5, start=t0)
    assert await poller.poll_once() == 1
    assert await cache.get("social-care", NHS_A) is None
    assert await cache.get("social-care", NHS_B) is not None
    assert poller.since == t0 + timedelta(minutes=2)
    feed.clear()
    assert await poller.poll_once() == 0
    assert asked == [t0, t0 + timedelta(minutes=2)]


async def test_poller_run_survives_feed_failures_and_cancels_cleanly() -> None:
    cache = make_cache()
    await cache.put(found("social-care", NHS_A), NHS_A)
    second_poll = asyncio.Event()
    calls = 0

    async def fetch_changes(since: datetime) -> list[ChangedPerson]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("feed down")
        second_poll.set()
        return [ChangedPerson(NHS_A, datetime.now(UTC))]

    poller = ChangePoller(fetch_changes, cache, interval_s=0.001)
    task = asyncio.create_task(poller.run())
    await asyncio.wait_for(second_poll.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert poller.failures == 1
    assert await cache.get("social-care", NHS_A) is None


def test_build_record_cache_demo_and_serve_rules() -> None:
    demo = build_record_cache(redis_url=None, cache_keys=None, index_key=None, demo=True)
    assert isinstance(demo.backend, MemoryBackend)
    with pytest.raises(CacheConfigError, match="CAREGW_CACHE_KEYS is required"):
        build_record_cache(redis_url=None, cache_keys=None, index_key=generate_index_key())
    with pytest.raises(CacheConfigError, match="CAREGW_CACHE_INDEX_KEY is required"):
        build_record_cache(redis_url=None, cache_keys=generate_key_entry(), index_key=None)
    with pytest.raises(CacheConfigError, match="CAREGW_CACHE_KEYS contains the public demo"):
        build_record_cache(
            redis_url=None, cache_keys=DEMO_CACHE_KEYS, index_key=generate_index_key()
        )
    with pytest.raises(CacheConfigError, match="CAREGW_REDIS_URL"):
        build_record_cache(
            redis_url="http://127.0.0.1:6379",
            cache_keys=generate_key_entry(),
            index_key=generate_index_key(),
        )
    serve = build_record_cache(
        redis_url="redis://127.0.0.1:6379/0",
        cache_keys=generate_key_entry(),
        index_key=generate_index_key(),
        sources=["social-care"],
        local_ttl_s=5,
    )
    assert isinstance(serve.backend, TieredBackend)
    assert serve.sources == {"social-care"}


async def test_fetch_overtaken_by_an_eviction_is_not_cached() -> None:
    cache = make_cache()
    fetching, release = asyncio.Event(), asyncio.Event()

    async def fetch() -> SourceResult:
        fetching.set()
        await release.wait()
        return found("social-care", NHS_A)  # read before the change

    task = asyncio.create_task(cache.get_or_fetch("social-care", NHS_A, fetch))
    await fetching.wait()
    await cache.evict(NHS_A)  # the change feed says the person changed meanwhile
    release.set()
    assert await task == found("social-care", NHS_A)  # the caller is still answered
    assert await cache.get("social-care", NHS_A) is None  # but it was not cached
    assert cache.stats.stale == 1
    # an eviction of someone else does not stop caching
    fetching.clear()
    task = asyncio.create_task(cache.get_or_fetch("social-care", NHS_A, fetch))
    await fetching.wait()
    await cache.evict(NHS_B)
    await task
    assert await cache.get("social-care", NHS_A) is not None

"""The record cache against a real redis-server: encryption at rest, opaque keys, TTL,
rotation, single flight, eviction (change feed and pub/sub), and Redis failures."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio as redis_asyncio

from adapters.base import ChangedPerson
from gateway.cache import (
    EVICTION_CHANNEL,
    CacheUnavailable,
    ChangePoller,
    EvictionListener,
    IndexKey,
    KeyRing,
    MemoryBackend,
    RecordCache,
    RedisBackend,
    TieredBackend,
)
from gateway.cache.crypto import kid_of
from tests.gateway.cache_factories import (
    NHS_A,
    NHS_B,
    PEOPLE,
    HeldFetch,
    fetch_concurrently,
    found,
    secrets_of,
)
from tests.gateway.cache_support import CountingFetch
from tests.redis_server import (  # noqa: F401  (fixtures)
    RedisServer,
    fresh_redis,
    own_redis_server,
    redis_server,
    tls_redis_server,
)

SOURCES = ("social-care", "community")
KEY_A = "key-a:" + base64.b64encode(b"a" * 32).decode()
KEY_B = "key-b:" + base64.b64encode(b"b" * 32).decode()
INDEX = IndexKey(b"i" * 32)
ISO_DATE = re.compile(rb"\d{4}-\d{2}-\d{2}")


class CountingBackend(RedisBackend):
    """A Redis backend that records, per failed call, what ended it (the foreign error)."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.failed_by: list[str] = []

    async def _call(self, what: str, make: Any) -> Any:
        try:
            return await super()._call(what, make)
        except CacheUnavailable as exc:
            self.failed_by.append(type(exc.__cause__).__name__)
            raise


def make_cache(url: str, ring: str = KEY_A, **backend_options: Any) -> RecordCache:
    return RecordCache(
        CountingBackend(url, **backend_options),
        KeyRing.parse(ring),
        INDEX,
        ttl_s=300,
        sources=SOURCES,
    )


@pytest.fixture
async def cache(fresh_redis: RedisServer) -> AsyncIterator[RecordCache]:  # noqa: F811
    c = make_cache(fresh_redis.url)
    yield c
    await c.aclose()


@pytest.fixture
def raw(fresh_redis: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    client = redis.Redis.from_url(fresh_redis.url)
    yield client
    client.close()


def key_of(source: str, nhs: str) -> bytes:
    return INDEX.record_key(source, nhs)


def raw_get(raw: redis.Redis, key: bytes) -> bytes:
    value = raw.get(key)
    assert isinstance(value, bytes), key
    return value


async def test_hit_and_miss(cache: RecordCache) -> None:
    assert await cache.get("social-care", NHS_A) is None
    await cache.put(found("social-care", NHS_A), NHS_A)
    assert await cache.get("social-care", NHS_A) == found("social-care", NHS_A)
    assert await cache.get("community", NHS_A) is None
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)


async def test_same_record_twice_gives_different_ciphertext(
    cache: RecordCache, raw: redis.Redis
) -> None:
    await cache.put(found("social-care", NHS_A), NHS_A)
    first = raw.get(key_of("social-care", NHS_A))
    await cache.put(found("social-care", NHS_A), NHS_A)
    second = raw.get(key_of("social-care", NHS_A))
    assert first and second and first != second
    assert await cache.get("social-care", NHS_A) == found("social-care", NHS_A)


async def test_ttl_is_set(cache: RecordCache, raw: redis.Redis) -> None:
    await cache.put(found("community", NHS_A), NHS_A)
    pttl = raw.pttl(key_of("community", NHS_A))
    assert 290_000 < pttl <= 300_000


async def test_tampered_value_is_a_miss_and_deleted(cache: RecordCache, raw: redis.Redis) -> None:
    await cache.put(found("social-care", NHS_A), NHS_A)
    key = key_of("social-care", NHS_A)
    blob = bytearray(raw_get(raw, key))
    blob[len(blob) // 2] ^= 0x40
    raw.set(key, bytes(blob))
    assert await cache.get("social-care", NHS_A) is None
    assert raw.exists(key) == 0
    assert cache.stats.errors == 1
    # and the next read-through refetches and stores a good value again
    fetch = CountingFetch("social-care", NHS_A)
    assert await cache.get_or_fetch("social-care", NHS_A, fetch) == found("social-care", NHS_A)
    assert fetch.calls == 1 and raw.exists(key) == 1


async def test_value_copied_to_another_key_fails(cache: RecordCache, raw: redis.Redis) -> None:
    await cache.put(found("social-care", NHS_A), NHS_A)
    await cache.put(found("social-care", NHS_B), NHS_B)
    a_blob = raw.get(key_of("social-care", NHS_A))
    assert a_blob is not None
    raw.set(key_of("social-care", NHS_B), a_blob)  # B's key now holds A's record
    assert await cache.get("social-care", NHS_B) is None
    assert raw.exists(key_of("social-care", NHS_B)) == 0
    assert await cache.get("social-care", NHS_A) == found("social-care", NHS_A)


async def test_rotation(fresh_redis: RedisServer, raw: redis.Redis) -> None:  # noqa: F811
    old = make_cache(fresh_redis.url, KEY_A)
    await old.put(found("social-care", NHS_A), NHS_A)
    assert kid_of(raw_get(raw, key_of("social-care", NHS_A))) == "key-a"

    rotated = make_cache(fresh_redis.url, f"{KEY_B},{KEY_A}")
    assert await rotated.get("social-care", NHS_A) == found("social-care", NHS_A)
    await rotated.put(found("social-care", NHS_B), NHS_B)
    blob_b = raw_get(raw, key_of("social-care", NHS_B))
    assert blob_b[2 : 2 + blob_b[1]] == b"key-b"

    assert await old.get("social-care", NHS_B) is None  # a replica without key B: a miss
    await old.aclose()
    await rotated.aclose()


async def test_nothing_identifying_in_redis(cache: RecordCache, raw: redis.Redis) -> None:
    for nhs in PEOPLE:
        for source in SOURCES:
            await cache.put(found(source, nhs), nhs)
            assert await cache.get(source, nhs) == found(source, nhs)
    keys = list(raw.scan_iter(count=1000))
    assert len(keys) == 4
    forbidden = [s for nhs in PEOPLE for s in secrets_of(nhs)] + [s.encode() for s in SOURCES]
    for key in keys:
        value = raw_get(raw, key)
        assert len(value) > 100
        for blob in (key, value):
            assert not ISO_DATE.search(blob), key
            for secret in forbidden:
                assert secret not in blob, (key, secret)
                assert secret.lower() not in blob.lower()
        assert key.startswith(b"cgw:v1:r:")


async def test_single_flight_against_redis(cache: RecordCache) -> None:
    fetch = HeldFetch("community", NHS_A)
    results = await fetch_concurrently(cache, fetch)
    assert fetch.calls == 1
    assert results == [found("community", NHS_A)] * 20
    assert await cache.get("community", NHS_A) == found("community", NHS_A)


async def test_change_feed_evicts(cache: RecordCache, raw: redis.Redis) -> None:
    for nhs in PEOPLE:
        for source in SOURCES:
            await cache.put(found(source, nhs), nhs)
    changed_at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    async def fetch_changes(since: datetime) -> list[ChangedPerson]:
        return [ChangedPerson(NHS_B, changed_at)]

    poller = ChangePoller(fetch_changes, cache, interval_s=10)
    assert await poller.poll_once() == 1
    assert raw.exists(*(key_of(s, NHS_B) for s in SOURCES)) == 0
    assert raw.exists(*(key_of(s, NHS_A) for s in SOURCES)) == 2


async def test_pubsub_eviction_reaches_other_replicas_local_layer(
    fresh_redis: RedisServer,  # noqa: F811
) -> None:
    def replica() -> RecordCache:
        tiered = TieredBackend(MemoryBackend(100), RedisBackend(fresh_redis.url))
        return RecordCache(tiered, KeyRing.parse(KEY_A), INDEX, 300, sources=SOURCES)

    a, b = replica(), replica()
    assert isinstance(b.backend, TieredBackend)
    assert isinstance(b.backend.remote, RedisBackend)
    listener = EvictionListener(b.backend.remote, b, poll_timeout_s=0.05)
    task = asyncio.create_task(listener.run())
    spy = redis_asyncio.Redis.from_url(fresh_redis.url)
    pubsub = spy.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(EVICTION_CHANNEL)
    try:
        await asyncio.wait_for(listener.ready.wait(), 5)
        await a.put(found("social-care", NHS_A), NHS_A)
        assert await b.get("social-care", NHS_A) is not None  # now in b's local layer too
        assert b.backend.local.stats.entries == 1

        await a.evict(NHS_A)
        await asyncio.wait_for(listener.handled.wait(), 5)
        assert b.backend.local.stats.entries == 0
        assert await b.get("social-care", NHS_A) is None

        message = None
        while message is None:
            message = await pubsub.get_message(timeout=5)
        data: bytes = message["data"]
        assert NHS_A.encode() not in data
        assert data.endswith(INDEX.person_token(NHS_A).encode())
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await spy.aclose()
        await a.aclose()
        await b.aclose()


async def test_redis_down_is_a_miss_then_restart_restores_caching(
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    cache = make_cache(own_redis_server.url, retry_interval_s=0)
    try:
        await cache.put(found("social-care", NHS_A), NHS_A)
        assert await cache.get("social-care", NHS_A) is not None

        own_redis_server.stop()
        backend = cache.backend
        assert isinstance(backend, CountingBackend)
        assert await cache.get("social-care", NHS_A) is None
        await cache.put(found("social-care", NHS_B), NHS_B)
        await cache.evict(NHS_A)
        assert await cache.ping() is False
        # Each call failed at once on the refused connection, none by waiting out a timeout.
        assert len(backend.failed_by) >= 4
        assert set(backend.failed_by) == {"ConnectionError"}, backend.failed_by
        stats = cache.stats
        assert stats.degraded and stats.unavailable >= 3

        fetch = CountingFetch("community", NHS_A)
        assert await cache.get_or_fetch("community", NHS_A, fetch) == found("community", NHS_A)
        assert fetch.calls == 1

        own_redis_server.start()  # same port, empty (no persistence)
        assert await cache.get("community", NHS_A) is None
        assert not cache.stats.degraded
        await cache.put(found("community", NHS_A), NHS_A)
        assert await cache.get("community", NHS_A) == found("community", NHS_A)
        assert await cache.ping() is True
    finally:
        await cache.aclose()


async def test_backoff_skips_redis_until_retry_interval(
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    now = [0.0]
    backend = RedisBackend(own_redis_server.url, retry_interval_s=5, clock=lambda: now[0])
    cache = RecordCache(backend, KeyRing.parse(KEY_A), INDEX, 300, sources=SOURCES)
    try:
        await cache.put(found("social-care", NHS_A), NHS_A)
        own_redis_server.stop()
        assert await cache.get("social-care", NHS_A) is None
        own_redis_server.start()
        now[0] = 4.9  # still backing off: no call made
        assert await cache.get("social-care", NHS_A) is None
        assert backend.stats.degraded
        now[0] = 5.0
        await cache.put(found("social-care", NHS_A), NHS_A)
        assert not backend.stats.degraded
        assert await cache.get("social-care", NHS_A) is not None
    finally:
        await cache.aclose()


async def test_slow_redis_times_out_quickly() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        cache = make_cache(f"redis://127.0.0.1:{port}/0", op_timeout_s=0.2, retry_interval_s=0)
        backend = cache.backend
        assert isinstance(backend, CountingBackend)
        try:
            assert await cache.get("social-care", NHS_A) is None
            await cache.put(found("social-care", NHS_A), NHS_A)
            # Both calls were ended by the 0.2 s operation timeout, not by an answer.
            assert backend.failed_by == ["TimeoutError", "TimeoutError"]
            assert cache.stats.degraded and cache.stats.unavailable == 2
        finally:
            await cache.aclose()


async def test_listener_resyncs_local_layer_after_redis_returns(
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    remote = RedisBackend(own_redis_server.url, retry_interval_s=0)
    local = MemoryBackend(100)
    cache = RecordCache(
        TieredBackend(local, remote), KeyRing.parse(KEY_A), INDEX, 300, sources=SOURCES
    )
    listener = EvictionListener(remote, cache, retry_interval_s=0.05, poll_timeout_s=0.05)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.ready.wait(), 5)
        await cache.put(found("social-care", NHS_A), NHS_A)
        assert len(local) == 1
        own_redis_server.stop()
        own_redis_server.start()
        while listener.resyncs == 0:  # evictions may have been missed meanwhile
            await asyncio.wait_for(listener.ready.wait(), 5)
            if listener.resyncs == 0:
                await asyncio.sleep(0.01)
        assert len(local) == 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await cache.aclose()


ACL_RULES = (
    "on >s3cret-pass resetkeys ~cgw:* resetchannels &cgw:* -@all "
    "+get +set +del +publish +ping +subscribe +unsubscribe"
)


async def test_least_privilege_acl_user_from_url(
    fresh_redis: RedisServer,  # noqa: F811
    raw: redis.Redis,
) -> None:
    raw.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", "caregateway", *ACL_RULES.split()
    )
    url = fresh_redis.url.replace("redis://", "redis://caregateway:s3cret-pass@")
    cache = make_cache(url)
    remote = cache.backend
    assert isinstance(remote, RedisBackend)
    listener = EvictionListener(remote, cache, poll_timeout_s=0.05)
    task = asyncio.create_task(listener.run())
    try:
        await cache.put(found("social-care", NHS_A), NHS_A)
        assert await cache.get("social-care", NHS_A) == found("social-care", NHS_A)
        await cache.evict(NHS_A)
        assert await cache.get("social-care", NHS_A) is None
        await asyncio.wait_for(listener.ready.wait(), 5)
        assert await cache.ping() is True
        assert cache.stats.unavailable == 0 and not cache.stats.degraded
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await cache.aclose()
    wrong = make_cache(url.replace("s3cret-pass", "wrong"))
    try:
        assert await wrong.get("social-care", NHS_A) is None
        assert wrong.stats.degraded
    finally:
        await wrong.aclose()


def _all_subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found_: set[type[BaseException]] = {cls}
    for sub in cls.__subclasses__():
        found_ |= _all_subclasses(sub)
    return found_


UPSTREAM_ERRORS = sorted(
    _all_subclasses(redis.exceptions.RedisError) | {OSError, ConnectionRefusedError, TimeoutError},
    key=lambda c: c.__qualname__,
)


@pytest.mark.parametrize("error", UPSTREAM_ERRORS, ids=lambda c: c.__qualname__)
async def test_every_upstream_error_becomes_a_miss(
    error: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache("redis://127.0.0.1:1/0", retry_interval_s=0)
    backend = cache.backend
    assert isinstance(backend, RedisBackend)

    async def boom(*args: object, **kwargs: object) -> None:
        raise error.__new__(error)

    for name in ("get", "set", "delete", "publish", "ping"):
        monkeypatch.setattr(backend.client, name, boom)
    assert await cache.get("social-care", NHS_A) is None
    await cache.put(found("social-care", NHS_A), NHS_A)
    await cache.evict(NHS_A)
    assert await cache.ping() is False
    assert cache.stats.degraded
    await cache.aclose()


def test_tls_options_need_rediss_and_reach_the_connection_pool() -> None:
    with pytest.raises(ValueError, match="rediss://"):
        RedisBackend("redis://127.0.0.1:6379/0", ssl_ca_certs="/etc/ssl/ca.pem")
    backend = RedisBackend("rediss://gw:pw@127.0.0.1:6380/2", ssl_ca_certs="/etc/ssl/ca.pem")
    kwargs = backend.client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/etc/ssl/ca.pem"
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("gw", "pw", 2)


async def test_rediss_with_ca_verification(tls_redis_server: RedisServer) -> None:  # noqa: F811
    assert tls_redis_server.tls is not None and tls_redis_server.url.startswith("rediss://")
    cache = make_cache(tls_redis_server.url, ssl_ca_certs=str(tls_redis_server.tls.ca_cert))
    try:
        await cache.put(found("social-care", NHS_A), NHS_A)
        assert await cache.get("social-care", NHS_A) == found("social-care", NHS_A)
        assert not cache.stats.degraded
    finally:
        await cache.aclose()
    untrusted = make_cache(tls_redis_server.url)  # system CAs do not trust the test CA
    try:
        assert await untrusted.get("social-care", NHS_A) is None
        assert untrusted.stats.degraded
    finally:
        await untrusted.aclose()
    plain = make_cache(tls_redis_server.url.replace("rediss://", "redis://"))
    try:
        assert await plain.get("social-care", NHS_A) is None
        assert plain.stats.degraded
    finally:
        await plain.aclose()


async def test_a_redis_that_accepts_but_never_answers_fails_the_call_within_its_deadline() -> None:
    """No per-socket timeout is set on the client: the backend's own deadline must bound a
    command to a server that takes the connection and then says nothing (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing, keep the connection open

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0", op_timeout_s=0.2)
    try:
        for _ in range(2):  # the second after the back-off: still bounded, never hung
            with pytest.raises(CacheUnavailable):
                await asyncio.wait_for(backend.get(b"some-key"), timeout=10)
            backend._retry_at = 0.0
    finally:
        await backend.aclose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()

"""Where sealed cache values live: one small contract, a Redis and an in-process backend.

Backends store opaque bytes under opaque keys; encryption happens above them, in
:class:`~gateway.cache.RecordCache`, so both backends hold only ciphertext.

Every foreign failure (redis-py errors, ``OSError``, a slow answer) is translated here, once,
into :class:`~gateway.cache.errors.CacheUnavailable`; callers treat it as a miss. While Redis
is failing the backend is *degraded*: after a failure it answers ``CacheUnavailable`` at
once for ``retry_interval_s`` instead of making every request wait for a connect timeout,
then tries again; the first success clears the flag (redis-py opens a fresh connection on
the next command, so reconnection needs nothing more).

The gateway needs only these Redis commands, so it can run as a least-privilege ACL user
(tested in ``tests/gateway/test_cache_redis.py``)::

    ACL SETUSER caregateway on >PASSWORD resetkeys ~cgw:* resetchannels &cgw:* -@all
        +get +set +del +publish +ping +subscribe +unsubscribe

and connect with ``rediss://caregateway:PASSWORD@host:6380/0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import redis.asyncio as redis_asyncio
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.cache.errors import CacheUnavailable

__all__ = ["BackendStats", "CacheBackend", "MemoryBackend", "RedisBackend", "TieredBackend"]

log = structlog.get_logger(__name__)
T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BackendStats:
    degraded: bool
    failures: int  # calls that ended in CacheUnavailable (including skipped ones)
    entries: int | None = None  # in-process only


@runtime_checkable
class CacheBackend(Protocol):
    """Opaque bytes by opaque key, with a TTL. Raises only ``CacheUnavailable``."""

    async def get(self, key: bytes) -> bytes | None: ...

    async def mget(self, keys: list[bytes]) -> list[bytes | None]:
        """Several values in one round trip, in the order of ``keys`` (None where absent)."""
        ...

    async def set(self, key: bytes, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, *keys: bytes) -> int: ...

    async def publish(self, channel: str, message: bytes) -> int:
        """Tell other replicas (a no-op, returning 0, for a single-process backend)."""
        ...

    async def ping(self) -> bool:
        """True if the backend answers now; never raises."""
        ...

    async def drop_local(self, *keys: bytes) -> None:
        """Forget keys held in this process only (nothing for a purely shared backend)."""
        ...

    def clear_local(self) -> None:
        """Forget everything held in this process only."""
        ...

    @property
    def stats(self) -> BackendStats: ...

    async def aclose(self) -> None: ...


class MemoryBackend:
    """In-process LRU with per-entry TTL and a bound on the number of entries.

    ``clock`` is injectable (monotonic seconds) so tests need no sleeps. Expired entries are
    dropped when read, and the least recently used entry goes when the bound is reached.
    """

    def __init__(self, max_entries: int = 10_000, *, clock: Clock = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    async def get(self, key: bytes) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires_at = item
        if self._clock() >= expires_at:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def mget(self, keys: list[bytes]) -> list[bytes | None]:
        return [await self.get(k) for k in keys]

    async def set(self, key: bytes, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            self._data.pop(key, None)
            return
        self._data[key] = (value, self._clock() + ttl_s)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def delete(self, *keys: bytes) -> int:
        return sum(self._data.pop(k, None) is not None for k in keys)

    async def publish(self, channel: str, message: bytes) -> int:
        return 0

    async def ping(self) -> bool:
        return True

    async def drop_local(self, *keys: bytes) -> None:
        await self.delete(*keys)

    def clear_local(self) -> None:
        self._data.clear()

    @property
    def stats(self) -> BackendStats:
        return BackendStats(degraded=False, failures=0, entries=len(self._data))

    async def aclose(self) -> None:
        self._data.clear()


_FOREIGN_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class RedisBackend:
    """Redis through ``redis.asyncio``, failing fast and reporting ``CacheUnavailable``.

    ``url`` is ``redis://[user:password@]host:port/db`` or ``rediss://...`` (TLS); an ACL
    user and password go in the URL. TLS options: ``ssl_ca_certs`` (CA bundle path),
    ``ssl_certfile``/``ssl_keyfile`` (client certificate), ``ssl_cert_reqs`` ("required" by
    default), ``ssl_check_hostname``. ``op_timeout_s`` bounds every call end to end
    (connect included), whatever redis-py does underneath.
    """

    def __init__(
        self,
        url: str,
        *,
        op_timeout_s: float = 0.25,
        connect_timeout_s: float = 0.25,
        retry_interval_s: float = 1.0,
        max_connections: int = 64,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_cert_reqs: str = "required",
        ssl_check_hostname: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        kwargs: dict[str, Any] = {
            # No per-socket-operation timeout: every command runs under _call's deadline of
            # op_timeout_s, and redis-py drops a connection whose command was cancelled. A
            # socket timeout made each command's write an asyncio.wait_for (a task apiece).
            "socket_timeout": None,
            "socket_connect_timeout": connect_timeout_s,
            "retry": Retry(NoBackoff(), 0),  # fail fast; we decide when to try again
            "max_connections": max_connections,
            "health_check_interval": 0,
        }
        if url.startswith("rediss://"):
            kwargs.update(
                ssl_ca_certs=ssl_ca_certs,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                ssl_cert_reqs=ssl_cert_reqs,
                ssl_check_hostname=ssl_check_hostname,
                ssl_min_version=ssl_module.TLSVersion.TLSv1_2,
            )
        elif any((ssl_ca_certs, ssl_certfile, ssl_keyfile)):
            raise ValueError("TLS options need a rediss:// URL")
        self.client: redis_asyncio.Redis = redis_asyncio.Redis.from_url(url, **kwargs)
        self.op_timeout_s = op_timeout_s
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self._degraded = False
        self._failures = 0
        self._retry_at = 0.0

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        if self._degraded and self._clock() < self._retry_at:
            self._failures += 1
            raise CacheUnavailable(f"redis {what}: backing off after a failure")
        try:
            async with asyncio.timeout(self.op_timeout_s):
                result = await make()
        except _FOREIGN_ERRORS as exc:
            self._failures += 1
            self._retry_at = self._clock() + self.retry_interval_s
            if not self._degraded:
                log.warning("cache_degraded", operation=what, error=type(exc).__name__)
            self._degraded = True
            await self._drop_idle_connections()
            raise CacheUnavailable(f"redis {what} failed: {type(exc).__name__}") from exc
        if self._degraded:
            log.warning("cache_restored")
            self._degraded = False
        return result

    async def _drop_idle_connections(self) -> None:
        """Close the pooled connections no call is using: after a failure they most likely
        lead to the same dead server, and one kept through an outage would fail the first
        call after Redis is back, starting a second back-off."""
        with contextlib.suppress(*_FOREIGN_ERRORS):
            await self.client.connection_pool.disconnect(inuse_connections=False)

    async def get(self, key: bytes) -> bytes | None:
        raw: bytes | str | None = await self._call("GET", lambda: self.client.get(key))
        return raw.encode() if isinstance(raw, str) else raw

    async def mget(self, keys: list[bytes]) -> list[bytes | None]:
        raw: list[bytes | str | None] = await self._call("MGET", lambda: self.client.mget(keys))
        return [v.encode() if isinstance(v, str) else v for v in raw]

    async def set(self, key: bytes, value: bytes, ttl_s: float) -> None:
        px = max(1, int(ttl_s * 1000))
        await self._call("SET", lambda: self.client.set(key, value, px=px))

    async def delete(self, *keys: bytes) -> int:
        if not keys:
            return 0
        n: int = await self._call("DEL", lambda: self.client.delete(*keys))
        return n

    async def publish(self, channel: str, message: bytes) -> int:
        n: int = await self._call("PUBLISH", lambda: self.client.publish(channel, message))
        return n

    async def ping(self) -> bool:
        """Probe Redis now (ignoring the back-off window); never raises."""
        self._retry_at = 0.0
        try:
            return bool(await self._call("PING", lambda: self.client.ping()))
        except CacheUnavailable:
            return False

    async def drop_local(self, *keys: bytes) -> None:
        return None

    def clear_local(self) -> None:
        return None

    @property
    def degraded(self) -> bool:
        return self._degraded

    @property
    def stats(self) -> BackendStats:
        return BackendStats(degraded=self._degraded, failures=self._failures)

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except _FOREIGN_ERRORS:  # closing a dead connection is not worth a traceback
            pass


class TieredBackend:
    """An in-process layer in front of a shared one (Redis): a hit in ``local`` saves the
    network round trip. Values stay sealed in both. Local entries live at most
    ``local_ttl_s``; evictions from other replicas arrive over pub/sub
    (:class:`~gateway.cache.invalidation.EvictionListener` calls ``drop_local``)."""

    def __init__(
        self, local: MemoryBackend, remote: CacheBackend, *, local_ttl_s: float = 30.0
    ) -> None:
        self.local = local
        self.remote = remote
        self.local_ttl_s = local_ttl_s

    async def get(self, key: bytes) -> bytes | None:
        value = await self.local.get(key)
        if value is not None:
            return value
        value = await self.remote.get(key)
        if value is not None:
            await self.local.set(key, value, self.local_ttl_s)
        return value

    async def mget(self, keys: list[bytes]) -> list[bytes | None]:
        values = await self.local.mget(keys)
        missing = [k for k, v in zip(keys, values, strict=True) if v is None]
        if not missing:
            return values
        found = iter(await self.remote.mget(missing))
        for i, value in enumerate(values):
            if value is None:
                values[i] = remote = next(found)
                if remote is not None:
                    await self.local.set(keys[i], remote, self.local_ttl_s)
        return values

    async def set(self, key: bytes, value: bytes, ttl_s: float) -> None:
        await self.local.set(key, value, min(ttl_s, self.local_ttl_s))
        await self.remote.set(key, value, ttl_s)

    async def delete(self, *keys: bytes) -> int:
        await self.local.delete(*keys)
        return await self.remote.delete(*keys)

    async def publish(self, channel: str, message: bytes) -> int:
        return await self.remote.publish(channel, message)

    async def ping(self) -> bool:
        return await self.remote.ping()

    async def drop_local(self, *keys: bytes) -> None:
        await self.local.delete(*keys)

    def clear_local(self) -> None:
        self.local.clear_local()

    @property
    def stats(self) -> BackendStats:
        remote = self.remote.stats
        return BackendStats(
            degraded=remote.degraded, failures=remote.failures, entries=len(self.local)
        )

    async def aclose(self) -> None:
        await self.local.aclose()
        await self.remote.aclose()

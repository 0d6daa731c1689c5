"""Keeping the cache honest: the change-feed poller and the cross-replica eviction listener.

*Change feeds.* :class:`ChangePoller` asks a source "who changed since T?" every
``interval_s`` and evicts those people (every source's entry, since a merged record mixes
them). For the social care API, ``fetch_changes`` wraps ``GET /changes?since=``; any other
source plugs in the same way: give it an async ``(since) -> list[ChangedPerson]``. A source
without a feed relies on the TTL (``CAREGW_CACHE_TTL_S``).

*Replicas.* Redis is shared, so deleting a key there reaches every replica. A replica's
in-process layer (:class:`~gateway.cache.backends.TieredBackend`) learns of evictions from
the Redis pub/sub channel :data:`~gateway.cache.record_cache.EVICTION_CHANNEL`; messages
carry the HMAC person token, never an NHS number. If the listener loses Redis it may miss
messages, so on resubscribing it clears the local layer.

Consent changes evict nothing: decisions are never cached, so a withdrawal applies to the
next request anyway.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog

from adapters.base import ChangedPerson
from gateway.cache.backends import RedisBackend
from gateway.cache.record_cache import EVICTION_CHANNEL, RecordCache

__all__ = ["ChangePoller", "EvictionListener", "FetchChanges"]

log = structlog.get_logger(__name__)

FetchChanges = Callable[[datetime], Awaitable[list[ChangedPerson]]]

_HEX = frozenset(string.digits + "abcdef")


class ChangePoller:
    """Evicts people a source reports as changed.

    ``since`` starts at ``start`` (default: now minus ``lookback``) and moves to the latest
    ``changed_at`` seen, never backwards; a failed poll leaves it where it was, so the next
    poll asks again. ``run()`` loops until cancelled; a failing poll is logged and retried.
    """

    def __init__(
        self,
        fetch_changes: FetchChanges,
        cache: RecordCache,
        interval_s: float = 10.0,
        *,
        start: datetime | None = None,
        lookback: timedelta = timedelta(minutes=5),
        name: str = "changes",
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.fetch_changes = fetch_changes
        self.cache = cache
        self.interval_s = interval_s
        self.name = name
        self.since = start if start is not None else datetime.now(UTC) - lookback
        self.polls = 0
        self.failures = 0
        self.evicted = 0

    async def poll_once(self) -> int:
        """One poll: evict everyone changed since ``since``; return how many were evicted.
        Errors from ``fetch_changes`` propagate (``run`` counts and logs them)."""
        changes = await self.fetch_changes(self.since)
        self.polls += 1
        people = {c.nhs_number for c in changes}
        for nhs in people:
            await self.cache.evict(nhs)
        if changes:
            latest = max(c.changed_at for c in changes)
            if latest > self.since:
                self.since = latest
        self.evicted += len(people)
        return len(people)

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a feed outage must not stop the poller
                self.failures += 1
                log.warning("change_feed_poll_failed", feed=self.name, error=type(exc).__name__)
            await asyncio.sleep(self.interval_s)


class EvictionListener:
    """Listens on :data:`EVICTION_CHANNEL` and drops evicted people from ``cache``'s own
    in-process layer. Ignores messages this replica sent (``cache.origin``).

    Run as a task (``asyncio.create_task(listener.run())``) and cancel it on shutdown;
    ``ready`` is set whenever it is subscribed.
    """

    def __init__(
        self,
        redis: RedisBackend,
        cache: RecordCache,
        *,
        retry_interval_s: float = 1.0,
        poll_timeout_s: float = 1.0,
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.retry_interval_s = retry_interval_s
        self.poll_timeout_s = poll_timeout_s
        self.ready = asyncio.Event()
        self.received = 0
        self.resyncs = 0
        self.handled = asyncio.Event()  # set after each eviction applied (tests wait on it)

    async def run(self) -> None:
        first = True
        while True:
            pubsub = self.redis.client.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(self.poll_timeout_s):  # no socket timeout
                    await pubsub.subscribe(EVICTION_CHANNEL)
                if not first:
                    self.resyncs += 1
                    self.cache.clear_local()
                first = False
                self.ready.set()
                while True:
                    message = await pubsub.get_message(timeout=self.poll_timeout_s)
                    if message is not None and message.get("type") == "message":
                        await self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis gone: wait, resubscribe, resync
                self.ready.clear()
                first = False
                log.warning("eviction_listener_lost_redis", error=type(exc).__name__)
                await asyncio.sleep(self.retry_interval_s)
            finally:
                self.ready.clear()
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception:  # closing a dead connection
                    pass

    async def _handle(self, data: bytes | str) -> None:
        text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
        origin, sep, token = text.partition(":")
        if not sep or origin == self.cache.origin:
            return
        if len(token) != 64 or any(c not in _HEX for c in token):
            return
        self.received += 1
        await self.cache.drop_local(token)
        self.handled.set()

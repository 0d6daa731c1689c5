"""One source's HTTP client: a bulkhead whose pool survives cancellation and stalls.

:class:`BoundedClient` is the ``httpx.AsyncClient`` every HTTP adapter uses
(:class:`adapters.http_source.HTTPSourceAdapter` makes one per source).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import structlog

from adapters import trace_context
from adapters.netio import use_asyncio_streams
from adapters.resilience import deadline

log = structlog.get_logger(__name__)

#: Consecutive timed-out exchanges, with none completed in between, after which a pool is
#: taken to have stopped making progress and is replaced.
STALL_AFTER: Final = 3
#: A stall is judged (and a pool replaced for it) at most once per this many seconds, or per
#: read timeout if longer: a source that is merely slow gains nothing from new connections.
STALL_WINDOW_S: Final = 5.0
#: How long a replaced pool may finish the exchanges it still carries before it is closed.
DRAIN_S: Final = 5.0
#: The shortest timeout an exchange is given when the fetch deadline is nearly spent.
MIN_EXCHANGE_TIMEOUT_S: Final = 0.05
# What configures a pool rather than how requests are built: given to each pool's client.
_POOL_ARGS: Final = frozenset(
    {"transport", "limits", "mounts", "proxy", "verify", "cert", "http1", "http2"}
)


class _NoTransport(httpx.AsyncBaseTransport):
    """The transport of the outer client, which only builds requests: every exchange goes
    through one of its pools, so nothing may ever reach this one."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("BoundedClient sends only through its pools")


@dataclass(eq=False)
class _Pool:
    """One generation of a source's connection pool: its own client and its own slots."""

    http: httpx.AsyncClient
    slots: asyncio.Semaphore
    in_flight: int = 0
    retired: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)


class BoundedClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` with at most ``max_in_flight`` exchanges at once (a bulkhead),
    whose pool cannot be lost to cancellation and is replaced when it stops making progress.

    **Bulkhead.** Requests beyond the bound wait on a semaphore (cheap, first come first
    served) instead of in httpcore's pool, whose assignment loop costs O(waiting x
    connections) per change; and every connection is kept alive for reuse. Under a burst of
    50 cold ``$everything`` this cut the gateway's CPU per request by about a third and
    removed the timeouts (``bench/burst.py``, ``docs/benchmarks.md``). The wait counts
    against the adapter's overall deadline, so a congested source still answers "timed out"
    on time.

    **No cancellation inside httpcore.** A request cancelled inside httpcore's pool — after
    the pool gave it a connection but before the connection took the request — leaves that
    connection in the pool, neither idle nor closed, for good (encode/httpcore#1093). Fetch
    deadlines cancel requests all the time, so under load with a slow source every slot was
    lost that way and the source with it, until restart (``docs/reliability.md``). Here the
    only wait that can be cancelled is the semaphore's, before httpcore is entered. The
    exchange itself runs in its own task, shielded: a cancelled caller stops waiting for it
    at once, but the exchange ends by itself, by httpx's own timeouts, which are clipped to
    what is left of the fetch deadline (:data:`adapters.resilience.deadline`), and only then
    gives its slot back. So the bulkhead counts every exchange httpcore still carries.

    **Watchdog.** A pool that stops making progress is replaced by a new one (a new client
    with new slots): after :data:`STALL_AFTER` consecutive timed-out exchanges with none
    completed in between and none for ``stall_window_s`` (and at most once per that window),
    at once after a
    ``PoolTimeout`` (with the bulkhead in front, a queue in httpcore's pool means it lost
    connections), or when the pool holds more busy connections than there are exchanges in
    flight (connections no request owns). The old pool finishes what it carries (at most
    :data:`DRAIN_S`) and is then closed, which closes any socket it had lost. A transport
    passed in is the caller's: its pool is never replaced.

    **Sockets.** Each pool's connections are kept alive and run on asyncio's own streams
    (:mod:`adapters.netio`), not through anyio: the same httpcore pool and exceptions, less
    work per read and write. HTTP/1.1 only: see :mod:`adapters.netio` for why not HTTP/2.
    """

    def __init__(
        self,
        *,
        max_in_flight: int,
        stall_after: int = STALL_AFTER,
        stall_window_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if stall_after < 1:
            raise ValueError("stall_after must be at least 1")
        kwargs.setdefault(
            "limits",
            httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
        )
        super().__init__(
            transport=_NoTransport(), **{k: v for k, v in kwargs.items() if k not in _POOL_ARGS}
        )
        self.max_in_flight = max_in_flight
        self.stall_after = stall_after
        read = httpx.Timeout(kwargs.get("timeout", httpx.Timeout(5.0))).read
        self.stall_window_s = (
            stall_window_s if stall_window_s is not None else max(read or 0.0, STALL_WINDOW_S)
        )
        #: How many times the pool was replaced, and when an exchange last completed
        #: (event-loop time), for readiness and tests.
        self.renewals = 0
        self.last_completed: float | None = None
        self._pool_kwargs = kwargs
        self._renewable = "transport" not in kwargs
        self._pool = self._new_pool()
        self._timeouts_in_a_row = 0
        self._last_renewal: float | None = None
        self._old: set[_Pool] = set()
        self._exchanges: set[asyncio.Task[httpx.Response]] = set()
        self._retiring: set[asyncio.Task[None]] = set()

    def _new_pool(self) -> _Pool:
        http = httpx.AsyncClient(**self._pool_kwargs)
        if self._renewable:  # httpx's own pool: on asyncio's streams (adapters.netio)
            use_asyncio_streams(http)
        return _Pool(http, asyncio.Semaphore(self.max_in_flight))

    @property
    def in_flight(self) -> int:
        """Exchanges httpcore carries now, in every pool (a replaced one included)."""
        return self._pool.in_flight + sum(p.in_flight for p in self._old)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if kwargs.get("stream"):
            raise ValueError("BoundedClient does not stream: a slot covers a whole exchange")
        while True:
            pool = self._pool
            await pool.slots.acquire()  # the one wait a cancellation may end: httpcore not entered
            if not pool.retired:
                break
            pool.slots.release()  # replaced while we waited: queue on the new pool
        pool.in_flight += 1
        _clip_timeouts(request)
        traceparent = trace_context.outgoing()  # the caller's W3C trace, if it sent one
        if traceparent is not None and "traceparent" not in request.headers:
            request.headers["traceparent"] = traceparent
        task = asyncio.create_task(self._exchange(pool, request, kwargs))
        self._exchanges.add(task)
        task.add_done_callback(functools.partial(self._finished, pool))
        return await asyncio.shield(task)

    async def _exchange(
        self, pool: _Pool, request: httpx.Request, kwargs: dict[str, Any]
    ) -> httpx.Response:
        # Not streamed: ``send`` reads the whole body before returning, so the slot covers
        # the connection's whole use.
        try:
            response = await pool.http.send(request, **kwargs)
        except httpx.TimeoutException as exc:
            self._timed_out(pool, exc)
            raise
        if pool is self._pool:
            self._timeouts_in_a_row = 0
            self.last_completed = asyncio.get_running_loop().time()
        return response

    def _finished(self, pool: _Pool, task: asyncio.Task[httpx.Response]) -> None:
        self._exchanges.discard(task)
        pool.in_flight -= 1
        pool.slots.release()
        if not task.cancelled():
            task.exception()  # retrieved here: the caller may have stopped waiting
        if pool.retired:
            if pool.in_flight == 0:
                pool.drained.set()
            return
        busy = _busy_connections(pool.http)
        if busy is not None and busy > pool.in_flight:
            self._renew(f"{busy - pool.in_flight} connection(s) owned by no request")

    def _timed_out(self, pool: _Pool, exc: httpx.TimeoutException) -> None:
        if pool is not self._pool:
            return
        self._timeouts_in_a_row += 1
        if isinstance(exc, httpx.PoolTimeout):
            self._renew("no connection free in the pool")
            return
        now = asyncio.get_running_loop().time()
        quiet = self.last_completed is None or now - self.last_completed >= self.stall_window_s
        recent = self._last_renewal is not None and now - self._last_renewal < self.stall_window_s
        if self._timeouts_in_a_row >= self.stall_after and quiet and not recent:
            self._renew(f"{self._timeouts_in_a_row} exchanges in a row timed out")

    def _renew(self, why: str) -> None:
        """Put a new pool in front; let the old one finish what it carries, then close it."""
        if not self._renewable or self.is_closed:
            return
        old = self._pool
        old.retired = True
        if old.in_flight == 0:
            old.drained.set()
        self._old.add(old)
        self._pool = self._new_pool()
        self.renewals += 1
        self._timeouts_in_a_row = 0
        self._last_renewal = asyncio.get_running_loop().time()
        log.warning("source_pool_renewed", reason=why, renewals=self.renewals)
        task = asyncio.create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, old: _Pool) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_S):
                await old.drained.wait()
        try:
            await old.http.aclose()
        finally:
            self._old.discard(old)

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for pool in (self._pool, *self._old):
            await pool.http.aclose()
        self._old.clear()
        # Exchanges still running fail at once on their closed pools; wait for them so none
        # outlives the client.
        await asyncio.gather(*self._exchanges, return_exceptions=True)
        await super().aclose()


def _clip_timeouts(request: httpx.Request) -> None:
    """Give the exchange no more time than the fetch deadline has left, so it ends by
    httpx's own timeout — never by a cancellation — about when its caller stops waiting."""
    limit = deadline.get()
    if limit is None:
        return
    left = max(limit - asyncio.get_running_loop().time(), MIN_EXCHANGE_TIMEOUT_S)
    timeouts: dict[str, float | None] = dict(request.extensions.get("timeout") or {})
    request.extensions["timeout"] = {
        name: left if value is None else min(value, left)
        for name, value in (timeouts or dict.fromkeys(("connect", "read", "write", "pool"))).items()
    }


def _busy_connections(http: httpx.AsyncClient) -> int | None:
    """Connections of the client's httpcore pool that are neither idle nor closed (connecting,
    new or active), or ``None`` when the client has no such pool (a test's own transport).

    httpx keeps its transport and httpcore pool in private attributes; the pool's
    ``connections`` and each connection's ``is_idle``/``is_closed`` are httpcore's public
    interface. A different shape (another httpx version) just turns this check off."""
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    connections = getattr(pool, "connections", None)
    if not isinstance(connections, list):
        return None
    try:
        return sum(1 for c in connections if not (c.is_idle() or c.is_closed()))
    except AttributeError:
        return None

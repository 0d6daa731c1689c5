"""How ``caregateway serve`` runs the app: uvloop and httptools, one process or N workers.

``asyncio.run(server.serve())`` would run the stdlib event loop even with
``uvicorn[standard]`` installed; :func:`server_config` names uvloop and httptools outright
(when installed) and :func:`run` starts the server through ``Server.run``, which uses the
configured loop.

``workers > 1``: the parent binds the listening socket once and forks that many workers,
before any event loop, thread or connection exists in it. Each worker is a whole gateway: its
own event loop, database and Redis pools, audit writer and in-process cache tier (kept right
by that worker's own eviction listener, as for replicas). The audit trail stays one valid
chain per chain id: every worker appends to the same chain, and its writer takes the
database's write lock (SQLite) or the chain's advisory lock (PostgreSQL) before it reads the
head, so two workers never fork it (see :mod:`gateway.audit.store`); ``caregateway audit
verify`` checks it as for replicas. The kernel spreads connections over the workers.

The parent only supervises: ``SIGTERM``/``SIGINT`` is passed to every worker (each drains as
one process would), and if one worker dies the others are stopped and ``serve`` exits with an
error, so that the process manager (systemd, Kubernetes) restarts the whole — a gateway with
a dead worker would refuse a share of connections at random.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any, Final, cast

import uvicorn


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The uvicorn settings of every gateway server (``serve``, ``demo``, benchmarks);
    ``options`` are further :class:`uvicorn.Config` settings (the shutdown timeout)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        lifespan="on",
        loop="uvloop" if _have("uvloop") else "asyncio",
        http=_httptools_protocol() if _have("httptools") else "h11",
        **options,
    )


class _CoalescingTransport:
    """A connection's transport whose writes of one event-loop turn go out as one.

    uvicorn writes an answer's status line and headers, then its body, each with its own
    ``write`` (a system call each, on a socket with room). They are made in the same turn of
    the loop, so what is written in a turn is kept and written once, at the end of the turn
    (``call_soon``), or before the connection is closed. Nothing is reordered or held longer
    than the turn; everything else is the transport's own."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _httptools_protocol() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, its connections writing through
    :class:`_CoalescingTransport`."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = cast(asyncio.Transport, _CoalescingTransport(transport, self.loop))

    return CoalescingHttpToolsProtocol


def run(
    config: uvicorn.Config,
    *,
    workers: int = 1,
    make_server: Callable[[uvicorn.Config], uvicorn.Server] = uvicorn.Server,
) -> int:
    """Serve until stopped; the exit status for ``serve`` (``3`` when the application did
    not start, as uvicorn's own runner says). ``make_server`` builds each process's server
    (the graceful one of :mod:`gateway.ops.shutdown`); it runs on ``config``'s event loop."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if workers == 1:
        return _run_one(make_server(config))
    sock = config.bind_socket()
    pids: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = _run_one(make_server(config), [sock])
            except BaseException:  # noqa: BLE001 - a worker must end here, never return
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    sock.close()
    return _supervise(pids)


GC_THRESHOLDS: Final = (5000, 10, 100)
"""The collector's thresholds while serving (CPython's defaults are 700, 10, 10). The third
is high because the old generation holds the remembered cache entries (each opened record
kept with its ciphertext, :mod:`gateway.cache.record_cache`): every full collection walks
all of them, and with 10 one ran about every hundred warm reads."""


SWITCH_INTERVAL_S: Final = 0.0005
"""How long the event loop's thread may keep the GIL while another thread waits for it
(CPython's default is 5 ms). The audit writer's transaction runs in a thread of its own and
takes the GIL back after each SQLite call (begin, the head, the insert, the commit): with the
loop busy answering, each of those waited up to the whole interval, and every request of
the batch waited with them."""


def settle_heap() -> None:
    """Keep what start-up built out of every later garbage collection, and collect less often.

    A warm read allocates a few thousand short-lived containers (the record's JSON, the
    Bundle); with the default thresholds the collector ran several times per request and
    walked the whole heap of imported modules and models in each full collection: a sixth of
    a warm read's GIL-held samples. Frozen, the start-up heap is never walked again; with a
    first threshold of 5,000 most of a request's objects are freed by reference counting
    before a collection sees them. Nothing is kept longer: cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _run_one(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> int:
    settle_heap()
    server.run(sockets=sockets)
    return 0 if server.started else 3


def _supervise(pids: list[int]) -> int:
    """Wait for the workers; pass on stop signals; stop all when one dies."""
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        _signal_all(pids, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    alive = set(pids)
    while alive:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries os.wait itself
            continue
        alive.discard(pid)
        code = os.waitstatus_to_exitcode(raw)
        if not stopping:
            # A worker died on its own: take the rest down, so the whole is restarted.
            stopping = True
            status = 1
            _signal_all(list(alive), signal.SIGTERM)
        elif code not in (0, -signal.SIGTERM):
            status = 1
    return status


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

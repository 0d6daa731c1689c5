"""Graceful shutdown of ``caregateway serve`` on SIGTERM (and Ctrl-C).

What a replica does when its platform stops it (Kubernetes sends SIGTERM, then SIGKILL
after ``terminationGracePeriodSeconds``):

1. **Drain** (``CAREGW_SHUTDOWN_DRAIN_S``, default 0): readiness answers ``503`` with
   ``"status": "draining"`` while the API keeps answering, so the load balancer takes the
   replica out of its endpoints before connections are refused. Liveness stays ``200``.
2. **Stop accepting**: the listening socket is closed; idle keep-alive connections are
   closed, a connection with a request in flight is closed after its answer.
3. **Finish in-flight requests**, for at most ``CAREGW_SHUTDOWN_TIMEOUT_S`` (default 20 s;
   what is still running then is cancelled). Each one's AuditEvent is committed before its
   answer starts, as always.
4. **Flush the audit trail**: the application's shutdown closes the audit store, which
   commits everything queued (corrections of withdrawn events included) before the process
   ends, then closes the sources' pools, the cache and the database engine.

The process then exits ``0``. A second signal during the drain skips the rest of it; a
second Ctrl-C forces the exit. uvicorn's own handling would re-raise the signal once it had
finished, so the process would end "killed by SIGTERM" (exit 143) after a clean shutdown;
this server records the signal and returns instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import threading
from collections.abc import Generator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger(__name__)

HANDLED = (signal.SIGTERM, signal.SIGINT)


@dataclass(slots=True)
class Drain:
    """Whether this process is shutting down; readiness and the metrics read it."""

    draining: bool = False


class GracefulServer(uvicorn.Server):
    """uvicorn's server with the drain phase first and a clean exit status."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_s: float = 0.0) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_s = drain_s
        self.signalled: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._loop = asyncio.get_running_loop()
        original = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.draining:  # a second signal: no more draining
            self.force_exit = self.force_exit or sig == signal.SIGINT
            self.should_exit = True
            return
        self.signalled = sig
        self.drain.draining = True
        if self._loop is None:  # pragma: no cover - signals are captured inside serve()
            self.should_exit = True
            return
        # The rest runs in the loop, not in whichever request's context the signal landed.
        self._loop.call_soon_threadsafe(self._begin, sig)

    def _begin(self, sig: int) -> None:
        log.info("shutdown_started", signal=signal.Signals(sig).name, drain_s=self.drain_s)
        if self.drain_s <= 0 or self._loop is None:
            self.should_exit = True
            return
        self._loop.call_later(self.drain_s, self._stop_accepting)

    def _stop_accepting(self) -> None:
        log.info("shutdown_drain_done")
        self.should_exit = True


def serve_gracefully(
    app: Any,
    *,
    host: str,
    port: int,
    drain: Drain,
    drain_s: float,
    timeout_s: float,
    workers: int = 1,
) -> int:
    """Run ``app`` until a signal has been handled as above; the exit status (``0``, or
    ``3`` when the application did not start, as uvicorn's own runner says). On uvloop and
    httptools (:mod:`gateway.serving`); ``workers > 1``: that many processes on one socket,
    each stopping as above when the supervising parent passes the signal on."""
    from gateway.serving import run, server_config

    config = server_config(app, host, port, timeout_graceful_shutdown=max(1, math.ceil(timeout_s)))

    def graceful(config: uvicorn.Config) -> uvicorn.Server:
        return GracefulServer(config, drain, drain_s)

    status = run(config, workers=workers, make_server=graceful)
    if status == 0:
        log.info("shutdown_complete")
    return status

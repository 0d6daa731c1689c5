"""Running the gateway as a service: metrics, rate limits, graceful shutdown.

:class:`Operations` is built from the settings by ``serve`` (``CAREGW_METRICS_PORT``,
``CAREGW_RATE_LIMIT``, ``CAREGW_SHUTDOWN_*``) and handed to
:func:`gateway.app.create_app`, which installs the request metrics middleware and, once the
gateway state is built, calls :meth:`Operations.start` (hooks, the metrics listener) and at
shutdown :meth:`Operations.stop`. Everything is off unless configured; off, nothing of it is
on the request path. See :mod:`gateway.ops.metrics`, :mod:`gateway.ops.ratelimit` and
:mod:`gateway.ops.shutdown`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.ops.metrics import GatewayMetrics, MetricsServer, RequestMetrics
from gateway.ops.ratelimit import RateLimit, RateLimiter, TooManyRequests, parse_rate_limit
from gateway.ops.shutdown import Drain, GracefulServer, serve_gracefully
from gateway.ops.tracing import TraceContextMiddleware
from gateway.settings import ConfigurationError, Settings

__all__ = [
    "Drain",
    "GatewayMetrics",
    "GracefulServer",
    "MetricsServer",
    "Operations",
    "RateLimit",
    "RateLimiter",
    "TooManyRequests",
    "parse_rate_limit",
    "serve_gracefully",
    "TraceContextMiddleware",
]


@dataclass
class Operations:
    """What one gateway process runs beside the API (each part optional)."""

    metrics: GatewayMetrics | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    rate_limiter: RateLimiter | None = None
    drain: Drain = field(default_factory=Drain)
    _listener: MetricsServer | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Operations:
        """From ``CAREGW_*``; :class:`ConfigurationError` naming the variable if wrong."""
        limiter = None
        if settings.rate_limit:
            try:
                limit = parse_rate_limit(settings.rate_limit)
            except ValueError as exc:
                raise ConfigurationError(f"CAREGW_RATE_LIMIT: {exc}") from exc
            limiter = RateLimiter(limit, settings.redis_url)
        metrics = GatewayMetrics() if settings.metrics_port is not None else None
        return cls(
            metrics=metrics,
            metrics_host=settings.metrics_host or settings.host,
            metrics_port=settings.metrics_port,
            rate_limiter=limiter,
        )

    def install(self, app: Any) -> None:
        """Add the trace context middleware and the request metrics middleware (outermost,
        so it sees the status sent)."""
        app.add_middleware(TraceContextMiddleware)
        if self.metrics is not None:
            app.add_middleware(RequestMetrics, metrics=self.metrics)

    async def start(self, state: Any) -> None:
        state.drain = self.drain
        state.rate_limiter = self.rate_limiter
        if self.metrics is None or self.metrics_port is None:
            return
        self.metrics.bind(state, self.rate_limiter, self.drain)
        listener = MetricsServer(self.metrics, self.metrics_host, self.metrics_port)
        try:
            await listener.start()
        except OSError as exc:
            raise ConfigurationError(
                f"CAREGW_METRICS_PORT: cannot listen on {self.metrics_host}:{self.metrics_port}"
                f" ({exc.strerror or type(exc).__name__})"
            ) from exc
        self._listener = listener

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        if self.rate_limiter is not None:
            await self.rate_limiter.aclose()

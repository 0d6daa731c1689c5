"""Prometheus metrics, served on a listener of their own (``CAREGW_METRICS_PORT``).

Off by default. When on, the gateway process opens a second, plain HTTP listener (no
TLS, no token: put it where only the monitoring system can reach it) that answers
``GET /metrics`` in the Prometheus text format; the API port never serves metrics.

What is measured, and where it comes from:

* requests by method, **route template** (``/fhir/Patient/{nhs}``, never the path) and the
  status the client received, and their latency (:class:`RequestMetrics`, an ASGI middleware
  around the error boundary, so a ``503`` the boundary put in place of an answer is counted
  as ``503``);
* access decisions by effect (``permit``, ``permit-filtered``, ``deny``, ``indeterminate``),
  read from the request's audit note after it has been answered;
* per source: fetch latency and outcome (a hook in :class:`gateway.records.service.RecordService`;
  cache hits are not fetches), failures, circuit state, health and pool renewals (read at
  scrape time from the state readiness also reports);
* the record cache's hits, misses, errors and writes (its own counters, read at scrape);
* the audit trail's group commits: events per batch and commit latency (a hook in
  :class:`gateway.audit.writer.GroupCommitWriter`), failed commits, events written;
* rate-limit refusals by caller kind, and whether the process is draining for shutdown.

No label ever holds an NHS number, a user id, a client id, a request id or anything else a
caller chooses: labels are route templates, methods, statuses, configured source names and
fixed vocabularies. Values outside a vocabulary are counted as ``other``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any, Final

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.base import SourceResult
from gateway.audit import note as audit_trail

log = structlog.get_logger(__name__)

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
EFFECTS: Final = frozenset({"permit", "permit-filtered", "deny", "indeterminate"})
CIRCUIT_STATES: Final = ("closed", "half-open", "open")
HEAD_LIMIT: Final = 16 * 1024  # bytes of request head the metrics listener reads, at most
HEAD_TIMEOUT_S: Final = 5.0


class GatewayMetrics:
    """Every instrument of one gateway process, in a registry of its own (tests run several
    gateways in one process; the global registry would mix them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "caregateway_http_requests",
            "HTTP requests answered, by method, route template and status sent.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "caregateway_http_request_duration_seconds",
            "Time from the request reaching the gateway to the end of its answer.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "caregateway_access_decisions",
            "Access decisions made, by effect.",
            ["effect"],
            registry=r,
        )
        self.source_fetch = Histogram(
            "caregateway_source_fetch_duration_seconds",
            "Time a fetch from a source took (cache hits are not fetches).",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.source_outcomes = Counter(
            "caregateway_source_fetches",
            "Fetches from each source, by outcome (found, not-found, timed-out, ...).",
            ["source", "outcome"],
            registry=r,
        )
        self.source_failures = Counter(
            "caregateway_source_failures",
            "Fetches from each source that got no answer (timed out, failed, refused).",
            ["source"],
            registry=r,
        )
        self.audit_batch = Histogram(
            "caregateway_audit_batch_events",
            "AuditEvents committed per group-commit transaction.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.audit_commit = Histogram(
            "caregateway_audit_commit_duration_seconds",
            "Time one audit group commit took (chain lock, head read, insert, commit).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_commit_failures = Counter(
            "caregateway_audit_commit_failures",
            "Audit group commits that failed (the requests in them were answered 503).",
            registry=r,
        )
        self._state_collector: _StateCollector | None = None

    # --- hooks -------------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_decision(self, effect: str) -> None:
        self.decisions.labels(effect if effect in EFFECTS else "other").inc()

    def observe_source(self, source: str, result: SourceResult, seconds: float) -> None:
        self.source_fetch.labels(source).observe(seconds)
        self.source_outcomes.labels(source, str(result.outcome.value)).inc()
        if not result.ok:
            self.source_failures.labels(source).inc()

    def observe_audit_commit(self, events: int, seconds: float, ok: bool) -> None:
        if ok:
            self.audit_batch.observe(events)
            self.audit_commit.observe(seconds)
        else:
            self.audit_commit_failures.inc()

    def bind(self, state: Any, limiter: Any = None, drain: Any = None) -> None:
        """Attach the hooks to a built gateway state and read the rest of it at scrape."""
        access = getattr(state, "access", None)
        if access is not None:
            access.observe_fetches(self.observe_source)
        audit = getattr(state, "audit", None)
        if audit is not None:
            audit.on_commit = self.observe_audit_commit
        if self._state_collector is not None:
            self.registry.unregister(self._state_collector)
        self._state_collector = _StateCollector(state, limiter, drain)
        self.registry.register(self._state_collector)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """What the gateway already counts, read when scraped (nothing added to the hot path)."""

    def __init__(self, state: Any, limiter: Any, drain: Any) -> None:
        self.state = state
        self.limiter = limiter
        self.drain = drain

    def describe(self) -> list[Metric]:
        return []  # families depend on the configuration; described when collected

    def collect(self) -> Iterator[Metric]:
        yield from self._sources()
        yield from self._cache()
        yield from self._audit()
        limiter = self.limiter
        if limiter is not None:
            refused = CounterMetricFamily(
                "caregateway_rate_limited",
                "Requests refused 429 by the rate limit, by caller kind.",
                labels=["kind"],
            )
            for kind in ("user", "system", "patient"):
                refused.add_metric([kind], float(limiter.refused.get(kind, 0)))
            yield refused
            yield CounterMetricFamily(
                "caregateway_rate_limit_redis_failures",
                "Rate-limit checks decided in process because Redis could not be reached.",
                value=float(limiter.redis_failures),
            )
        draining = bool(getattr(self.drain, "draining", False))
        yield GaugeMetricFamily(
            "caregateway_draining",
            "1 while the process is shutting down (readiness 503, finishing in-flight work).",
            value=1.0 if draining else 0.0,
        )

    def _sources(self) -> Iterator[Metric]:
        access = getattr(self.state, "access", None)
        if access is None:
            return
        circuit = GaugeMetricFamily(
            "caregateway_source_circuit_state",
            "1 for each source's current circuit state (closed, half-open, open).",
            labels=["source", "state"],
        )
        healthy = GaugeMetricFamily(
            "caregateway_source_healthy",
            "1 when the source answered its recent fetches (readiness sourceHealth).",
            labels=["source"],
        )
        renewals = CounterMetricFamily(
            "caregateway_source_pool_renewals",
            "Connection pools replaced for making no progress.",
            labels=["source"],
        )
        breakers = getattr(self.state, "breakers", {}) or {}
        for adapter in access.sources():
            name = str(adapter.name)
            breaker = getattr(adapter, "breaker", None) or breakers.get(name)
            now = str(getattr(breaker, "state", "unknown"))
            for each in CIRCUIT_STATES:
                circuit.add_metric([name, each], 1.0 if now == each else 0.0)
            seen = access.source_health(name)
            ok = (seen is None or seen.healthy) and now != "open"
            healthy.add_metric([name], 1.0 if ok else 0.0)
            renewals.add_metric([name], float(getattr(adapter, "pool_renewals", 0)))
        yield circuit
        yield healthy
        yield renewals

    def _cache(self) -> Iterator[Metric]:
        cache = getattr(self.state, "cache", None)
        if cache is None:
            return
        stats = cache.stats
        for name, text in (
            ("hits", "Record cache lookups answered from the cache."),
            ("misses", "Record cache lookups not found (then fetched from the source)."),
            ("errors", "Cached values that could not be decrypted or read (deleted)."),
            ("unavailable", "Cache backend calls that failed (Redis unreachable)."),
            ("writes", "Values stored in the record cache."),
        ):
            yield CounterMetricFamily(f"caregateway_cache_{name}", text, value=getattr(stats, name))

    def _audit(self) -> Iterator[Metric]:
        audit = getattr(self.state, "audit", None)
        if audit is None:
            return
        yield CounterMetricFamily(
            "caregateway_audit_events_written",
            "AuditEvents committed by this process.",
            value=float(getattr(audit, "events_written", 0)),
        )
        yield CounterMetricFamily(
            "caregateway_audit_transactions",
            "Audit write transactions committed by this process.",
            value=float(getattr(audit, "transactions", 0)),
        )


class RequestMetrics:
    """Pure ASGI middleware: counts and times each HTTP request, outside the error boundary
    (so it sees the status that was really sent), and the access decision it carried."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        note_before = audit_trail.current()

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(
                str(scope.get("method", "")), str(route), status, time.perf_counter() - started
            )
            note = audit_trail.current()
            if note is not None and note is not note_before and note.effect:
                self.metrics.observe_decision(note.effect)


class MetricsServer:
    """The metrics listener: a minimal HTTP/1.1 server that answers ``GET /metrics`` and
    closes each connection. Its own asyncio server in the gateway's event loop, so it needs
    no thread and shares nothing with the API port (no middleware, no token, no audit)."""

    def __init__(self, metrics: GatewayMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=HEAD_LIMIT
        )
        log.info("metrics_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method in (b"GET", b"HEAD") and path == b"/metrics":
                body = self.metrics.exposition()
                status, ctype = b"200 OK", CONTENT_TYPE_LATEST.encode()
            else:
                body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
            head_out = (
                b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % (status, ctype, len(body))
            )
            writer.write(head_out + (b"" if method == b"HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that sent no sane request head gets nothing
        except Exception as exc:  # a scrape must never take the process down
            log.error("metrics_scrape_failed", error=type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

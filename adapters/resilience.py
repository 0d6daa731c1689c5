"""Failure handling shared by every HTTP adapter: one error mapping and a circuit breaker.

Upstream (httpx) errors are translated once, here, into :class:`SourceFault` with an
:class:`~adapters.base.Outcome`; adapters turn a fault into a failed ``SourceResult``.
``tests/adapters/test_resilience.py`` checks every httpx exception type has a mapping.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import httpx
import orjson

from adapters.base import Outcome, Resource

T = TypeVar("T")


class SourceFault(Exception):
    """A source could not give a usable answer. ``outcome`` says which kind of failure."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def map_httpx_error(exc: httpx.HTTPError) -> SourceFault:
    """Map any httpx error to a fault. Timeouts are their own outcome; the rest are unavailable."""
    if isinstance(exc, httpx.TimeoutException):
        return SourceFault(Outcome.TIMED_OUT, f"timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.HTTPStatusError):
        return SourceFault(Outcome.UNAVAILABLE, f"HTTP {exc.response.status_code}")
    if isinstance(exc, httpx.DecodingError):
        return SourceFault(Outcome.BAD_DATA, "undecodable response body")
    return SourceFault(Outcome.UNAVAILABLE, f"{type(exc).__name__}")


class CircuitOpen(SourceFault):
    def __init__(self) -> None:
        super().__init__(Outcome.UNAVAILABLE, "circuit open after repeated failures")


#: Seconds an open circuit waits before it lets a trial call through. Short, so a source that
#: has come back is used again within seconds; a trial against a source still down costs
#: one failed call per source every few seconds.
RESET_S: Final = 5.0


@dataclass(eq=False)  # one breaker per source, compared by identity
class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures; half-open after ``reset_s``.

    In half-open state one trial call is let through: success closes the circuit, failure
    opens it again. Per process, per source (a replica that has not seen failures keeps
    trying, which is what we want for a shared source).
    """

    threshold: int = 5
    reset_s: float = RESET_S
    clock: Callable[[], float] = time.monotonic
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.reset_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        return self.state != "open"

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._failures >= self.threshold or self._opened_at is not None:
            self._opened_at = self.clock()


@asynccontextmanager
async def guarded(breaker: CircuitBreaker) -> AsyncIterator[None]:
    """Run a source call under the breaker, mapping httpx errors to :class:`SourceFault`.

    Only source faults count against the breaker; a ``NOT_FOUND`` is a healthy answer.
    """
    if not breaker.allow():
        raise CircuitOpen()
    try:
        yield
    except httpx.HTTPError as exc:
        breaker.record_failure()
        raise map_httpx_error(exc) from exc
    except SourceFault as fault:
        if fault.outcome is not Outcome.NOT_FOUND:
            breaker.record_failure()
        raise
    else:
        breaker.record_success()


# --- deadlines and one polite retry -------------------------------------------------------

MAX_RETRY_AFTER_S: Final = 2.0  # never wait longer than this for one Retry-After

#: When the current fetch must be done by (event-loop time); set by :func:`deadline_scope`.
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "source_deadline", default=None
)


@asynccontextmanager
async def deadline_scope(timeout_s: float) -> AsyncIterator[None]:
    """Everything inside must finish within ``timeout_s`` (``TimeoutError`` otherwise); the
    client's retry reads the same deadline so it never waits past it."""
    token = deadline.set(asyncio.get_running_loop().time() + timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            yield
    finally:
        deadline.reset(token)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta or HTTP date), or None if unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def fits_deadline(delay: float) -> bool:
    """True when ``delay`` is short and waiting still leaves time for the retry itself."""
    if not math.isfinite(delay) or delay > MAX_RETRY_AFTER_S:
        return False
    limit = deadline.get()
    if limit is None:
        return True
    remaining = limit - asyncio.get_running_loop().time()
    return delay < remaining * 0.8


async def get_with_one_retry(
    http: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str],
    breaker: CircuitBreaker,
    retry_on: frozenset[int],
    parse: Callable[[httpx.Response], T],
) -> T:
    """One GET under ``breaker``; a ``retry_on`` status with a ``Retry-After`` that fits the
    deadline is retried once. ``parse`` turns the answer into a value or a
    :class:`SourceFault`, inside the breaker, so a source's error answers count against it."""
    async with guarded(breaker):
        response = await http.get(url, params=params, headers=headers)
        if response.status_code in retry_on:
            delay = retry_after(response)
            if delay is not None and fits_deadline(delay):
                await asyncio.sleep(delay)
                response = await http.get(url, params=params, headers=headers)
        return parse(response)


def answer_or_fault(response: httpx.Response, detail: Callable[[httpx.Response], str]) -> Resource:
    """A source's answer as a JSON object, or the :class:`SourceFault` it amounts to.

    ``200`` → the body (a JSON object, else ``BAD_DATA``); ``404`` → ``NOT_FOUND`` (healthy);
    ``401``/``403`` → ``UNAVAILABLE`` "refused"; anything else → ``UNAVAILABLE`` with
    ``detail(response)``, the client's own reading of its source's error bodies (codes only:
    sources may echo identifiers in messages).
    """
    status = response.status_code
    if status == 200:
        try:
            # orjson: a third of the cost of ``response.json()`` for a source's page, and
            # every cold read parses a dozen (the specs make both sources' bodies UTF-8).
            body: Any = orjson.loads(response.content)
        except ValueError:
            raise SourceFault(Outcome.BAD_DATA, "response is not JSON") from None
        if not isinstance(body, dict):
            raise SourceFault(Outcome.BAD_DATA, "response is not a JSON object")
        return body
    if status == 404:
        raise SourceFault(Outcome.NOT_FOUND, "HTTP 404")
    if status in (401, 403):
        raise SourceFault(Outcome.UNAVAILABLE, f"refused by source (HTTP {status})")
    raise SourceFault(Outcome.UNAVAILABLE, detail(response))

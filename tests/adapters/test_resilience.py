"""adapters.resilience: every httpx error has a mapping; the breaker and guarded()."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest

from adapters.base import Outcome
from adapters.resilience import (
    MAX_RETRY_AFTER_S,
    CircuitBreaker,
    CircuitOpen,
    SourceFault,
    deadline,
    deadline_scope,
    fits_deadline,
    guarded,
    map_httpx_error,
    retry_after,
)
from tests.adapters.support import ManualClock

REQUEST = httpx.Request("GET", "http://source.test/x")

# httpx's public exceptions that are not httpx.HTTPError: programming or configuration errors
# on our side (bad URL, misuse of a stream or cookie jar), never an answer from a source.
# They are deliberately left to propagate; a new httpx exception must be added to one list.
NOT_SOURCE_ERRORS = {
    "CookieConflict",
    "InvalidURL",
    "StreamError",
    "StreamClosed",
    "StreamConsumed",
    "RequestNotRead",
    "ResponseNotRead",
}

EXPECTED: dict[str, Outcome] = {
    "HTTPError": Outcome.UNAVAILABLE,
    "HTTPStatusError": Outcome.UNAVAILABLE,
    "RequestError": Outcome.UNAVAILABLE,
    "TransportError": Outcome.UNAVAILABLE,
    "TimeoutException": Outcome.TIMED_OUT,
    "ConnectTimeout": Outcome.TIMED_OUT,
    "ReadTimeout": Outcome.TIMED_OUT,
    "WriteTimeout": Outcome.TIMED_OUT,
    "PoolTimeout": Outcome.TIMED_OUT,
    "NetworkError": Outcome.UNAVAILABLE,
    "ConnectError": Outcome.UNAVAILABLE,
    "ReadError": Outcome.UNAVAILABLE,
    "WriteError": Outcome.UNAVAILABLE,
    "CloseError": Outcome.UNAVAILABLE,
    "ProtocolError": Outcome.UNAVAILABLE,
    "LocalProtocolError": Outcome.UNAVAILABLE,
    "RemoteProtocolError": Outcome.UNAVAILABLE,
    "ProxyError": Outcome.UNAVAILABLE,
    "UnsupportedProtocol": Outcome.UNAVAILABLE,
    "TooManyRedirects": Outcome.UNAVAILABLE,
    "DecodingError": Outcome.BAD_DATA,
}


def public_exceptions() -> list[type[BaseException]]:
    return [
        obj
        for name in httpx.__all__
        if inspect.isclass(obj := getattr(httpx, name)) and issubclass(obj, BaseException)
    ]


def instance(cls: type[httpx.HTTPError]) -> httpx.HTTPError:
    if cls is httpx.HTTPStatusError:
        return httpx.HTTPStatusError(
            "boom", request=REQUEST, response=httpx.Response(502, request=REQUEST)
        )
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=REQUEST)
    return cls("boom")


def test_every_public_httpx_exception_is_classified() -> None:
    names = {cls.__name__ for cls in public_exceptions()}
    assert names == set(EXPECTED) | NOT_SOURCE_ERRORS, "a new httpx exception needs a mapping"
    for cls in public_exceptions():
        assert issubclass(cls, httpx.HTTPError) == (cls.__name__ in EXPECTED)


@pytest.mark.parametrize(
    "cls",
    [c for c in public_exceptions() if issubclass(c, httpx.HTTPError)],
    ids=lambda c: c.__name__,
)
def test_every_httpx_error_maps_to_a_fault(cls: Any) -> None:
    fault = map_httpx_error(instance(cls))
    assert isinstance(fault, SourceFault)
    assert fault.outcome is EXPECTED[cls.__name__]
    assert fault.detail and "source.test" not in fault.detail


def test_status_error_detail_names_the_status() -> None:
    assert map_httpx_error(instance(httpx.HTTPStatusError)).detail == "HTTP 502"


def test_breaker_opens_after_threshold_and_half_opens_after_reset() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(threshold=3, reset_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 10.0
    assert breaker.state == "half-open" and breaker.allow()
    breaker.record_failure()  # the trial failed: open again, for a full reset period
    assert breaker.state == "open"
    clock.now = 20.0
    breaker.record_success()
    assert breaker.state == "closed"


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(threshold=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


async def test_guarded_maps_errors_and_counts_only_source_faults() -> None:
    breaker = CircuitBreaker(threshold=2)
    for _ in range(3):
        with pytest.raises(SourceFault) as info:
            async with guarded(breaker):
                raise SourceFault(Outcome.NOT_FOUND, "HTTP 404")
        assert info.value.outcome is Outcome.NOT_FOUND
    assert breaker.state == "closed"
    with pytest.raises(SourceFault) as info:
        async with guarded(breaker):
            raise httpx.ConnectError("refused", request=REQUEST)
    assert info.value.outcome is Outcome.UNAVAILABLE
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    with pytest.raises(SourceFault):
        async with guarded(breaker):
            raise SourceFault(Outcome.UNAVAILABLE, "HTTP 503")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        async with guarded(breaker):
            pytest.fail("must not run while open")


async def test_guarded_success_closes() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(threshold=1, reset_s=1, clock=clock)
    breaker.record_failure()
    clock.now = 1.0
    async with guarded(breaker):
        pass
    assert breaker.state == "closed"


async def test_guarded_lets_other_errors_through_uncounted() -> None:
    breaker = CircuitBreaker(threshold=1)
    with pytest.raises(KeyError):
        async with guarded(breaker):
            raise KeyError("bug")
    assert breaker.state == "closed"


# --- Retry-After and the fetch deadline ----------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [("0", 0.0), ("2", 2.0), (" 7 ", 7.0), ("soon", None), ("-1", None), ("", None)],
)
def test_retry_after_reads_seconds(header: str, expected: float | None) -> None:
    response = httpx.Response(429, headers={"Retry-After": header})
    assert retry_after(response) == expected


def test_retry_after_reads_an_http_date_and_never_goes_negative() -> None:
    past = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after(past) == 0.0
    future = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert (retry_after(future) or 0.0) > MAX_RETRY_AFTER_S
    assert retry_after(httpx.Response(503)) is None


async def test_a_wait_must_be_short_and_fit_the_deadline() -> None:
    assert fits_deadline(0.5) and fits_deadline(MAX_RETRY_AFTER_S)  # no deadline set
    assert not fits_deadline(MAX_RETRY_AFTER_S + 0.1) and not fits_deadline(float("inf"))
    async with deadline_scope(1.0):
        assert fits_deadline(0.5)  # 0.5 s leaves time for the retry itself
        assert not fits_deadline(0.9)  # it would not
    assert deadline.get() is None  # the scope restores the caller's deadline

"""What the adapter tests against the real simulators share: scenario NHS numbers, the
simulators' configs and their ``/_control`` endpoint (faults, latency, reset)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import httpx
import pytest

from adapters.base import Outcome, SourceAdapter, SourceConfig, SourceKind, SourceResult
from simulators.population import SCENARIOS
from simulators.runner import RunningSources, source_configs

A = TypeVar("A", bound=SourceAdapter)


def nhs(key: str) -> str:
    """The NHS number of scenario person ``key`` (README table)."""
    number = SCENARIOS[key].nhs_number
    assert number is not None
    return number


def source_config(running: RunningSources, kind: SourceKind, **changes: Any) -> SourceConfig:
    """The running simulator of ``kind`` as a source config, with ``changes`` applied."""
    (found,) = [c for c in source_configs(running) if c.kind == kind]
    return dataclasses.replace(found, **changes)


def _url(running: RunningSources, kind: SourceKind) -> str:
    return running.social_care_url if kind == "social-care-api" else running.community_url


async def control(running: RunningSources, kind: SourceKind, **settings: Any) -> None:
    """Set the simulator's faults or latency (``POST /_control``)."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{_url(running, kind)}/_control", json=settings)
        response.raise_for_status()


async def reset(running: RunningSources, kind: SourceKind) -> None:
    """Clear the simulator's faults, latency and request counts (``POST /_control/reset``)."""
    async with httpx.AsyncClient() as client:
        await client.post(f"{_url(running, kind)}/_control/reset")


async def closing(adapter: A, running: RunningSources, kind: SourceKind) -> AsyncIterator[A]:
    """Yield ``adapter``; afterwards close it and reset its simulator (for fixtures)."""
    try:
        yield adapter
    finally:
        await adapter.aclose()
        await reset(running, kind)


def adapter_fixture(make: Callable[[SourceConfig], A], kind: SourceKind) -> Any:
    """The module's ``adapter`` fixture: ``make`` on the running simulator of ``kind``, closed
    and its simulator reset afterwards."""

    async def adapter(running_sources: RunningSources) -> AsyncIterator[A]:
        async for made in closing(
            make(source_config(running_sources, kind)), running_sources, kind
        ):
            yield made

    return pytest.fixture(adapter)


def bound(kind: SourceKind, make: Callable[[SourceConfig], A]) -> tuple[Any, Any, Any]:
    """What a module testing one adapter binds once: ``config(running, **changes)`` and
    ``control(running, **settings)`` for its simulator, and its ``adapter`` fixture."""
    config = functools.partial(source_config, kind=kind)
    control_it = functools.partial(control, kind=kind)
    return config, control_it, adapter_fixture(make, kind)


async def assert_429_retried_once(
    adapter: SourceAdapter, running: RunningSources, kind: SourceKind
) -> None:
    """One ``429`` with ``Retry-After: 0``, then the answer: the adapter waits, asks once
    more and finds the person."""
    await control(running, kind, fail_status=429, fail_count=1, retry_after_s=0)
    result = await adapter.fetch(nhs("both"))
    assert result.outcome is Outcome.FOUND, result.detail


async def fetched_once(adapter: SourceAdapter, number: str) -> SourceResult:
    """One fetch by an adapter made for one test, closed afterwards."""
    try:
        return await adapter.fetch(number)
    finally:
        await adapter.aclose()


def of_type(resources: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    """The resources of one ``resourceType``, in order."""
    return [r for r in resources if r["resourceType"] == kind]

"""What the adapter tests against the real simulators share: scenario NHS numbers, the
simulators' configs and their ``/_control`` endpoint (faults, latency, reset)."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from adapters.base import SourceConfig, SourceKind
from simulators.population import SCENARIOS
from simulators.runner import RunningSources, source_configs


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

"""Faults set on the source simulators, and a fresh gateway in front of them.

Tests of partial answers, outages and readiness each start their own gateway (own circuit
breakers) and put the shared simulators back as they found them, before and after, whatever
an earlier test left behind; the steps for that are said once here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from simulators.runner import RunningSources, source_configs
from tests.gateway.harness import Gateway, running_gateway


async def reset_sources(running: RunningSources) -> None:
    """Both simulators back to answering normally."""
    async with httpx.AsyncClient() as client:
        for url in (running.social_care_url, running.community_url):
            (await client.post(f"{url}/_control/reset")).raise_for_status()


async def set_control(url: str, **settings: Any) -> None:
    """One simulator (``url``) fails or slows down as ``settings`` say."""
    async with httpx.AsyncClient() as client:
        (await client.post(f"{url}/_control", json=settings)).raise_for_status()


@asynccontextmanager
async def fresh_gateway(
    running: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    *,
    timeout_s: float | None = None,
    reset: Callable[[RunningSources], Awaitable[None]] = reset_sources,
    socket: bool = False,
) -> AsyncIterator[Gateway]:
    """A gateway of its own (sources timing out after ``timeout_s``, if given) between two
    ``reset`` calls of the simulators; served by uvicorn when ``socket``."""
    await reset(running)
    configs = source_configs(running)
    if timeout_s is not None:
        configs = [dataclasses.replace(c, timeout_s=timeout_s) for c in configs]
    async with running_gateway(configs, *signing_key, socket=socket) as gateway:
        yield gateway
    await reset(running)

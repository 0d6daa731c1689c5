"""Fixtures shared across the test packages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from simulators.runner import RunningSources, serve_sources


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def running_sources() -> AsyncIterator[RunningSources]:
    """Both simulated sources serving the default seeded population on loopback ports."""
    async with serve_sources() as running:
        yield running

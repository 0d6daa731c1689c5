"""HTTP clients for the running simulators (``running_sources`` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from simulators.runner import RunningSources


@pytest_asyncio.fixture
async def social(running_sources: RunningSources) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-Api-Key": running_sources.api_key}
    async with httpx.AsyncClient(base_url=running_sources.social_care_url, headers=headers) as c:
        yield c


@pytest_asyncio.fixture
async def community(running_sources: RunningSources) -> AsyncIterator[httpx.AsyncClient]:
    headers = {
        "Authorization": f"Bearer {running_sources.bearer_token}",
        "Accept": "application/fhir+json",
    }
    async with httpx.AsyncClient(base_url=running_sources.community_url, headers=headers) as c:
        yield c

"""The gateway every joint-plan test module runs on: over a new SQLite file, then PostgreSQL.

A module-scoped fixture, parametrized by the kind of database, so that each module says
only what it does with that gateway (and what it writes first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from simulators.runner import RunningSources, source_configs
from tests.gateway.harness import Gateway, running_gateway
from tests.gateway.joint_support import fresh_database


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["sqlite", "postgresql"])
async def joint_gateway(
    request: pytest.FixtureRequest,
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Gateway]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("joint")
    async with (
        fresh_database(request.param, folder, pg) as url,
        running_gateway(source_configs(running_sources), *signing_key, database_url=url) as gw,
    ):
        yield gw

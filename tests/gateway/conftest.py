"""Gateway fixtures: a real gateway in front of the real source simulators.

The gateways are served in-process (``tests.gateway.harness``); a test module whose point is
the socket marks itself ``pytestmark = pytest.mark.socket`` and its ``gw`` is served by uvicorn
on a loopback port instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.auth import generate_signing_key
from simulators.runner import source_configs
from tests.gateway.harness import Gateway, running_gateway
from tests.gateway.postgres_server import postgres_url  # noqa: F401  (a session fixture)


@pytest.fixture(scope="session")
def signing_key() -> tuple[bytes, dict[str, Any]]:
    return generate_signing_key()


def wants_socket(request: pytest.FixtureRequest) -> bool:
    """Whether the requesting module (or test) is marked ``socket``."""
    return request.node.get_closest_marker("socket") is not None


@pytest.fixture(scope="session")
async def gateway(
    running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    async with running_gateway(source_configs(running_sources), *signing_key) as gw:
        yield gw


@pytest.fixture(scope="module")
async def gw(
    request: pytest.FixtureRequest,
    running_sources: Any,
    signing_key: tuple[bytes, dict[str, Any]],
) -> AsyncIterator[Gateway]:
    """A gateway of the test module's own (own SQLite file: its audit trail, its Consents).
    A module that needs something else defines its own ``gw``."""
    async with running_gateway(
        source_configs(running_sources), *signing_key, socket=wants_socket(request)
    ) as gateway:
        yield gateway

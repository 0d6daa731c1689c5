"""A gateway with the SMART authorization server on, in front of the real simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.auth import generate_signing_key
from simulators.runner import source_configs
from tests.gateway.harness import Gateway, running_gateway
from tests.smart.support import smart_config


@pytest.fixture(scope="session")
async def smart_gateway(running_sources: Any) -> AsyncIterator[Gateway]:
    async with running_gateway(
        source_configs(running_sources), *generate_signing_key(), smart=smart_config, socket=True
    ) as gw:
        yield gw

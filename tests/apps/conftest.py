"""Browser tests of the gateway's apps: a real ``caregateway demo``, headless Chromium.

The fixtures are :mod:`tests.support.apps` (``demo``, ``browser``, ``page``); here only what
is this package's own: a desktop-sized page, screenshots in ``tests/apps/artefacts/``, and
axe-core from ``tests/apps/node_modules`` (``npm ci --prefix tests/apps``).
``api_token(demo, ...)`` gets a token by the EHR launch + PKCE flow over plain HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import AppPackage, browser, demo, page  # noqa: F401  (fixtures)
from tests.support.demo import Demo, api_token
from tests.support.people import BOTH, GP_ORG

__all__ = ["BOTH", "GP", "Demo", "api_token", "check_page"]

GP = GP_ORG
check_page = AppPackage(Path(__file__).parent).check_page


@pytest.fixture
def page_options() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 900}, "accept_downloads": True}

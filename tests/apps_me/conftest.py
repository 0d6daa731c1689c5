"""Browser tests of the patient view (/apps/me/): a real ``caregateway demo``, headless
Chromium, with the same fixtures as the other apps' browser tests (:mod:`tests.support.apps`).

Here only what is this package's own: a phone-sized page (the view is designed for a phone
screen first), screenshots in ``tests/apps_me/artefacts/``, and axe-core from
``tests/apps_me/node_modules`` (``npm ci --prefix tests/apps_me``).
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
    return {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    }

"""Fixtures for a package of browser tests of the gateway's apps; its conftest imports them
and adds what is its own (``page_options``: the page's size and device; ``check_page``
through :class:`AppPackage`: where its screenshots and its axe-core are).

* ``demo`` (session, one per package that imports it): :func:`tests.support.demo.running_demo`.
* ``browser`` (module, see :mod:`tests.support.browser` for why never session).
* ``page`` (per test): a fresh context opened with the package's ``page_options``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import browser as browsers
from tests.support.demo import Demo, running_demo


@pytest.fixture(scope="session")
def demo() -> Iterator[Demo]:
    with running_demo("caregateway-apps-test-") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from browsers.chromium()


@pytest.fixture
def page(browser: Any, page_options: dict[str, Any]) -> Iterator[Any]:
    yield from browsers.open_page(browser, **page_options)


class AppPackage:
    """A test package's folder: ``artefacts/`` for screenshots, ``node_modules/axe-core``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def check_page(self, page: Any, name: str) -> None:
        """Screenshot, no script or CSP error so far, and no WCAG 2.2 A/AA violation."""
        browsers.check_page(
            page,
            name,
            artefacts=self.folder / "artefacts",
            axe=self.folder / "node_modules" / "axe-core" / "axe.min.js",
            install=f"npm ci --prefix tests/{self.folder.name}",
        )

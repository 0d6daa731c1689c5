"""Headless Chromium through Playwright for Python, and the check every page must pass.

:func:`chromium` launches the machine's Chromium (``/usr/bin/chromium``, or
``CAREGW_CHROMIUM``). Use it from a MODULE-scoped fixture, never a session-scoped one:
Playwright's sync API keeps an event loop running on this thread while it is open, and
the rest of the suite's asyncio tests cannot start beside it.

:func:`open_page` gives a fresh context (empty sessionStorage) whose page records console
errors, failed scripts and Content-Security-Policy violations; :func:`check_page` takes a
screenshot, fails on any of those, then runs axe-core in the page: no WCAG 2.0/2.1/2.2 A or
AA violation. Chromium, Playwright or axe-core missing: the test is skipped saying what is
missing, except in CI (``CI`` set), where that fails it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CAREGW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE_FILES = frozenset({"document", "script", "stylesheet", "image", "font"})
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
TIMEOUT_MS = 20_000  # the machine may be busy


def missing(what: str) -> None:
    """Skip (fail in CI): ``what`` is not installed here."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not installed here")


def chromium() -> Iterator[Any]:
    """The launched Chromium browser, closed afterwards (for a module-scoped fixture)."""
    if not CHROMIUM.exists():
        missing(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        missing("Playwright for Python (pip install -e '.[dev]')")
    with sync_playwright() as p:
        expect.set_options(timeout=TIMEOUT_MS)  # as the pages' own timeout
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    errors: list[str] = field(default_factory=list)


def open_page(browser: Any, **context_options: Any) -> Iterator[Any]:
    """A page in a fresh context (``context_options``: viewport, device ...) that records
    its problems in ``page.problems``; the context is closed afterwards."""
    context = browser.new_context(**context_options)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems = PageProblems()

    def on_console(message: Any) -> None:
        # A refused API call (403, 401) is logged by Chromium as a failed load: the apps
        # expect those; a page's own file that fails is caught by on_response instead.
        if message.text.startswith("Failed to load resource: the server responded"):
            return
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.errors.append(f"console {message.type}: {message.text}")

    def on_response(response: Any) -> None:
        kind = response.request.resource_type
        if kind in PAGE_FILES and response.status >= 400:
            problems.errors.append(f"{kind} {response.url}: HTTP {response.status}")

    def on_request_failed(request: Any) -> None:
        # A request the page's own navigation cancelled (the favicon of a page that the
        # SMART redirect leaves at once) is no fault of the page; any other failure is.
        if request.failure != "net::ERR_ABORTED":
            problems.errors.append(f"request failed: {request.url} ({request.failure})")

    tab.on("console", on_console)
    tab.on("response", on_response)
    tab.on("requestfailed", on_request_failed)
    tab.on("pageerror", lambda exc: problems.errors.append(f"page error: {exc}"))
    tab.problems = problems
    try:
        yield tab
    finally:
        context.close()


def check_page(page: Any, name: str, *, artefacts: Path, axe: Path, install: str) -> None:
    """Screenshot ``artefacts/{name}.png``, no script or CSP error so far, and no WCAG 2.2
    A/AA violation by axe-core (``axe``: its ``axe.min.js``; ``install``: how to get it)."""
    artefacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artefacts / f"{name}.png"), full_page=True)
    assert page.problems.errors == [], page.problems.errors
    if not axe.exists():
        missing(f"axe-core ({install})")
    # Not page.add_script_tag: the apps' CSP (script-src 'self') rightly refuses an injected
    # inline script; code evaluated through the DevTools protocol is not subject to it.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe.read_text(encoding="utf-8"))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] if n["target"] else "?" for n in v["nodes"][:5])
        for v in result["violations"]
    ]
    assert violations == [], f"{name}: " + "\n".join(violations)

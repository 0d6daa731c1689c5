"""Browser tests of the gateway's apps: a real ``caregateway demo``, headless Chromium.

* ``demo`` (session): ``caregateway demo`` as a subprocess on a free loopback port with its
  own SQLite file; ready when it prints its banner (read by a thread that keeps draining its
  output). ``demo.launch(...)`` runs ``caregateway launch --json`` against the same database
  and returns the app's launch URL, as an EHR would open it.
* ``browser`` (this package) and ``page`` (per test, a fresh context: empty sessionStorage):
  Playwright for Python driving the machine's Chromium (``/usr/bin/chromium``). Every page
  records console errors, failed scripts and Content-Security-Policy violations;
  :func:`check_page` fails the test on any.
* ``check_page(page, name)``: the screenshot ``tests/apps/artefacts/{name}.png``, then
  axe-core (``tests/apps/node_modules/axe-core``, ``npm ci --prefix tests/apps``) injected
  into the page (evaluated through DevTools, which the page's CSP does not govern): no
  WCAG 2.0/2.1/2.2 A or AA violation.
* ``api_token(demo, ...)``: an access token by the same EHR launch + PKCE flow over plain
  HTTP, for setting up audit events without a browser.

Chromium, Playwright or axe-core missing: the tests are skipped saying what is missing,
except in CI (``CI`` set), where that fails them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

HERE = Path(__file__).parent
ARTEFACTS = HERE / "artefacts"
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
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
READY = "caregateway demo is running"
START_TIMEOUT_S = 60.0
BOTH = "9991000003"  # the scenario person held by both sources (GP F81001)
GP = "F81001"


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not installed here")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Demo:
    process: subprocess.Popen[str]
    port: int
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fhir(self) -> str:
        return f"{self.origin}/fhir"

    def launch(
        self,
        *,
        role: str,
        org: str,
        patient: str | None = None,
        purpose: str = "TREAT",
        sub: str | None = None,
        name: str = "Alex Smith",
        app: str = "careplan",
    ) -> str:
        """``caregateway launch --json``: the URL that opens ``app`` in this launch."""
        args = [
            sys.executable,
            "-m",
            "gateway",
            "launch",
            "--sub",
            sub or f"user-{role}-{org}".lower(),
            "--name",
            name,
            "--role",
            role,
            "--org",
            org,
            "--purpose",
            purpose,
            "--json",
        ]
        if patient:
            args += ["--patient", patient]
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        url: str = json.loads(done.stdout)["apps"][app]
        assert url.startswith(f"{self.origin}/apps/{app}/?")
        return url


@pytest.fixture(scope="session")
def demo() -> Iterator[Demo]:
    workdir = Path(tempfile.mkdtemp(prefix="caregateway-apps-test-"))
    port = _free_port()
    env = {
        **os.environ,
        "CAREGW_HOST": "127.0.0.1",
        "CAREGW_PORT": str(port),
        "CAREGW_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/demo.db",
        "CAREGW_LOG_FORMAT": "json",
        "CAREGW_CHANGE_POLL_INTERVAL_S": "0",
    }
    env.pop("CAREGW_SMART_CLIENTS_FILE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Demo(process, port, env)
    ready = threading.Event()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.output.append(line)
            if READY in line:
                ready.set()
        ready.set()  # the process ended: let the fixture see it

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not ready.wait(START_TIMEOUT_S) or process.poll() is not None:
            pytest.fail("caregateway demo did not start:\n" + "".join(running.output[-40:]))
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


# Package scope: Playwright's sync API holds an event loop on this thread while it runs,
# so it must be gone before the rest of the suite calls asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python (pip install -e '.[dev]')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class PageProblems:
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
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

    tab.on("console", on_console)
    tab.on("response", on_response)
    def on_request_failed(request: Any) -> None:
        # A request the page's own navigation cancelled (the favicon of a page that the
        # SMART redirect leaves at once) is no fault of the page; any other failure is.
        if request.failure != "net::ERR_ABORTED":
            problems.errors.append(f"request failed: {request.url} ({request.failure})")

    tab.on("requestfailed", on_request_failed)
    tab.on("pageerror", lambda exc: problems.errors.append(f"page error: {exc}"))
    tab.problems = problems
    try:
        yield tab
    finally:
        context.close()


def check_page(page: Any, name: str) -> None:
    """Screenshot, no script or CSP error so far, and no WCAG 2.2 A/AA violation (axe-core)."""
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)
    assert page.problems.errors == [], page.problems.errors
    if not AXE.exists():
        _missing("axe-core (npm ci --prefix tests/apps)")
    # Not page.add_script_tag: the apps' CSP (script-src 'self') rightly refuses an injected
    # inline script; code evaluated through the DevTools protocol is not subject to it.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] if n["target"] else "?" for n in v["nodes"][:5])
        for v in result["violations"]
    ]
    assert violations == [], f"{name}: " + "\n".join(violations)


def api_token(
    demo: Demo,
    *,
    role: str,
    org: str,
    patient: str | None = None,
    purpose: str = "TREAT",
    sub: str | None = None,
    app: str = "careplan",
) -> str:
    """An access token for ``app`` by EHR launch + authorization code + PKCE S256, over HTTP."""
    url = demo.launch(role=role, org=org, patient=patient, purpose=purpose, sub=sub, app=app)
    query = parse_qs(urlsplit(url).query)
    redirect = url.split("?", 1)[0]
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    scope = (
        "launch openid user/*.rs"
        if app == "careplan"
        else "launch openid user/AuditEvent.rs user/AuditEvent.c"
    )
    with httpx.Client(base_url=demo.origin, timeout=30) as client:
        answer = client.get(
            "/auth/authorize",
            params={
                "response_type": "code",
                "client_id": app,
                "redirect_uri": redirect,
                "scope": scope,
                "state": secrets.token_urlsafe(8),
                "aud": query["iss"][0],
                "launch": query["launch"][0],
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        token = client.post(
            "/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "client_id": app,
                "code_verifier": verifier,
            },
        )
        assert token.status_code == 200, token.text
        access: str = token.json()["access_token"]
        return access

"""A real ``caregateway demo`` as a child process, and access tokens from its launches.

:func:`running_demo` starts it on a free loopback port with its own SQLite file; it is
ready when it prints its banner (read by a thread that keeps draining its output).
``Demo.launch(...)`` runs ``caregateway launch --json`` against the same database and
returns the app's launch URL, as an EHR would open it; :func:`api_token` follows that
launch through the SMART EHR launch + PKCE flow over plain HTTP, for setting up data
without a browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.embedded import free_port
from tests.support.processes import stop

READY = "caregateway demo is running"
START_TIMEOUT_S = 60.0


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


@contextmanager
def running_demo(prefix: str) -> Iterator[Demo]:
    """``caregateway demo`` in a fresh folder named ``prefix...`` (removed afterwards)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
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
        stop(process, timeout_s=20)
        shutil.rmtree(workdir, ignore_errors=True)


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

"""``caregateway demo``, ``caregateway launch`` and ``caregateway serve`` with SMART on.

The demo and serve run as child processes on free loopback ports (stopped by their own
PID); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhirclient import client as fhir_client
from fhirclient.models.patient import Patient

from gateway.auth import generate_signing_key, jwks_from_private_pem
from gateway.cache import generate_index_key, generate_key_entry
from gateway.embedded import free_port
from simulators.runner import source_configs
from tests.gateway.serve_procs import interrupt
from tests.smart.support import ASSERTION_TYPE, BOTH, EHR_KEY

START_S = 60.0


def _clean_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREGW_")}
    env.update(
        CAREGW_HOST="127.0.0.1",
        CAREGW_PORT=str(port),
        CAREGW_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        CAREGW_LOG_FORMAT="json",
    )
    return env


@contextmanager
def child(args: list[str], env: dict[str, str], out: Path) -> Iterator[subprocess.Popen[bytes]]:
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            yield proc
        finally:
            interrupt(proc, 20)


async def _wait_for(out: Path, proc: subprocess.Popen[bytes], text: str) -> str:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        seen = out.read_text("utf-8", errors="replace")
        if text in seen:
            return seen
        assert proc.poll() is None, f"exited {proc.returncode}: {seen[-2000:]}"
        await asyncio.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear within {START_S} s")


# --- demo + launch ---------------------------------------------------------------------------


def _ehr_launch_as_careplan(base: str, url: str) -> Any:
    launch = re.search(r"launch=([^&]+)", url)
    assert launch is not None and f"iss={base.replace(':', '%3A').replace('/', '%2F')}" in url
    origin = base.removesuffix("/fhir")
    smart = fhir_client.FHIRClient(
        settings={
            "app_id": "careplan",
            "api_base": base,
            "redirect_uri": f"{origin}/apps/careplan/",
            "launch_token": launch.group(1),
            "scope": "openid fhirUser user/*.rs",
        }
    )
    answer = httpx.get(smart.authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].startswith(f"{origin}/apps/careplan/?code=")
    smart.handle_callback(answer.headers["location"])
    return Patient.read(BOTH, smart.server)


async def test_demo_serves_smart_and_launch_opens_its_apps(tmp_path: Path) -> None:
    port = free_port()
    env = _clean_env(tmp_path, port)
    base = f"http://127.0.0.1:{port}/fhir"
    with child(["demo"], env, tmp_path / "demo.out") as proc:
        printed = await _wait_for(tmp_path / "demo.out", proc, "standalone :")
        assert f"{base}/.well-known/smart-configuration" in printed
        key_path = re.search(r"(\S+demo-ehr-key\.DEMO-ONLY\.pem)", printed)
        assert key_path is not None
        launched = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "launch",
                "--sub",
                "dr-demo-1",
                "--role",
                "R8000",
                "--org",
                "F81001",
                "--patient",
                BOTH,
                "--name",
                "Dr Demo",
                "--json",
            ],
            env=env,
            capture_output=True,
            timeout=60,
            check=True,
        )
        result = json.loads(launched.stdout)
        assert set(result["apps"]) == {"careplan", "ig", "me"}
        patient = await asyncio.to_thread(_ehr_launch_as_careplan, base, result["apps"]["careplan"])
        assert patient.id == BOTH
        # the demo backend client, with the key the demo printed
        now = int(time.time())
        made = jwt.encode(
            {
                "iss": "demo-ehr",
                "sub": "demo-ehr",
                "aud": f"http://127.0.0.1:{port}/auth/token",
                "exp": now + 240,
                "jti": uuid.uuid4().hex,
            },
            Path(key_path.group(1)).read_bytes(),
            algorithm="ES384",
            headers={
                "kid": jwks_from_private_pem(Path(key_path.group(1)).read_bytes())["keys"][0]["kid"]
            },
        )
        async with httpx.AsyncClient(timeout=30) as http:
            token = await http.post(
                f"http://127.0.0.1:{port}/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "scope": "system/CarePlan.rs",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": made,
                },
            )
            assert token.status_code == 200, token.text
            plans = await http.get(
                f"{base}/CarePlan",
                params={"patient": BOTH},
                headers={
                    "Authorization": f"Bearer {token.json()['access_token']}",
                    "X-Purpose-Of-Use": "TREAT",
                },
            )
            assert plans.status_code == 200 and plans.json()["type"] == "searchset"


def test_launch_refuses_an_invalid_nhs_number(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "launch",
            "--sub",
            "x",
            "--role",
            "R8000",
            "--org",
            "F81001",
            "--patient",
            "1234567890",
        ],
        env=_clean_env(tmp_path, 1),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"patient is not a valid NHS number" in done.stderr


# --- serve -----------------------------------------------------------------------------------


def _pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _serve_env(tmp_path: Path, running: Any, port: int) -> dict[str, str]:
    env = _clean_env(tmp_path, port)
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps([asdict(s) for s in source_configs(running)]), "utf-8")
    _, upstream_jwk = generate_signing_key()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [upstream_jwk]}), "utf-8")
    clients = tmp_path / "clients.yaml"
    clients.write_text(
        "- client_id: ehr\n  name: Trust EPR\n  kind: backend\n  org: F81001\n"
        f"  jwks: {json.dumps({'keys': [EHR_KEY.jwk]})}\n"
        "  scopes: [system/*.rs, system/launch.c]\n",
        "utf-8",
    )
    env.update(
        CAREGW_SOURCES_FILE=str(sources),
        CAREGW_AUTH_ISSUER="urn:test:upstream",
        CAREGW_AUTH_JWKS_FILE=str(jwks),
        CAREGW_CACHE_KEYS=generate_key_entry(),
        CAREGW_CACHE_INDEX_KEY=generate_index_key(),
        CAREGW_SMART_CLIENTS_FILE=str(clients),
    )
    return env


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "CAREGW_SMART_SIGNING_KEY_FILE is required"),
        ("rsa1024", "CAREGW_SMART_SIGNING_KEY_FILE: RSA key of 1024 bits is too weak"),
        ("garbage", "CAREGW_SMART_SIGNING_KEY_FILE: not an unencrypted PEM private key"),
    ],
)
def test_serve_stops_on_a_missing_or_weak_signing_key(
    tmp_path: Path, running_sources: Any, key: str | None, message: str
) -> None:
    env = _serve_env(tmp_path, running_sources, free_port())
    if key is not None:
        path = tmp_path / "smart.pem"
        if key == "rsa1024":
            from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

            path.write_bytes(_pem(_rsa.generate_private_key(public_exponent=65537, key_size=1024)))
        else:
            path.write_bytes(b"not a key")
        env["CAREGW_SMART_SIGNING_KEY_FILE"] = str(path)
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert message in done.stderr.decode()


async def test_serve_publishes_current_and_previous_key(
    tmp_path: Path, running_sources: Any
) -> None:
    port = free_port()
    env = _serve_env(tmp_path, running_sources, port)
    current, previous = tmp_path / "smart.pem", tmp_path / "smart-previous.pem"
    current.write_bytes(_pem(ec.generate_private_key(ec.SECP384R1())))
    previous.write_bytes(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    env.update(
        CAREGW_SMART_SIGNING_KEY_FILE=str(current), CAREGW_SMART_PREVIOUS_KEY_FILE=str(previous)
    )
    with child(["serve"], env, tmp_path / "serve.out") as proc:
        async with httpx.AsyncClient(timeout=10) as http:
            deadline = time.monotonic() + START_S
            while True:
                assert proc.poll() is None, (tmp_path / "serve.out").read_text()
                try:
                    jwks = await http.get(f"http://127.0.0.1:{port}/auth/jwks")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
            kids = [k["kid"] for k in jwks.json()["keys"]]
            assert kids == [
                jwks_from_private_pem(current.read_bytes())["keys"][0]["kid"],
                jwks_from_private_pem(previous.read_bytes())["keys"][0]["kid"],
            ]
            conf = (
                await http.get(f"http://127.0.0.1:{port}/fhir/.well-known/smart-configuration")
            ).json()
            assert conf["issuer"] == f"http://127.0.0.1:{port}/auth"

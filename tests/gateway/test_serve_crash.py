"""Kill ``caregateway serve`` mid-load: every ``200`` the clients received has its AuditEvent.

The real server runs as a child process (``python -m gateway.cli serve``, configured only
through ``CAREGW_*`` variables and files, as in production) in front of the simulated
sources, with its audit trail in a SQLite file. Sixteen concurrent clients read scenario
patients, each request carrying its own ``X-Request-ID``. Once enough ``200`` answers carrying a
Patient have arrived, the test sends SIGKILL to the server (by its own PID) while the clients
are still sending: no shutdown, no drain. It then reads the SQLite file and checks that
the request id of every released ``200`` is in a stored event, and that the hash chain is
whole.

The middleware commits the event before it hands the answer to the ASGI server, so a
``200`` that reached a client was audited before it left. Returning the answer before
that commit completes lets the test see ``200`` answers whose events died with the process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from gateway.auth import issue_token
from gateway.cache import generate_index_key, generate_key_entry
from simulators.population import SCENARIOS
from simulators.runner import RunningSources, source_configs
from tests.gateway.serve_procs import serve_at, verified_chain

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "urn:caregateway:crash-test-issuer"
# Scenario people a GP clinician at their own practice may read (answer: 200 + Patient).
PEOPLE = ("both", "duplicate", "deceased", "dob_conflict")
WORKERS = 16
KILL_AFTER = 150  # released 200s before the kill
DEADLINE_S = 60.0  # bounds the load phase (start-up has its own 30 s bound)
REQUEST_ID_CODE = "XrequestId"


def _serve_env(
    tmp_path: Path, running: RunningSources, jwk: dict[str, Any], port: int
) -> dict[str, str]:
    """``os.environ`` without any ``CAREGW_*`` of the caller, plus a complete serve config."""
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps([asdict(s) for s in source_configs(running)]), "utf-8")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREGW_")}
    env.update(
        CAREGW_HOST="127.0.0.1",
        CAREGW_PORT=str(port),
        CAREGW_SOURCES_FILE=str(sources),
        CAREGW_AUTH_ISSUER=ISSUER,
        CAREGW_AUTH_JWKS_FILE=str(jwks),
        CAREGW_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        CAREGW_CACHE_KEYS=generate_key_entry(),
        CAREGW_CACHE_INDEX_KEY=generate_index_key(),
        CAREGW_LOG_FORMAT="json",
    )
    return env


async def _wait_live(client: httpx.AsyncClient, url: str, proc: subprocess.Popen[bytes]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        assert proc.poll() is None, f"serve exited with {proc.returncode} during start-up"
        try:
            if (await client.get(url)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("serve did not answer /health/live within 30 s")


def _stored_request_ids(db: Path) -> tuple[set[str], int]:
    """The X-Request-ID entity values of every stored event, and the number of events."""
    ids: set[str] = set()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT resource FROM audit_event").fetchall()
    for (resource,) in rows:
        for entity in json.loads(resource).get("entity", ()):
            if entity.get("type", {}).get("code") == REQUEST_ID_CODE:
                ids.add(entity["what"]["identifier"]["value"])
    return ids, len(rows)


async def test_killed_server_released_no_unaudited_200(
    tmp_path: Path, running_sources: RunningSources
) -> None:
    at = serve_at()
    private_pem, public_jwk, port, base_url = at.private_pem, at.public_jwk, at.port, at.base_url
    db = tmp_path / "gw.db"

    # One token per person, for a clinician at that person's GP practice.
    targets: list[tuple[str, str]] = []
    for key in PEOPLE:
        number = SCENARIOS[key].nhs_number
        assert number is not None
        gp = running_sources.population.council_people_with(number)[0].gp
        assert gp is not None
        token = issue_token(
            private_pem,
            issuer=ISSUER,
            audience=base_url,
            sub=f"crash-test-{key}",
            role="R8000",
            org=gp.ods_code,
            scopes=("user/*.rs",),
            purpose="TREAT",
        )
        targets.append((number, token))

    released: list[str] = []  # request ids answered 200 with a Patient
    statuses: Counter[int] = Counter()
    stopped_by: Counter[str] = Counter()  # why each worker stopped
    enough = asyncio.Event()

    with (tmp_path / "serve.out").open("wb") as out, (tmp_path / "serve.err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"],
            cwd=ROOT,
            env=_serve_env(tmp_path, running_sources, public_jwk, port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            await _wait_live(client, f"http://127.0.0.1:{port}/health/live", proc)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE_S

            async def worker(w: int) -> None:
                n = 0
                while loop.time() < deadline:
                    number, token = targets[(w + n) % len(targets)]
                    request_id = f"crash-{w}-{n}"
                    n += 1
                    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": request_id}
                    try:
                        resp = await client.get(f"{base_url}/Patient/{number}", headers=headers)
                        body = resp.json() if resp.status_code == 200 else None
                    except httpx.TransportError as exc:  # the server is gone
                        stopped_by[type(exc).__name__] += 1
                        return
                    statuses[resp.status_code] += 1
                    if body is not None and body.get("resourceType") == "Patient":
                        assert resp.headers["X-Request-ID"] == request_id
                        released.append(request_id)
                        if len(released) >= KILL_AFTER:
                            enough.set()
                stopped_by["deadline"] += 1

            tasks = [asyncio.create_task(worker(w)) for w in range(WORKERS)]
            trigger = asyncio.create_task(enough.wait())
            try:
                await asyncio.wait(
                    [trigger, *tasks], timeout=DEADLINE_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                proc.kill()  # SIGKILL while the workers are sending: no shutdown, no drain
                trigger.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)

    for result in results:
        if isinstance(result, BaseException):
            raise result
    assert proc.returncode == -9, f"serve ended with {proc.returncode}, not by SIGKILL"
    assert len(released) >= KILL_AFTER, f"only {len(released)} 200s; statuses {dict(statuses)}"
    # Every worker was still sending when the server died, and saw it die.
    assert stopped_by["deadline"] == 0, dict(stopped_by)

    stored, events = _stored_request_ids(db)
    missing = [rid for rid in released if rid not in stored]
    print(
        f"released 200s: {len(released)}; stored events: {events}; "
        f"missing: {len(missing)}; statuses: {dict(statuses)}; workers stopped by: "
        f"{dict(stopped_by)}"
    )
    assert not missing, f"{len(missing)} of {len(released)} released 200s have no AuditEvent"

    verified = await verified_chain(db)
    assert verified.ok, verified
    assert verified.checked == events

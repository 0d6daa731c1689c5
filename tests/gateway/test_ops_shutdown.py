"""SIGTERM to ``caregateway serve`` under load: drain, finish in-flight work, flush, exit 0.

The gateway runs as a child process (SQLite audit trail, ``CAREGW_SHUTDOWN_DRAIN_S=2``).
Eight clients read a scenario person in a loop (answers from the cache, so quick), and five
more requests — five other people — are held in flight by a slow community source: the test
sends SIGTERM only once the community simulator has received all five lookups, so they are
inside the gateway, waiting, when the signal arrives (and still waiting when the drain ends
and the port closes). It checks that

* readiness said ``503`` ``draining`` while the replica drained (or refused connections
  once it stopped accepting), and liveness stayed ``200`` during the drain;
* each of the five in-flight requests was answered ``200`` with its data;
* every request answered with data has its AuditEvent on disk, saying the status sent, and
  the hash chain verifies;
* the process exited ``0`` within :data:`EXIT_BOUND_S`.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from simulators.population import COMMUNITY_ODS, SCENARIOS
from simulators.runner import RunningSources
from tests.gateway.serve_procs import verified_chain
from tests.gateway.serve_support import Replica, ReplicaSet, request_ids_in, sqlite_events

LOOPING_CLIENTS = 8
EXIT_BOUND_S = 30.0
DRAIN_S = 0.5  # shorter than the held requests take: they end after the port has closed
LATENCY_MS = 250  # per community request; three rounds (lookup, reads, references) < 2 s
HELD = ("both", "duplicate", "deceased", "dob_conflict", "mental_health_r", "community_only")


@pytest.fixture
async def served(
    running_sources: RunningSources, tmp_path: Path
) -> AsyncIterator[tuple[ReplicaSet, Replica]]:
    replicas = ReplicaSet(tmp_path, running_sources, CAREGW_SHUTDOWN_DRAIN_S=str(DRAIN_S))
    gw = replicas.replica("drain")
    try:
        await gw.start()
        yield replicas, gw
    finally:
        replicas.stop_all()
        async with httpx.AsyncClient() as client:
            await client.post(f"{running_sources.community_url}/_control/reset")


def _reader(replicas: ReplicaSet, key: str) -> tuple[str, dict[str, str]]:
    if key == "community_only":
        number = SCENARIOS[key].nhs_number
        assert number is not None
        return number, replicas.token(sub="drain-community-nurse", org=COMMUNITY_ODS)
    number, gp = replicas.gp_of(key)
    return number, replicas.token(sub=f"drain-gp-{key}", org=gp)


async def test_sigterm_under_load_drains_finishes_flushes_and_exits_0(
    served: tuple[ReplicaSet, Replica], running_sources: RunningSources
) -> None:
    replicas, gw = served
    control = f"{running_sources.community_url}/_control"
    answered: list[tuple[str, int, bool]] = []  # (request id, status, with data)
    readiness: list[str] = []
    liveness: list[int] = []
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=20, limits=limits) as client:
        # Warm the cache for the looping clients' person (community answers quickly now).
        loop_number, loop_auth = _reader(replicas, "both")
        warm = await client.get(f"{gw.base_url}/Patient/{loop_number}", headers=loop_auth)
        assert warm.status_code == 200, warm.text
        stopped = asyncio.Event()

        async def looping(c: int) -> None:
            n = 0
            while True:
                rid = f"drain-loop-{c}-{n}-{uuid.uuid4().hex[:6]}"
                n += 1
                try:
                    resp = await client.get(
                        f"{gw.base_url}/Patient/{loop_number}",
                        headers={**loop_auth, "X-Request-ID": rid},
                    )
                except httpx.TransportError:
                    if stopped.is_set():
                        return  # the replica has stopped accepting
                    await asyncio.sleep(0.05)  # a keep-alive connection closed under us
                    continue
                data = resp.status_code == 200 and resp.json().get("resourceType") == "Patient"
                answered.append((rid, resp.status_code, data))

        async def held(key: str) -> tuple[str, httpx.Response]:
            number, auth = _reader(replicas, key)
            rid = f"drain-held-{key}-{uuid.uuid4().hex[:6]}"
            resp = await client.get(
                f"{gw.base_url}/Patient/{number}/$everything",
                headers={**auth, "X-Request-ID": rid},
            )
            return rid, resp

        loopers = [asyncio.create_task(looping(c)) for c in range(LOOPING_CLIENTS)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len(answered) < 4 * LOOPING_CLIENTS:  # under load before anything else
            assert loop.time() < deadline, f"only {len(answered)} answers in 20 s"
            await asyncio.sleep(0.02)  # polling interval
        # Hold five requests inside the gateway: five people not cached yet (the looping
        # clients' person is), each fetch waiting on the slow community source.
        await client.post(f"{control}/reset")
        await client.post(control, json={"latency_ms": LATENCY_MS})
        in_flight = [asyncio.create_task(held(key)) for key in HELD if key != "both"]
        deadline = loop.time() + 15
        while loop.time() < deadline:  # poll the simulator until it holds all of them
            seen = (await client.get(control)).json()["requests"]
            if sum(seen.values()) >= len(in_flight):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"the held requests never reached the source: {seen}")

        gw.signal(signal.SIGTERM)
        signalled = loop.time()
        while gw.proc is not None and gw.proc.poll() is None:
            try:
                ready = await client.get(f"{gw.url}/health/ready")
                readiness.append(f"{ready.status_code} {ready.json()['status']}")
                liveness.append((await client.get(f"{gw.url}/health/live")).status_code)
            except httpx.TransportError:
                readiness.append("refused")
                stopped.set()
            assert loop.time() - signalled < EXIT_BOUND_S, "serve did not exit in time"
            await asyncio.sleep(0.05)  # polling interval
        stopped.set()
        held_answers = await asyncio.gather(*in_flight)
        await asyncio.gather(*loopers)

    returncode = gw.wait(5)
    assert returncode == 0, gw.stderr()[-3000:]
    assert loop.time() - signalled < EXIT_BOUND_S
    log = gw.stderr()
    assert "shutdown_started" in log and "shutdown_complete" in log

    # Readiness failed while draining (503 draining), then the port closed; liveness held.
    assert "503 draining" in readiness, readiness
    assert all(r in ("503 draining", "refused") for r in readiness), readiness
    assert liveness and set(liveness) == {200}

    # The requests in flight at the signal were finished, with their data.
    for rid, resp in held_answers:
        assert resp.status_code == 200, (rid, resp.text)
        body = resp.json()
        assert body["resourceType"] == "Bundle"
        assert any(e["resource"]["resourceType"] == "Patient" for e in body["entry"])
        answered.append((rid, resp.status_code, True))

    # Every answer with data has its event on disk, each saying the status sent.
    db = Path(gw.env["CAREGW_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///"))
    events = request_ids_in(sqlite_events(db))
    with_data = [a for a in answered if a[2]]
    assert len(with_data) > len(HELD)
    missing = [rid for rid, _, _ in with_data if rid not in events]
    assert not missing, f"{len(missing)} answers with data have no AuditEvent"
    for rid, status, _ in answered:
        assert all(d.startswith(f"HTTP {status}") for d in events.get(rid, [])), rid
    verified = await verified_chain(db)
    assert verified.ok, verified
    print(
        f"answered {len(answered)} ({len(with_data)} with data), all audited; readiness "
        f"after SIGTERM: {readiness.count('503 draining')} x 503 draining, then refused; "
        f"exit 0 after {loop.time() - signalled:.1f} s"
    )

"""The sources fault test: 32 clients while the community source is slow, failing, cut off.

``caregateway serve`` as a child process (its own core, the memory record cache keeping an
answer one second, the consent policy, a SQLite audit trail) in front of the real simulators,
with 2 s source timeouts. Thirty-two clients read scenario people
(``/Patient/{nhs}`` and ``$everything``, each request with its own ``X-Request-ID``) through
five phases: normal, community slow (latency above the timeout), community failing (every
data request ``500``), community cut off (its listening socket closed, its connections
dropped: :meth:`simulators.runner.RunningSources.cut_off`), and normal again. Meanwhile a
probe reads ``/health/ready``.

It checks that

* readiness told the truth throughout: ``ok`` while every source answered, ``degraded`` with
  the community source unhealthy once it failed, in every fault phase, until it was back;
* afterwards every source answers again within a bounded number of polls (no stuck pool);
* nothing but ``200`` and ``503`` was answered (no ``500``; no ``403``: every token has a
  relationship — a community outage is a ``503`` naming it, never a denial);
* every response with data has its AuditEvent, and every event says the status its client
  received (``outcomeDesc`` starts ``HTTP {status}``).

The phases run by the clock (bounded: about 30 s of load); nothing waits by sleeping for
another task — recovery is polled with a deadline. ``-s`` prints the counts table that
``docs/reliability.md`` shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth import generate_signing_key, issue_token
from gateway.embedded import free_port
from simulators.population import COMMUNITY_ODS, SCENARIOS
from simulators.runner import RunningSources, source_configs
from tests.gateway.test_serve_crash import ISSUER, ROOT, _serve_env, _wait_live
from tests.support import processes

CLIENTS = 32
TIMEOUT_S = 2.0  # the default source timeout
PHASES: tuple[tuple[str, float], ...] = (
    ("normal", 4.0),
    ("slow", 7.0),
    ("failing", 7.0),
    ("cut-off", 7.0),
)
RECOVERY_DEADLINE_S = 20.0  # breaker half-opens after 5 s; everything else is quicker
FAULT_PHASES = ("slow", "failing", "cut-off")
# Scenario people read by a clinician of their GP practice, and the community-only person by
# the community source's own staff.
GP_PEOPLE = ("both", "duplicate", "deceased", "dob_conflict", "mental_health_r")


@dataclasses.dataclass(slots=True)
class Answer:
    phase: str
    request_id: str
    status: int
    has_data: bool
    community: bool  # the answer carries community data


@dataclasses.dataclass
class Serving:
    """``caregateway serve`` running as a child process, and how to reach it."""

    base_url: str
    private_pem: bytes
    db: Path
    proc: subprocess.Popen[bytes]

    def headers(self, *, org: str, sub: str) -> dict[str, str]:
        token = issue_token(
            self.private_pem,
            issuer=ISSUER,
            audience=self.base_url,
            sub=sub,
            role="R8000",
            org=org,
            scopes=("user/*.rs",),
            purpose="TREAT",
        )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def gw(running_sources: RunningSources, tmp_path: Path) -> AsyncIterator[Serving]:
    """The gateway as production runs it (its own process and core, the memory record cache,
    the consent policy, a SQLite audit trail), with source timeouts of :data:`TIMEOUT_S`."""
    await _community(running_sources, reset=True)
    private_pem, public_jwk = generate_signing_key()
    port = free_port()
    env = _serve_env(tmp_path, running_sources, public_jwk, port)
    # Cached answers would hide the faults: a source's answer is kept one second only, so the
    # sources are asked several times a second (a failure is never cached).
    env["CAREGW_CACHE_TTL_S"] = "1"
    configs = [dataclasses.replace(c, timeout_s=TIMEOUT_S) for c in source_configs(running_sources)]
    Path(env["CAREGW_SOURCES_FILE"]).write_text(
        json.dumps([dataclasses.asdict(c) for c in configs]), "utf-8"
    )
    with (tmp_path / "serve.out").open("wb") as out, (tmp_path / "serve.err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await _wait_live(client, f"http://127.0.0.1:{port}/health/live", proc)
        yield Serving(f"http://127.0.0.1:{port}/fhir", private_pem, tmp_path / "gw.db", proc)
    finally:
        processes.stop(proc)
        await running_sources.restore("community")
        await _community(running_sources, reset=True)


async def _community(running: RunningSources, *, reset: bool = False, **settings: Any) -> None:
    async with httpx.AsyncClient() as client:
        url = f"{running.community_url}/_control"
        resp = await (client.post(f"{url}/reset") if reset else client.post(url, json=settings))
        resp.raise_for_status()


def _targets(gw: Serving, running: RunningSources) -> list[tuple[str, str, dict[str, str]]]:
    """(path, nhs, auth header) for every kind of read the clients make."""
    found: list[tuple[str, str, dict[str, str]]] = []
    for key in GP_PEOPLE:
        number = SCENARIOS[key].nhs_number
        assert number is not None
        gp = running.population.council_people_with(number)[0].gp
        assert gp is not None
        auth = gw.headers(org=gp.ods_code, sub=f"fault-gp-{key}")
        found.append((f"/Patient/{number}", number, auth))
        found.append((f"/Patient/{number}/$everything", number, auth))
    number = SCENARIOS["community_only"].nhs_number
    assert number is not None
    staff = gw.headers(org=COMMUNITY_ODS, sub="fault-community-nurse")
    found.append((f"/Patient/{number}", number, staff))
    return found


def _carries_community(body: dict[str, Any]) -> bool:
    """A ``$everything`` Bundle holding community resources (ids ``community.{person}.{id}``)."""
    return any(
        str(e.get("resource", {}).get("id", "")).startswith("community.")
        for e in body.get("entry", ())
    )


def _stored_events(db: Path) -> dict[str, list[str]]:
    """request id -> the ``outcomeDesc`` of each stored event with that id."""
    found: dict[str, list[str]] = defaultdict(list)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT resource FROM audit_event").fetchall()
    for (resource,) in rows:
        event = json.loads(resource)
        for entity in event.get("entity", ()):
            if entity.get("type", {}).get("code") == "XrequestId":
                found[entity["what"]["identifier"]["value"]].append(event.get("outcomeDesc", ""))
    return found


@pytest.mark.slow
async def test_sources_slow_failing_cut_off_and_back(
    gw: Serving, running_sources: RunningSources
) -> None:
    base = gw.base_url.removesuffix("/fhir")
    targets = _targets(gw, running_sources)
    answers: list[Answer] = []
    readiness: list[tuple[str, str, bool]] = []  # (phase, status, community healthy)
    phase = "normal"
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=CLIENTS + 2, max_keepalive_connections=CLIENTS + 2)

    async with httpx.AsyncClient(timeout=15, limits=limits) as client:

        async def one_client(c: int) -> None:
            n = 0
            while not stop.is_set():
                path, _, auth = targets[(c + n) % len(targets)]
                rid = f"fault-{c}-{n}-{uuid.uuid4().hex[:8]}"
                n += 1
                at = phase
                resp = await client.get(
                    f"{gw.base_url}{path}", headers={**auth, "X-Request-ID": rid}
                )
                body = resp.json()
                has_data = resp.status_code == 200 and body.get("resourceType") in (
                    "Patient",
                    "Bundle",
                )
                community = has_data and _carries_community(body)
                answers.append(Answer(at, rid, resp.status_code, has_data, community))

        async def probe() -> None:
            while not stop.is_set():
                ready = (await client.get(f"{base}/health/ready")).json()
                community = ready["sourceHealth"]["community"]
                readiness.append((phase, ready["status"], bool(community["healthy"])))
                await asyncio.sleep(0.1)  # a polling interval, not a synchronisation

        # Warm up (not counted): the first read of each kind builds the FHIR models, which
        # takes longer than a source timeout.
        for path, _, auth in targets:
            warm = await client.get(f"{gw.base_url}{path}", headers=auth)
            assert warm.status_code == 200, warm.text
        tasks = [asyncio.create_task(one_client(c)) for c in range(CLIENTS)]
        tasks.append(asyncio.create_task(probe()))
        loop = asyncio.get_running_loop()
        try:
            for name, seconds in PHASES:
                if name == "slow":
                    await _community(running_sources, latency_ms=int(TIMEOUT_S * 2000))
                elif name == "failing":
                    await _community(running_sources, latency_ms=0, fail_status=500)
                elif name == "cut-off":  # still failing until cut: no answer slips in between
                    await running_sources.cut_off("community")
                phase = name
                end = loop.time() + seconds
                while loop.time() < end:  # the phase lasts by the clock; clients keep sending
                    await asyncio.wait(tasks, timeout=end - loop.time())
                    assert not any(t.done() for t in tasks), [t for t in tasks if t.done()]

            # Back to normal: poll until every source answers (bounded), counting polls.
            await running_sources.restore("community")
            await _community(running_sources, reset=True)
            phase = "recovery"
            polls = 0
            recovered = False
            deadline = loop.time() + RECOVERY_DEADLINE_S
            both = SCENARIOS["both"].nhs_number
            gp = targets[0][2]
            while loop.time() < deadline:
                polls += 1
                ready = (await client.get(f"{base}/health/ready")).json()
                read = await client.get(f"{gw.base_url}/Patient/{both}/$everything", headers=gp)
                if (
                    ready["status"] == "ok"
                    and read.status_code == 200
                    and _carries_community(read.json())
                ):
                    recovered = True
                    break
                await asyncio.sleep(0.25)  # a polling interval, not a synchronisation
            phase = "normal again"
            end = loop.time() + 3.0
            while loop.time() < end:
                await asyncio.wait(tasks, timeout=end - loop.time())
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    _print_table(answers, readiness, polls)
    assert recovered, f"no recovery within {RECOVERY_DEADLINE_S} s ({polls} polls)"
    async with httpx.AsyncClient(timeout=10) as client:
        ready_after = (await client.get(f"{base}/health/ready")).json()
    assert ready_after["status"] == "ok"
    assert all(h["healthy"] for h in ready_after["sourceHealth"].values())

    # Readiness told the truth: ok in the first normal phase; in each fault phase degraded
    # once the source had failed, and never "ok" again until it was back.
    assert readiness and all(s == "ok" and h for p, s, h in readiness if p == "normal")
    for name in FAULT_PHASES:
        seen = [(s, h) for p, s, h in readiness if p == name]
        first = next((i for i, (s, h) in enumerate(seen) if s == "degraded" and not h), None)
        assert first is not None, f"readiness never said degraded while {name}: {seen}"
        assert all(s == "degraded" and not h for s, h in seen[first:]), (name, seen)
    assert all(s == "ok" and h for p, s, h in readiness if p == "normal again")

    # Only 200 and 503; never a 500, never a denial.
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 503}, statuses
    for a in answers:
        if a.status == 200:
            assert a.has_data, a
    # Data went out in every phase (social care kept answering); community data only when
    # the community source answered.
    for name, _ in PHASES:
        assert any(a.has_data for a in answers if a.phase == name), name
    assert any(a.community for a in answers if a.phase == "normal again")

    # Every response with data has its event; every event says what its client received.
    assert gw.proc.poll() is None, "the gateway died under the faults"
    events = _stored_events(gw.db)
    unaudited = [a for a in answers if a.has_data and a.request_id not in events]
    assert not unaudited, f"{len(unaudited)} answers with data have no AuditEvent"
    mismatched = [
        (a.status, events[a.request_id])
        for a in answers
        if a.request_id in events
        and any(not d.startswith(f"HTTP {a.status}") for d in events[a.request_id])
    ]
    assert not mismatched, f"{len(mismatched)} events disagree with their answer: {mismatched[:5]}"
    assert all(len(events[a.request_id]) == 1 for a in answers if a.request_id in events)


def _print_table(answers: list[Answer], readiness: list[tuple[str, str, bool]], polls: int) -> None:
    order = [name for name, _ in PHASES] + ["recovery", "normal again"]
    lines = [
        "| phase | requests | 200 | with community data | 503 | other | ready ok | degraded |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in order:
        mine = [a for a in answers if a.phase == name]
        probes = [s for p, s, _ in readiness if p == name]
        lines.append(
            f"| {name} | {len(mine)} | {sum(a.status == 200 for a in mine)} "
            f"| {sum(a.community for a in mine)} | {sum(a.status == 503 for a in mine)} "
            f"| {sum(a.status not in (200, 503) for a in mine)} "
            f"| {probes.count('ok')} | {probes.count('degraded')} |"
        )
    print("\n".join(lines))
    print(f"recovered after {polls} poll(s) of readiness + $everything")

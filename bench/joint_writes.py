"""Joint care plan writes per second, with durable audit, against the audit-append floor.

    python bench/joint_writes.py [--clients 8] [--seconds 2.5] [--rounds 3]

One run, on this machine, with the simulated sources and a real gateway on loopback (the
packaged consent policy deciding every write, the in-process encrypted cache, SQLite WAL
``synchronous=FULL``), ``--clients`` concurrent callers (council social workers, ``LA-SW``)
for ``--seconds`` per measurement:

* ``audit floor`` — ``AuditStore(group_commit=False)`` on a fresh SQLite file, one durable
  commit per audit event (``bench/audit_commit.py``'s floor): a write through the gateway is
  at least one such commit (the plan's transaction) plus its audit event, so it cannot beat
  this much;
* ``creates``     — ``POST /fhir/CarePlan`` for 120 of the council's people in turn, each
  read once beforehand (a plan is written for someone whose record was looked at), so the
  source systems' answers are cached; a write evicts only the person's joint entry;
* ``updates``     — ``PUT /fhir/CarePlan/{id}`` with ``If-Match``, each caller changing its
  own plan (no conflicts: the cost of the conditional update itself).

The three are interleaved for ``--rounds`` rounds (the machine is noisy); min / median / max
per round are reported, with the median's ratio to the floor's median. After the run, the
audit trail must hold exactly one successful create/update event per acknowledged write,
and the store exactly the versions acknowledged, or the run fails. Bounded: refused if
``3 x rounds x seconds`` exceeds 45 s, and stopped after 60 s whatever happens. Prints a
Markdown table for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters import nhs_number  # noqa: E402
from bench.audit_commit import measure as audit_measure  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.auth import TokenVerifier, generate_signing_key, issue_token  # noqa: E402
from gateway.cache.factory import build_record_cache  # noqa: E402
from gateway.embedded import free_port, running_server  # noqa: E402
from gateway.joint.store import JointPlanVersionRow  # noqa: E402
from gateway.state import Closer, GatewayState  # noqa: E402
from gateway.wiring import Overrides, build_state, defaults  # noqa: E402
from simulators.population import COUNCIL_ODS  # noqa: E402
from simulators.runner import RunningSources, source_configs, start_sources  # noqa: E402

ISSUER = "urn:caregateway:bench"
BOUND_S = 60.0
PEOPLE = 120  # the people written for, each read once before (the cache is warm)
LEAD = {"system": "urn:caregateway:care-team-role", "code": "lead-professional"}
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


def plan(nhs: str, title: str = "Staying well at home") -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "title": title,
        "subject": {"reference": f"Patient/{nhs}"},
        "contained": [
            {
                "resourceType": "CareTeam",
                "id": "team",
                "participant": [
                    {
                        "role": [{"coding": [LEAD]}],
                        "member": {"display": "Allocated social worker"},
                        "onBehalfOf": {"identifier": {"system": ODS, "value": COUNCIL_ODS}},
                    }
                ],
            }
        ],
        "careTeam": [{"reference": "#team"}],
        "activity": [
            {"detail": {"status": "scheduled", "description": "Review at home",
                        "performer": [{"identifier": {"system": ODS, "value": COUNCIL_ODS}}]}}
        ],
    }  # fmt: skip


def council_people(running: RunningSources, limit: int = 400) -> list[str]:
    out: list[str] = []
    for person in running.population.council_people:
        try:
            number = nhs_number.parse(person.nhs_number or "")
        except nhs_number.InvalidNHSNumber:
            continue
        if number not in out:
            out.append(number)
        if len(out) == limit:
            break
    return out


async def run_for(seconds: float, clients: int, one: Any) -> tuple[int, float]:
    """``clients`` tasks calling ``one(client_index)`` until ``seconds`` pass: writes, time."""
    deadline = time.perf_counter() + seconds

    async def loop(i: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            await one(i)
            done += 1
        return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(loop(i) for i in range(clients)))
    return sum(counts), time.perf_counter() - started


async def main_async(clients: int, seconds: float, rounds: int) -> None:
    running = await start_sources()
    workdir = Path(tempfile.mkdtemp(prefix="caregw-joint-bench-"))
    pem, jwk = generate_signing_key()
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    verifier = TokenVerifier(issuer=ISSUER, audience=base, jwks={"keys": [jwk]})
    states: list[Any] = []

    async def factory() -> tuple[GatewayState, Closer]:
        cache = build_record_cache(
            redis_url=None, cache_keys=None, index_key=None, ttl_s=3600, demo=True
        )
        built = await build_state(defaults(), Overrides(
            base_url=base, sources=source_configs(running), verifier=verifier,
            database_url=f"sqlite+aiosqlite:///{workdir}/gateway.db", cache=cache,
        ))  # fmt: skip
        states.append(built[0])
        return built

    token = issue_token(
        pem, issuer=ISSUER, audience=base, sub="bench-writer", role="LA-SW", org=COUNCIL_ODS,
        scopes=("user/CarePlan.cru",), purpose="TREAT", name="Bench Social Worker",
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    reader = issue_token(
        pem, issuer=ISSUER, audience=base, sub="bench-reader", role="LA-SW", org=COUNCIL_ODS,
        scopes=("user/CarePlan.rs",), purpose="TREAT",
    )  # fmt: skip
    people = council_people(running, PEOPLE)
    runs: dict[str, list[float]] = {"audit floor": [], "creates": [], "updates": []}
    acknowledged = 0
    try:
        async with (
            running_server(create_app(factory), "127.0.0.1", port),
            httpx.AsyncClient(headers=headers, timeout=30) as client,
        ):
            # A plan is written for someone whose record was read: warm the cache first, so
            # that what is measured is the write, not the source systems' first answer.
            warm = {"Authorization": f"Bearer {reader}"}
            for nhs in people:
                got = await client.get(f"{base}/CarePlan", params={"patient": nhs}, headers=warm)
                got.raise_for_status()
            targets = itertools.cycle(people)
            owned: list[tuple[str, int]] = []
            for i in range(clients):  # each updating caller's own plan
                made = await client.post(f"{base}/CarePlan", json=plan(people[i]))
                made.raise_for_status()
                owned.append((made.json()["id"], 1))
                acknowledged += 1

            async def create(_: int) -> None:
                resp = await client.post(f"{base}/CarePlan", json=plan(next(targets)))
                resp.raise_for_status()

            async def update(i: int) -> None:
                pid, version = owned[i]
                body = {**plan(people[i], f"Revision {version + 1}"), "id": pid}
                resp = await client.put(
                    f"{base}/CarePlan/{pid}", json=body, headers={"If-Match": f'W/"{version}"'}
                )
                resp.raise_for_status()
                owned[i] = (pid, version + 1)

            for _ in range(rounds):
                floor = await audit_measure("one-by-one", clients, seconds, workdir)
                runs["audit floor"].append(floor.rate)
                for mode, one in (("creates", create), ("updates", update)):
                    n, elapsed = await run_for(seconds, clients, one)
                    acknowledged += n
                    runs[mode].append(n / elapsed)

            state = states[0]
            events = await state.audit.count(agent="bench-writer", outcome="0")
            async with state.joint._sessions() as session:
                versions = await session.scalar(
                    select(func.count()).select_from(JointPlanVersionRow)
                )
            if events != acknowledged or versions != acknowledged:
                raise SystemExit(
                    f"check failed: {acknowledged} writes acknowledged, {events} audited, "
                    f"{versions} versions kept"
                )
    finally:
        await running.stop()

    floor_median = statistics.median(runs["audit floor"])
    print(
        f"\n{clients} concurrent callers, {seconds:g} s per measurement, {rounds} rounds "
        f"interleaved; SQLite WAL synchronous=FULL; in-process cache; packaged policy; "
        f"Python {platform.python_version()}, {platform.machine()}; "
        f"{acknowledged} writes acknowledged = audited = versions kept\n"
    )
    print("| measurement | min /s | median /s | max /s | median ratio to the audit floor |")
    print("|---|---:|---:|---:|---:|")
    for mode, rates in runs.items():
        med = statistics.median(rates)
        print(
            f"| {mode} | {min(rates):,.0f} | {med:,.0f} | {max(rates):,.0f} "
            f"| {med / floor_median:.2f}x |"
        )
    print(
        "\nper round (/s): "
        + "; ".join(f"{m}: " + ", ".join(f"{r:,.0f}" for r in rs) for m, rs in runs.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (min/median/max of rounds)")
    if 3 * args.rounds * args.seconds > 45:
        parser.error("3 x rounds x seconds must be at most 45 s: the run is bounded by 60 s")

    async def bounded() -> None:
        async with asyncio.timeout(BOUND_S):
            await main_async(args.clients, args.seconds, args.rounds)

    asyncio.run(bounded())


if __name__ == "__main__":
    main()

"""A burst of concurrent cold ``$everything`` requests: who answers, how fast, and circuits.

The simulated sources run in a child process of their own (as real sources would be another
machine), so their CPU is not the gateway's. The gateway runs in this process with the
packaged policy bypassed (``permit_all``: this measures fetching and merging, not policy) and
an in-process cache that is cold for every person asked.

    python bench/burst.py [--burst 50] [--rounds 3] [--latency-ms 0] [--max-connections 20]

Each round sends ``--burst`` requests at once, for distinct people, then reads back:
status codes, how many answers lacked a source (``X-Incomplete-Sources`` or an ``incomplete``
OperationOutcome entry), each source's circuit state and the latency distribution. The floor
is one cold ``$everything`` alone, measured in the same run; ratios are against it. The run is
bounded (``rounds * burst`` requests) and stops the child process by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._gateway import bench_gateway  # noqa: E402
from gateway.embedded import free_port, running_server  # noqa: E402
from gateway.logging import configure_logging  # noqa: E402
from simulators import community, socialcare  # noqa: E402
from simulators.population import (  # noqa: E402
    COMMUNITY_ODS,
    COUNCIL_ODS,
    build_population,
)
from tests.support.processes import stop  # noqa: E402

ISSUER = "urn:caregateway:bench-burst"


def start_simulators(social_port: int, community_port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "simulate-sources",
            "--social-care-port",
            str(social_port),
            "--community-port",
            str(community_port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CAREGW_LOG_FORMAT": "json"},
    )


async def wait_until_up(urls: list[str], deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        for url in urls:
            while True:
                try:
                    await client.get(f"{url}/_control")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"simulator at {url} did not start") from None
                    await asyncio.sleep(0.05)  # polling a child process start-up, bounded


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def incomplete(response: httpx.Response) -> bool:
    if response.headers.get("X-Incomplete-Sources"):
        return True
    if response.status_code != 200:
        return False
    body = response.json()
    return any(
        e.get("search", {}).get("mode") == "outcome" and "incomplete" in response.text
        for e in body.get("entry", [])
    )


async def main(
    burst: int,
    rounds: int,
    source_timeout_s: float,
    latency_ms: int,
    max_connections: int,
    profile: str | None,
) -> None:
    from adapters.base import SourceConfig

    social_port, community_port = free_port(), free_port()
    social_url = f"http://127.0.0.1:{social_port}"
    community_url = f"http://127.0.0.1:{community_port}"
    child = start_simulators(social_port, community_port)
    try:
        await wait_until_up([social_url, community_url])
        async with httpx.AsyncClient() as control:
            for url in (social_url, community_url):
                answer = await control.post(f"{url}/_control", json={"latency_ms": latency_ms})
                answer.raise_for_status()
        sources = [
            SourceConfig(
                name="socialcare",
                kind="social-care-api",
                base_url=social_url,
                organisation=COUNCIL_ODS,
                api_key=socialcare.DEFAULT_API_KEY,
                timeout_s=source_timeout_s,
                max_connections=max_connections,
            ),
            SourceConfig(
                name="community",
                kind="community-fhir-stu3",
                base_url=community_url,
                organisation=COMMUNITY_ODS,
                bearer_token=community.DEFAULT_BEARER_TOKEN,
                timeout_s=source_timeout_s,
                max_connections=max_connections,
            ),
        ]
        await run(sources, burst, rounds, source_timeout_s, latency_ms, child.pid, profile)
    finally:
        stop(child, timeout_s=10)


async def run(
    sources: list[Any],
    burst: int,
    rounds: int,
    source_timeout_s: float,
    latency_ms: int,
    child_pid: int,
    profile: str | None = None,
) -> None:
    profiler = cProfile.Profile() if profile else None
    # Logs are written as in production (JSON), to nowhere: their cost is counted, not shown.
    configure_logging("json", stream=open(os.devnull, "w"))  # noqa: SIM115
    gw = bench_gateway(sources, ISSUER, "burst")
    base, port, headers = gw.base_url, gw.port, gw.headers
    people = iter(sorted(build_population().nhs_numbers()))
    limits = httpx.Limits(max_connections=burst * 2, max_keepalive_connections=burst * 2)
    statuses: Counter[int] = Counter()
    lacking = 0
    latencies: list[float] = []
    floors: list[float] = []
    circuits: list[dict[str, str]] = []
    cpu = {"gateway": 0.0, "simulators": 0.0}
    app = gw.app
    async with (
        running_server(app, "127.0.0.1", port),
        httpx.AsyncClient(timeout=60, limits=limits) as client,
    ):

        async def one(person: str) -> tuple[float, httpx.Response]:
            started = time.perf_counter()
            response = await client.get(f"{base}/Patient/{person}/$everything", headers=headers)
            return (time.perf_counter() - started) * 1000, response

        for _ in range(rounds):
            for _ in range(3):  # the floor: one cold request alone, before each burst
                floors.append((await one(next(people)))[0])
            cpu_before = (time.process_time(), cpu_seconds(child_pid))
            if profiler is not None:
                profiler.enable()
            results = await asyncio.gather(*(one(next(people)) for _ in range(burst)))
            if profiler is not None:
                profiler.disable()
            cpu["gateway"] += time.process_time() - cpu_before[0]
            cpu["simulators"] += cpu_seconds(child_pid) - cpu_before[1]
            for elapsed, response in results:
                statuses[response.status_code] += 1
                lacking += incomplete(response)
                latencies.append(elapsed)
            ready = (await client.get(f"http://127.0.0.1:{port}/health/ready")).json()
            circuits.append(ready.get("sources", {}))
            # Let any open circuit close before the next round (bounded by the reset time).
            await asyncio.sleep(0)

    if profiler is not None and profile:
        profiler.dump_stats(profile)
    floor = statistics.median(floors)
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(
        f"\n`python bench/burst.py --burst {burst} --rounds {rounds} "
        f"--source-timeout-s {source_timeout_s:g} --latency-ms {latency_ms} "
        f"--max-connections {sources[0].max_connections}`\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| requests | {len(latencies)} ({rounds} bursts of {burst}) |")
    print(f"| status codes | {dict(sorted(statuses.items()))} |")
    print(f"| answers lacking a source | {lacking} |")
    print(f"| circuits after each burst | {circuits} |")
    print(f"| floor (one cold request alone), median ms | {floor:.1f} |")
    print(f"| burst p50 ms (x floor) | {p50:.1f} ({p50 / floor:.1f}x) |")
    print(f"| burst p95 ms (x floor) | {p95:.1f} ({p95 / floor:.1f}x) |")
    print(f"| burst max ms | {ordered[-1]:.1f} |")
    per = len(latencies)
    print(
        f"| CPU per request during bursts, ms | gateway {cpu['gateway'] * 1000 / per:.1f}, "
        f"simulators {cpu['simulators'] * 1000 / per:.1f} |"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--source-timeout-s", type=float, default=2.0)
    parser.add_argument(
        "--max-connections", type=int, default=20, help="each source's in-flight bound"
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every source reply")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of the bursts")
    args = parser.parse_args()
    asyncio.run(
        main(
            args.burst,
            args.rounds,
            args.source_timeout_s,
            args.latency_ms,
            args.max_connections,
            args.profile,
        )
    )

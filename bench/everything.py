"""Cold and warm ``$everything`` latency with both simulated sources slowed down.

Each source's person lookup takes ``--latency-ms`` (simulator ``lookup_latency_ms``); its
follow-up reads (plans, teams, paging) are quick, as with a vendor system whose person index
is the slow part.

    python bench/everything.py [--latency-ms 100] [--requests 40]

One run measures, interleaved, on this machine:

* ``floor``   — the slowest single source lookup, asked directly (what a perfectly
  concurrent gateway cannot beat);
* ``sum``     — both sources asked one after the other (what a sequential gateway costs);
* ``cold``    — ``$everything`` for a person not yet cached (sources asked concurrently);
* ``warm``    — ``$everything`` for a cached person (encrypted in-process cache).

Ratios are against the floor measured in the same run. Results are printed as a Markdown
table for ``docs/benchmarks.md``. The run is bounded (a fixed number of requests) and stops
by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._gateway import bench_gateway  # noqa: E402
from gateway.embedded import running_server  # noqa: E402
from gateway.wiring import make_adapter  # noqa: E402
from simulators.runner import source_configs, start_sources  # noqa: E402

ISSUER = "urn:caregateway:bench"


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await fn()
    return (time.perf_counter() - started) * 1000


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


async def main(latency_ms: int, requests: int) -> None:
    running = await start_sources()
    try:
        sources = source_configs(running)
        async with httpx.AsyncClient() as client:
            for url in (running.social_care_url, running.community_url):
                r = await client.post(f"{url}/_control", json={"lookup_latency_ms": latency_ms})
                r.raise_for_status()
        gw = bench_gateway(sources, ISSUER, "everything")
        base, port, headers = gw.base_url, gw.port, gw.headers
        people = sorted(running.population.nhs_numbers())
        cold_people = iter(people)
        warm_person = people[0]
        adapters = [make_adapter(c) for c in sources]
        samples: dict[str, list[float]] = {"floor": [], "sum": [], "cold": [], "warm": []}
        async with (
            running_server(gw.app, "127.0.0.1", port),
            httpx.AsyncClient(timeout=30) as client,
        ):
            await client.get(f"{base}/Patient/{warm_person}/$everything", headers=headers)
            for _ in range(requests):
                person = next(cold_people)
                # floor: each source alone; the slowest one bounds a concurrent gateway
                per_source = [await timed(lambda a=a, p=person: a.fetch(p)) for a in adapters]
                samples["floor"].append(max(per_source))
                samples["sum"].append(sum(per_source))
                person = next(cold_people)
                samples["cold"].append(
                    await timed(
                        lambda p=person: client.get(
                            f"{base}/Patient/{p}/$everything", headers=headers
                        )
                    )
                )
                samples["warm"].append(
                    await timed(
                        lambda: client.get(
                            f"{base}/Patient/{warm_person}/$everything", headers=headers
                        )
                    )
                )
        for adapter in adapters:
            await adapter.aclose()
    finally:
        await running.stop()

    floor_median, _ = summary(samples["floor"])
    print(f"\n`python bench/everything.py --latency-ms {latency_ms} --requests {requests}`\n")
    print("| measure | median ms | p95 ms | median / floor |")
    print("|---|---|---|---|")
    for name in ("floor", "sum", "cold", "warm"):
        median, p95 = summary(samples[name])
        print(f"| {name} | {median:.1f} | {p95:.1f} | {median / floor_median:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(args.latency_ms, args.requests))

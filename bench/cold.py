"""Cold ``$everything`` with both sources at 100 ms per request, one at a time.

Both simulators delay every request by 100 ms. Each round reads people not yet cached, one
after the other, through ``serve``; the floor is each source's own adapter asked directly (in
this process, same configuration) for the same people, the slower of the two per person —
what the gateway cannot beat, since it asks both at once. Also counted: the source requests
a cold read makes, and the gateway's CPU per cold read (its process CPU over the reads).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from adapters.base import SourceConfig
from bench import harness as h
from bench.report import median, spread
from bench.warm import plain_people as people
from gateway.wiring import make_adapter

LATENCY_MS = 100
PER_ROUND = 5


def _configs(dep: h.Deployment) -> list[SourceConfig]:
    raw = json.loads((dep.workdir / "sources.json").read_text())
    return [
        SourceConfig(
            name=s["name"],
            kind=s["kind"],
            base_url=s["base_url"],
            organisation=s["organisation"],
            api_key=s.get("api_key"),
            bearer_token=s.get("bearer_token"),
            timeout_s=s["timeout_s"],
        )
        for s in raw
    ]


async def _direct(configs: list[SourceConfig], nhs: str) -> float:
    """ms for the slower of the two adapters asked directly (one after the other)."""
    slowest = 0.0
    for config in configs:
        adapter = make_adapter(config)
        try:
            t0 = time.perf_counter()
            result = await adapter.fetch(nhs)
            took = (time.perf_counter() - t0) * 1000
            if not result.ok:
                raise RuntimeError(f"{config.name} did not answer the floor read")
        finally:
            await adapter.aclose()
        slowest = max(slowest, took)
    return slowest


def run_cold(workdir: Path, *, rounds: int) -> list[str]:
    with h.children() as started:
        dep = h.start_deployment(workdir, started)
        gw, base = h.start_gateway(dep, started, name="cold")
        for url in (dep.social_url, dep.community_url):
            h.control(url, latency_ms=LATENCY_MS)
        everyone = people(2 * rounds * PER_ROUND + 1)
        configs = _configs(dep)
        warmup_nhs, warmup_gp = everyone[0]
        h.get(
            f"{base}/Patient/{warmup_nhs}/$everything",
            {"Authorization": f"Bearer {dep.token(warmup_gp, base)}"},
        )
        cold_ms: list[float] = []
        floor_ms: list[float] = []
        cpu_ms: list[float] = []
        per_read: list[float] = []
        loads: list[str] = []
        batches = [everyone[1 + i * PER_ROUND : 1 + (i + 1) * PER_ROUND] for i in range(rounds)]
        floors = everyone[1 + rounds * PER_ROUND :]
        for r, batch in enumerate(batches):
            before_cpu = h.tree_cpu_s(gw.pid)
            before_req = h.source_requests(dep.social_url) + h.source_requests(dep.community_url)
            for nhs, gp in batch:
                headers = {"Authorization": f"Bearer {dep.token(gp, base)}"}
                t0 = time.perf_counter()
                h.get(f"{base}/Patient/{nhs}/$everything", headers)
                cold_ms.append((time.perf_counter() - t0) * 1000)
            cpu_ms.append(1000 * (h.tree_cpu_s(gw.pid) - before_cpu) / len(batch))
            after_req = h.source_requests(dep.social_url) + h.source_requests(dep.community_url)
            per_read.append((after_req - before_req) / len(batch))
            for nhs, _gp in floors[r * PER_ROUND : (r + 1) * PER_ROUND]:
                floor_ms.append(asyncio.run(_direct(configs, nhs)))
            loads.append(h.loadavg())
    p50, floor_p50 = median(cold_ms), median(floor_ms)
    # Each dependent request costs at least LATENCY_MS; what the floor holds beyond its whole
    # steps is the adapter's own work and the machine's scheduling, not another request.
    depth = max(1, int(floor_p50 // LATENCY_MS))
    ordered = sorted(cold_ms)
    return [
        f"## Cold `$everything`, sources at {LATENCY_MS} ms per request",
        "",
        f"Cold reads one at a time through one `serve` process ({PER_ROUND} new people per "
        f"round, {rounds} rounds); the floor is the slower of the two adapters asked directly "
        "for other new people. Load average after each round: " + "; ".join(loads) + ".",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| cold p50 ms (min–max) | {p50:.0f} ({ordered[0]:.0f}–{ordered[-1]:.0f}) |",
        f"| floor p50 ms (slower source asked directly) | {floor_p50:.0f} |",
        f"| cold p50 / floor | {p50 / floor_p50:.2f} |",
        f"| deepest chain of dependent requests (floor / {LATENCY_MS} ms) | {depth} |",
        f"| target: depth × {LATENCY_MS} ms + 10 ms | {depth * LATENCY_MS + 10} |",
        f"| source requests per cold read | {spread(per_read, '{:.1f}')} |",
        f"| gateway CPU ms per cold read, per round | {spread(cpu_ms, '{:.1f}')} |",
        "",
    ]

"""Warm ``$everything`` for records of 1, 10 and 40 care plans, each against its floor.

Three people held by both sources; once the gateway has cached them, each person's community
entry is rewritten in Redis (sealed with the gateway's keys, as the gateway writes it) so that
it holds exactly N CarePlans (copies of the person's own plan, each with its own id) and the
social care entry holds none. The floor reads the larger of the person's two entries.
32 connections; per round each size's floor and gateway runs one after the other.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import redis as redis_sync

from adapters.base import SourceResult
from bench import harness as h
from bench.report import median, spread
from bench.warm import larger_entry, plain_people, warm_up
from gateway.cache import build_record_cache

SIZES = (1, 10, 40)


def _with_plans(result: SourceResult, plans: list[dict[str, Any]]) -> SourceResult:
    kept = [r for r in result.resources if r.get("resourceType") not in ("CarePlan", "Goal")]
    data = result.to_json()
    data["resources"] = kept + plans
    data["issues"] = []
    return SourceResult.from_json(data)


async def _reseed(dep: h.Deployment, nhs: str, n: int) -> None:
    cache = build_record_cache(
        redis_url=dep.redis_url,
        cache_keys=dep.cache_keys,
        index_key=dep.index_key,
        ttl_s=3600,
    )
    try:
        social = await cache.get("socialcare", nhs)
        community = await cache.get("community", nhs)
        assert social is not None and community is not None
        template = next(
            r
            for r in (*community.resources, *social.resources)
            if r.get("resourceType") == "CarePlan"
        )
        template = {k: v for k, v in template.items() if k != "goal"}
        stem = str(template["id"]).rsplit(".", 1)[0]
        plans = []
        for i in range(n):
            plan = copy.deepcopy(template)
            plan["id"] = f"{stem}.bench{i}"
            plans.append(plan)
        await cache.put(_with_plans(community, plans), nhs)
        await cache.put(_with_plans(social, []), nhs)
    finally:
        await cache.aclose()


def run_size(workdir: Path, *, seconds: float, rounds: int) -> list[str]:
    seconds = min(seconds, 2.0)
    with h.children() as started:
        dep = h.start_deployment(workdir, started)
        gw, base = h.start_gateway(dep, started, name="size")
        targets: dict[int, tuple[str, dict[str, str], str]] = {}
        floor = None
        floor_url = ""
        for n, (nhs, gp) in zip(SIZES, plain_people(len(SIZES)), strict=True):
            url = f"{base}/Patient/{nhs}/$everything"
            headers = {"Authorization": f"Bearer {dep.token(gp, base)}"}
            warm_up(dep, url, headers, nhs)
            asyncio.run(_reseed(dep, nhs, n))
            bundle = json.loads(h.get(url, headers))
            plans = sum(
                1 for e in bundle.get("entry", ()) if e["resource"]["resourceType"] == "CarePlan"
            )
            if plans != n:
                raise RuntimeError(f"expected {n} CarePlans in the answer, found {plans}")
            key, _ = larger_entry(dep, nhs)
            if floor is None:
                floor, floor_url = h.start_floor(dep, started, key)
            with redis_sync.Redis.from_url(dep.redis_url) as raw:
                size = len(raw.get(key) or b"")
            targets[n] = (
                url,
                headers,
                f"{floor_url}?key={key.hex()}|{size}|{len(h.get(url, headers))}",
            )
        assert floor is not None
        results: dict[int, dict[str, list[h.LoadResult]]] = {
            n: {"gateway": [], "floor": []} for n in SIZES
        }
        loads: list[str] = []
        for url, headers, _fl in targets.values():  # warm-up
            h.wrk(url, connections=32, seconds=1, headers=headers)
        for r in range(rounds):
            for n, (url, headers, fl) in targets.items():
                furl = fl.split("|")[0]
                pair = [("floor", furl, floor.pid, {}), ("gateway", url, gw.pid, headers)]
                for name, u, pid, hd in pair if r % 2 == 0 else reversed(pair):
                    results[n][name].append(
                        h.wrk(u, connections=32, seconds=seconds, headers=hd, server_pid=pid)
                    )
            loads.append(h.loadavg())
    lines = [
        "## Record size: 1, 10 and 40 care plans (warm, 32 connections)",
        "",
        "Warm `$everything` of a person whose cached record holds exactly N CarePlans (copies "
        "of the person's own plan, each with its own id, re-sealed into Redis with the "
        "gateway's keys), against the floor reading that person's larger entry. "
        f"{seconds:g} s per run, {rounds} rounds; median (min–max). Load average after each "
        f"round: {'; '.join(loads)}.",
        "",
        "| CarePlans | sealed entry B | answer B | gateway req/s | floor req/s | ratio "
        "| gateway p50 / p99 ms | CPU ms per request, gateway / floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, (_url, _hd, fl) in targets.items():
        _, size, answer = fl.split("|")
        g, f = results[n]["gateway"], results[n]["floor"]
        ratios = [a.rps / b.rps for a, b in zip(g, f, strict=True)]
        lines.append(
            f"| {n} | {int(size):,} | {int(answer):,} | {spread([x.rps for x in g])} "
            f"| {spread([x.rps for x in f])} | {spread(ratios, '{:.2f}')} "
            f"| {median([x.p50_ms for x in g]):.2f} / {median([x.p99_ms for x in g]):.2f} "
            f"| {median([x.cpu_ms_per_request for x in g]):.2f} / "
            f"{median([x.cpu_ms_per_request for x in f]):.2f} |"
        )
    return [*lines, ""]

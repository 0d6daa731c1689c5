"""Warm authorised audited ``$everything`` against its floor, 1 and 32 connections; and the
same with ``serve --workers 2`` against a 2-process floor (scale-out).

Per round, for each connection count, the floor and the gateway are loaded one after the
other (the order alternating between rounds), so each ratio compares two runs seconds apart
on the same machine. Every answer must be 200 and no warm read may reach a source.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_sync

from bench import harness as h
from bench.report import median, spread
from gateway.cache import IndexKey
from simulators.population import SCENARIO_NHS_NUMBERS, Population, build_population


@functools.lru_cache(maxsize=1)
def shared_population() -> Population:
    """The simulators' population (the same seed and size as theirs), built once."""
    return build_population()


def plain_people(count: int) -> list[tuple[str, str]]:
    """(NHS number, GP ODS code) of the first ``count`` unrestricted, living people held once
    by each source: records every benchmark can read warm without a withheld part."""
    population = shared_population()
    out: list[tuple[str, str]] = []
    for nhs in sorted(population.nhs_numbers()):
        council = population.council_people_with(nhs)
        if nhs in SCENARIO_NHS_NUMBERS or len(council) != 1:
            continue
        if not population.community_patients_with(nhs):
            continue
        person = council[0]
        if person.restricted or person.gp is None or person.death_date is not None:
            continue
        out.append((nhs, person.gp.ods_code))
        if len(out) == count:
            break
    return out


def warm_person() -> tuple[str, str]:
    """(NHS number, GP ODS code) of the first unrestricted person held by both sources."""
    found = plain_people(1)
    if not found:
        raise RuntimeError("no suitable person in the population")
    return found[0]


def warm_up(dep: h.Deployment, url: str, headers: dict[str, str], nhs: str) -> None:
    """Read until both sources' entries are cached (a source that was slow to answer on a
    busy machine leaves its part uncached, as it should)."""
    import time

    index = IndexKey.parse(dep.index_key)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        h.get(url, headers)
        with redis_sync.Redis.from_url(dep.redis_url) as raw:
            if all(raw.exists(index.record_key(s, nhs)) for s in ("socialcare", "community")):
                return
        time.sleep(0.5)
    raise RuntimeError("the warm person's record could not be cached within 30 s")


def larger_entry(dep: h.Deployment, nhs: str) -> tuple[bytes, dict[str, int]]:
    """The Redis key of the person's larger cache entry, and each entry's size."""
    index = IndexKey.parse(dep.index_key)
    keys = {s: index.record_key(s, nhs) for s in ("socialcare", "community")}
    with redis_sync.Redis.from_url(dep.redis_url) as raw:
        sizes = {s: len(raw.get(k) or b"") for s, k in keys.items()}
    if not all(sizes.values()):
        raise RuntimeError("the warm person is not cached after the first read")
    return keys[max(sizes, key=lambda s: sizes[s])], sizes


@dataclass
class Series:
    gateway: list[h.LoadResult] = field(default_factory=list)
    floor: list[h.LoadResult] = field(default_factory=list)
    load: list[str] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [g.rps / f.rps for g, f in zip(self.gateway, self.floor, strict=True)]


def measure(
    gw_url: str,
    gw_pid: int,
    floor_url: str,
    floor_pid: int,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    rounds: int,
) -> Series:
    series = Series()
    for r in range(rounds):
        pair = [("floor", floor_url, floor_pid, {}), ("gateway", gw_url, gw_pid, headers)]
        if r % 2:
            pair.reverse()
        for name, url, pid, hdrs in pair:
            result = h.wrk(
                url, connections=connections, seconds=seconds, headers=hdrs, server_pid=pid
            )
            getattr(series, name).append(result)
        series.load.append(h.loadavg())
    return series


def table(title: str, runs: dict[str, Series]) -> list[str]:
    lines = [
        f"| {title} | gateway req/s | floor req/s | ratio to floor | gateway p50 / p99 ms "
        "| p99 / p50 | floor p50 / p99 ms | CPU ms per request, gateway / floor | load average |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, s in runs.items():
        g50, g99 = median([g.p50_ms for g in s.gateway]), median([g.p99_ms for g in s.gateway])
        f50, f99 = median([f.p50_ms for f in s.floor]), median([f.p99_ms for f in s.floor])
        lines.append(
            f"| {label} | {spread([g.rps for g in s.gateway])} "
            f"| {spread([f.rps for f in s.floor])} | {spread(s.ratios, '{:.2f}')} "
            f"| {g50:.2f} / {g99:.2f} | {g99 / g50:.1f} | {f50:.2f} / {f99:.2f} "
            f"| {median([g.cpu_ms_per_request for g in s.gateway]):.2f} / "
            f"{median([f.cpu_ms_per_request for f in s.floor]):.2f} | {'; '.join(s.load)} |"
        )
    return lines


def run_warm(workdir: Path, *, seconds: float, rounds: int, workers: int = 1) -> dict[str, Series]:
    """Warm reads, 1 and 32 connections (``workers=1``), or 32 only for ``workers`` > 1."""
    with h.children() as started:
        dep = h.start_deployment(workdir, started)
        gw, base = h.start_gateway(dep, started, name=f"warm{workers}", workers=workers)
        nhs, gp = warm_person()
        url = f"{base}/Patient/{nhs}/$everything"
        headers = {"Authorization": f"Bearer {dep.token(gp, base)}"}
        warm_up(dep, url, headers, nhs)
        key, _sizes = larger_entry(dep, nhs)
        floor, floor_url = h.start_floor(dep, started, key, workers=workers)
        quiet = h.source_requests(dep.social_url) + h.source_requests(dep.community_url)
        plan = [1, 32] if workers == 1 else [32]
        out = {}
        for connections in plan:
            # untimed warm-up: connections, caches, the audit writer
            h.wrk(url, connections=connections, seconds=1, headers=headers)
            h.wrk(floor_url, connections=connections, seconds=1)
            out[f"{connections} conn, {workers} proc"] = measure(
                url, gw.pid, floor_url, floor.pid, headers, connections, seconds, rounds
            )
        if h.source_requests(dep.social_url) + h.source_requests(dep.community_url) != quiet:
            raise RuntimeError("a warm read reached a source: the cache did not serve it")
        gw.stop()  # drains: every answered request's event is committed before exit
        answered = sum(r.requests for s in out.values() for r in s.gateway)
        checked = verify_trail(dep.workdir / f"warm{workers}.db")
        if checked < answered:
            raise RuntimeError(f"{answered} answers measured but only {checked} audit events")
        VERIFIED[f"{workers} proc"] = (answered, checked)
        return out


VERIFIED: dict[str, tuple[int, int]] = {}
"""Per run: (answers counted by wrk, audit events in the verified chain)."""


def verify_trail(db: Path) -> int:
    """Verify the audit chain(s) of a gateway's SQLite file; the number of events."""
    import asyncio

    from gateway.audit import AuditStore
    from gateway.db import make_engine

    async def run() -> int:
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        try:
            result = await AuditStore(engine).verify()
        finally:
            await engine.dispose()
        if not result.ok:
            raise RuntimeError(f"the audit chain does not verify: {result}")
        return result.checked

    return asyncio.run(run())

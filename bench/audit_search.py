"""IG audit search on a partitioned PostgreSQL trail of 10 million events.

    python bench/audit_search.py [--events 10000000] [--queries 40] [--database-url URL]

Starts a PostgreSQL server of its own from the local binaries (or uses ``--database-url``, an
empty database it may fill), migrates it with the gateway's migrations (``audit_event``
partitioned by month, the search's indexes), and loads ``--events`` synthetic audit events
spread over eight years ending this month in one INSERT ... SELECT generate_series per chunk
(two at a time, one per core), with the indexes built after the load:

* people: 300,000 valid Modulus 11 NHS numbers in the 999 range, a few seen far more often
  than most (the square of a uniform draw picks the person);
* staff: 5,000 users in 60 organisations (GP practices, trusts' departments, the council),
  again some far busier than others;
* 0.2 % break-glass, 4 % refused, 1 % failed; purpose TREAT, some HOPERAT and ETREAT.

Rows carry a compact but valid AuditEvent as ``resource`` (what the search parses); the chain
columns are filled but not linked (hashing 10 million events in SQL one after another is not
what this measures; the chain is tested elsewhere).

Then, per kind of IG search (patient; patient over a year; user over a month; user over eight
years; organisation over a week; one day; break-glass; break-glass over a month) it runs
``--queries`` searches with different values, each twice, interleaved:

* ``gateway`` — what ``GET /fhir/AuditEvent`` runs: :meth:`AuditStore.count` (the Bundle's
  total) then :meth:`AuditStore.search` (the newest 50), through SQLAlchemy, parsed from JSON;
* ``floor`` — the same filters as one hand-written SQL query for the same page, on a bare
  asyncpg connection, not parsed.

Each gateway answer must list the same events as its floor query (else the script fails).
Prints the load timings and a Markdown table for ``docs/benchmarks.md``. Bounded: the load
is at most ``--events`` rows, the searches ``8 x 2 x --queries``; about 10 minutes for 10
million events on 2 cores; ``--events 300000`` for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway import schema  # noqa: E402
from gateway.audit.partitions import (  # noqa: E402
    ensure_partitions,
    month_start,
    months_between,
    next_month,
)
from gateway.audit.store import AuditFilters, AuditStore  # noqa: E402
from gateway.db import make_engine  # noqa: E402
from tests.gateway.postgres_server import (  # noqa: E402
    PostgresServer,
    _pg_binary,
    raw_connection,
)

PATIENTS = 300_000
USERS = 5_000
ORGS = 60
YEARS = 8
CHUNK = 500_000
PAGE = 50


def nhs_numbers(count: int, seed: int = 17) -> list[str]:
    """``count`` distinct valid NHS numbers in the 999 range (Modulus 11 check digit)."""
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        body = "999" + f"{rng.randrange(10**6):06d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(body))
        check = 11 - total % 11
        if check == 10:
            continue
        found.add(body + str(0 if check == 11 else check))
    return sorted(found)


class OwnServer(PostgresServer):
    """A PostgreSQL server for this run only, tuned for a bulk load (fsync off: the data is
    thrown away), stopped by its data directory at the end."""

    def __init__(self) -> None:
        if _pg_binary("initdb") is None or _pg_binary("pg_ctl") is None:
            raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl); pass --database-url")
        super().__init__()
        self.start(
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "-c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=16GB",
            "-c shared_buffers=2GB -c maintenance_work_mem=1GB -c work_mem=64MB",
            "-c max_parallel_maintenance_workers=2 -c checkpoint_timeout=30min",
            timeout_s=120,
        )

    def stop(self) -> None:
        self.remove()


def _insert_chunk(low: int, high: int, total: int, start: datetime, span_s: float) -> str:
    """One INSERT ... SELECT of events ``low..high`` (``seq``), in time order."""
    step = span_s / total
    return f"""
INSERT INTO audit_event (id, chain_id, seq, recorded, patient, agent_sub, agent_org, purpose,
                         outcome, break_glass, resource, prev_hash, hash)
SELECT e.id, 'main', e.g, e.recorded, p.nhs, u.sub, u.org, e.purpose, e.outcome, e.bg,
  '{{"resourceType":"AuditEvent","id":"' || e.id || '","recorded":"'
  || to_char(e.recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  || '","outcome":"' || e.outcome || '","agent":[{{"who":{{"identifier":{{"value":"' || u.sub
  || '"}}}},"requestor":true}},{{"who":{{"identifier":{{"value":"' || u.org
  || '"}}}}}}],"purposeOfEvent":[{{"coding":[{{"code":"' || e.purpose
  || '"}}]}}],"entity":[{{"what":{{"identifier":{{"system":"https://fhir.nhs.uk/Id/nhs-number",'
  || '"value":"' || p.nhs || '"}}}}}}]}}',
  lpad(to_hex(e.g - 1), 64, '0'), lpad(to_hex(e.g), 64, '0')
FROM (
  SELECT g, gen_random_uuid()::text AS id,
    timestamptz '{start.isoformat()}' + make_interval(secs => g * {step!r}) AS recorded,
    floor({PATIENTS} * power(random(), 2))::int AS pk,
    floor({USERS} * power(random(), 1.5))::int AS uk,
    random() < 0.002 AS bg, random() AS r1, random() AS r2
  FROM generate_series({low}, {high}) AS g
) AS s
CROSS JOIN LATERAL (SELECT s.*,
    CASE WHEN s.bg THEN 'ETREAT' WHEN s.r1 < 0.05 THEN 'HOPERAT' ELSE 'TREAT' END AS purpose,
    CASE WHEN s.r2 < 0.04 THEN '4' WHEN s.r2 < 0.05 THEN '8' ELSE '0' END AS outcome) AS e
JOIN bench_patient p ON p.n = e.pk
JOIN bench_user u ON u.n = e.uk
"""


async def load(url: str, events: int, now: datetime) -> tuple[datetime, dict[str, float]]:
    """Migrate, make the partitions, load ``events`` rows; the trail's start and timings."""
    timings: dict[str, float] = {}
    engine = make_engine(url)
    t0 = time.perf_counter()
    await schema.upgrade(engine)
    end = next_month(month_start(now))
    start = end.replace(year=end.year - YEARS)
    async with engine.begin() as conn:
        await ensure_partitions(conn, months_between(start, end))
    await engine.dispose()
    timings["migrate + partitions"] = time.perf_counter() - t0

    conn = await raw_connection(url)
    try:
        # Build the search's indexes once after the load instead of row by row during it.
        index_sql = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_event'"
        )
        keys = await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE conrelid = 'audit_event'::regclass AND contype IN ('p', 'u')"
        )
        for key in keys:
            await conn.execute(f'ALTER TABLE audit_event DROP CONSTRAINT "{key["conname"]}"')
        key_names = {k["conname"] for k in keys}
        for index in index_sql:
            if index["indexname"] not in key_names:
                await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        await conn.execute("CREATE TABLE bench_patient (n int PRIMARY KEY, nhs text)")
        await conn.execute("CREATE TABLE bench_user (n int PRIMARY KEY, sub text, org text)")
        people = nhs_numbers(PATIENTS)
        await conn.copy_records_to_table("bench_patient", records=list(enumerate(people)))
        orgs = [
            f"F{81000 + i}" if i < 40 else f"R{i:02d}" if i < 55 else f"LA{i}" for i in range(ORGS)
        ]
        staff = [(i, f"staff-{i:05d}", orgs[(i * 7) % ORGS]) for i in range(USERS)]
        await conn.copy_records_to_table("bench_user", records=staff)
    finally:
        await conn.close()

    t0 = time.perf_counter()
    span_s = (end - start).total_seconds()
    chunks = [(low, min(low + CHUNK - 1, events)) for low in range(1, events + 1, CHUNK)]
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)

    async def worker() -> None:
        worker_conn = await raw_connection(url)
        try:
            while not queue.empty():
                low, high = queue.get_nowait()
                await worker_conn.execute(_insert_chunk(low, high, events, start, span_s))
        finally:
            await worker_conn.close()

    await asyncio.gather(worker(), worker())
    timings["insert"] = time.perf_counter() - t0

    conn = await raw_connection(url)
    try:
        t0 = time.perf_counter()
        for key in keys:
            await conn.execute(
                f'ALTER TABLE audit_event ADD CONSTRAINT "{key["conname"]}" {key["def"]}'
            )
        for index in index_sql:
            if index["indexname"] not in key_names:
                # pg_indexes shows a partitioned index as made ON ONLY the parent; made
                # without ONLY it is built on every partition.
                await conn.execute(index["indexdef"].replace(" ON ONLY ", " ON "))
        timings["keys + indexes"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) audit_event")
        timings["vacuum analyze"] = time.perf_counter() - t0
        stored = await conn.fetchval("SELECT count(*) FROM audit_event")
        if stored != events:
            raise SystemExit(f"loaded {stored} events, expected {events}")
    finally:
        await conn.close()
    return start, timings


@dataclass
class Kind:
    name: str
    make: Callable[[random.Random], AuditFilters]
    gateway_ms: list[float] = field(default_factory=list)
    floor_ms: list[float] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)


def _floor_sql(filters: AuditFilters) -> tuple[str, list[Any]]:
    columns = {
        "patient": "patient = ${}",
        "agent": "agent_sub = ${}",
        "agent_org": "agent_org = ${}",
        "date_ge": "recorded >= ${}",
        "date_le": "recorded <= ${}",
        "break_glass": "break_glass = ${}",
    }
    where, args = [], []
    for name, value in filters.items():
        if name == "break_glass":  # a literal, as the gateway's query has: the partial index
            where.append("break_glass" if value else "NOT break_glass")
            continue
        args.append(value)
        where.append(columns[name].format(len(args)))
    sql = (
        "SELECT resource FROM audit_event WHERE "
        + " AND ".join(where)
        + f" ORDER BY recorded DESC, seq DESC LIMIT {PAGE}"
    )
    return sql, args


async def measure(url: str, start: datetime, queries: int, seed: int = 5) -> list[Kind]:
    people = nhs_numbers(PATIENTS)
    span = datetime.now(UTC) - start

    def instant(rng: random.Random, room: timedelta) -> datetime:
        return start + (span - room) * rng.random()

    def person(rng: random.Random) -> str:
        return people[int(PATIENTS * rng.random() ** 2)]

    def user(rng: random.Random) -> str:
        return f"staff-{int(USERS * rng.random() ** 1.5):05d}"

    def window(rng: random.Random, days: int) -> AuditFilters:
        low = instant(rng, timedelta(days=days))
        return {"date_ge": low, "date_le": low + timedelta(days=days)}

    kinds = [
        Kind("patient", lambda r: {"patient": person(r)}),
        Kind("patient, one year", lambda r: {"patient": person(r), **window(r, 365)}),
        Kind("agent, one month", lambda r: {"agent": user(r), **window(r, 30)}),
        Kind("agent, eight years", lambda r: {"agent": user(r)}),
        Kind(
            "agent-org, one week",
            lambda r: {"agent_org": f"F{81000 + r.randrange(40)}", **window(r, 7)},
        ),
        Kind("date, one day", lambda r: window(r, 1)),
        Kind("break-glass", lambda r: {"break_glass": True}),
        Kind("break-glass, one month", lambda r: {"break_glass": True, **window(r, 30)}),
    ]
    engine = make_engine(url)
    store = AuditStore(engine)
    raw = await raw_connection(url)
    rng = random.Random(seed)
    try:

        async def gateway(filters: AuditFilters) -> tuple[list[str], int]:
            total = await store.count(**filters)
            found = await store.search(count=PAGE, **filters)
            return [e["id"] for e in found], total

        async def floor(filters: AuditFilters) -> list[str]:
            sql, args = _floor_sql(filters)
            rows = await raw.fetch(sql, *args)
            return [r["resource"] for r in rows]

        async def timed(
            call: Callable[[AuditFilters], Awaitable[Any]], filters: AuditFilters
        ) -> tuple[float, Any]:
            t0 = time.perf_counter()
            value = await call(filters)
            return (time.perf_counter() - t0) * 1000, value

        for kind in kinds:  # warm the connections and the plan caches, unmeasured
            for _ in range(3):
                filters = kind.make(rng)
                await gateway(filters)
                await floor(filters)
        for _ in range(queries):
            for kind in kinds:
                filters = kind.make(rng)
                for first in ("gateway", "floor") if rng.random() < 0.5 else ("floor", "gateway"):
                    if first == "gateway":
                        ms, (ids, total) = await timed(gateway, filters)
                        kind.gateway_ms.append(ms)
                        kind.totals.append(total)
                    else:
                        ms, _ = await timed(floor, filters)
                        kind.floor_ms.append(ms)
                floor_ids = [s.split('"id":"', 1)[1].split('"', 1)[0] for s in await floor(filters)]
                if ids != floor_ids:
                    raise SystemExit(f"{kind.name}: the gateway's page differs from the floor's")
    finally:
        await raw.close()
        await store.close()
        await engine.dispose()
    return kinds


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def report(kinds: list[Kind], events: int, timings: dict[str, float], elapsed: float) -> bool:
    print(
        f"\n{events:,} events, {YEARS} years, {PATIENTS:,} people, {USERS:,} users; "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print(
        "load: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; total run {elapsed:.0f} s\n"
    )
    print(
        "| search | matches (median) | gateway min / median / p95 / max ms "
        "| floor min / median / p95 / max ms | p95 ratio |"
    )
    print("|---|---:|---:|---:|---:|")
    ok = True
    for kind in kinds:
        g, f = kind.gateway_ms, kind.floor_ms
        ok = ok and p95(g) < 1000
        print(
            f"| {kind.name} | {int(statistics.median(kind.totals)):,} "
            f"| {min(g):.1f} / {statistics.median(g):.1f} / {p95(g):.1f} / {max(g):.1f} "
            f"| {min(f):.1f} / {statistics.median(f):.1f} / {p95(f):.1f} / {max(f):.1f} "
            f"| {p95(g) / p95(f):.1f}x |"
        )
    print("\nevery gateway p95 under 1 s: " + ("yes" if ok else "NO"))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--database-url", help="an empty PostgreSQL database to fill")
    args = parser.parse_args()
    began = time.perf_counter()
    server = None if args.database_url else OwnServer()
    url = args.database_url or (server.url if server else "")
    try:
        start, timings = asyncio.run(load(url, args.events, datetime.now(UTC)))
        kinds = asyncio.run(measure(url, start, args.queries))
    finally:
        if server is not None:
            server.stop()
    return 0 if report(kinds, args.events, timings, time.perf_counter() - began) else 1


if __name__ == "__main__":
    raise SystemExit(main())

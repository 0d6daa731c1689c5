"""Durable audit events per second: group commit against one commit per event.

    python bench/audit_commit.py [--producers 32] [--seconds 3] [--rounds 3]

One run, on a fresh temporary SQLite file per measurement (WAL, ``synchronous=FULL``: every
commit is flushed to disk before ``append`` returns), with ``--producers`` concurrent tasks
each appending BALP AuditEvents in a loop for ``--seconds``:

* ``one-by-one`` — ``AuditStore(group_commit=False)``: each event its own transaction
  (the floor: what durability costs without batching);
* ``group``      — ``AuditStore()``: the writer task commits whatever is queued in one
  transaction.

The two modes are interleaved for ``--rounds`` rounds (the machine is noisy) and the median
of each is reported, with the ratio to the floor measured in the same run. After every
measurement the chain is verified and the rows counted, so only events that are on disk and
correctly chained are counted. Bounded: it stops by itself after
``2 x rounds x seconds`` plus set-up time. Prints a Markdown table for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.audit.events import AuditRecord, build_audit_event  # noqa: E402
from gateway.audit.store import AuditStore  # noqa: E402
from gateway.db import create_schema, make_engine  # noqa: E402

BASE = "http://127.0.0.1:8080/fhir"


@dataclass
class Measurement:
    mode: str
    events: int
    seconds: float
    transactions: int
    p50_ms: float
    p99_ms: float
    cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _record(producer: int, n: int) -> AuditRecord:
    return AuditRecord(
        subtype="search-type",
        action="E",
        outcome="0",
        recorded=datetime.now(UTC),
        user_sub=f"bench-user-{producer}",
        user_name="Bench User",
        user_role="R8000",
        user_org="F81001",
        purpose="TREAT",
        client_id="bench",
        client_address="127.0.0.1",
        patient_nhs="9990000018",
        query="patient=9990000018&status=active",
        request_id=f"bench-{producer}-{n}",
        decision_effect="permit",
        resource_type="CarePlan",
        resource_ids=("sc-plan-1", "cm-plan-2"),
    )


async def measure(mode: str, producers: int, seconds: float, folder: Path) -> Measurement:
    path = folder / f"{mode}-{time.monotonic_ns()}.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await create_schema(engine)
    store = AuditStore(engine, group_commit=(mode == "group"))
    await store.start()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def producer(p: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            event = build_audit_event(_record(p, done), BASE)
            t0 = time.perf_counter()
            await store.append(event)
            latencies.append(time.perf_counter() - t0)
            done += 1
        return done

    started, cpu0 = time.perf_counter(), time.process_time()
    counts = await asyncio.gather(*(producer(p) for p in range(producers)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    await store.close()
    result = await store.verify()
    await engine.dispose()
    total = sum(counts)
    if not result.ok or result.checked != total:
        raise SystemExit(f"{mode}: chain check failed: {result} for {total} events")
    latencies.sort()
    return Measurement(
        mode=mode,
        events=total,
        seconds=elapsed,
        transactions=store.transactions,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        cpu_s=cpu,
    )


async def main_async(producers: int, seconds: float, rounds: int) -> None:
    runs: dict[str, list[Measurement]] = {"one-by-one": [], "group": []}
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        for _ in range(rounds):
            for mode in ("one-by-one", "group"):
                runs[mode].append(await measure(mode, producers, seconds, Path(tmp)))

    floor = statistics.median(m.rate for m in runs["one-by-one"])
    print(
        f"\n{producers} concurrent producers, {seconds:g} s per measurement, {rounds} rounds "
        f"interleaved, medians; SQLite WAL synchronous=FULL on a temp file; "
        f"Python {platform.python_version()}, {platform.machine()}\n"
    )
    print(
        "| mode | durable events/s | ratio to one-by-one | events per transaction "
        "| append p50 ms | append p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for mode, ms in runs.items():
        rate = statistics.median(m.rate for m in ms)
        per_tx = statistics.median(m.events / m.transactions for m in ms)
        p50 = statistics.median(m.p50_ms for m in ms)
        p99 = statistics.median(m.p99_ms for m in ms)
        print(
            f"| {mode} | {rate:,.0f} | {rate / floor:.1f}x | {per_tx:.1f} | {p50:.2f} | {p99:.2f} |"
        )
    print(
        "\nper round (events/s): "
        + "; ".join(
            f"{mode}: " + ", ".join(f"{m.rate:,.0f}" for m in ms) for mode, ms in runs.items()
        )
    )


async def _runs(producers: int, seconds: float, rounds: int) -> dict[str, list[Measurement]]:
    runs: dict[str, list[Measurement]] = {"one-by-one": [], "group": []}
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        for r in range(rounds):
            modes = ("one-by-one", "group") if r % 2 == 0 else ("group", "one-by-one")
            for mode in modes:
                runs[mode].append(await measure(mode, producers, seconds, Path(tmp)))
    return runs


def run_markdown(rounds: int, seconds: float) -> list[str]:
    """The ``audit`` scenario of ``python -m bench``: 32 and 1 producers."""
    import os

    from bench.report import median, spread

    lines = [
        "## Audit append (durable, hash-chained)",
        "",
        "`AuditStore.append` returns only once the event is committed (SQLite WAL, "
        "`synchronous=FULL`, a fresh temporary file per run); N producers each build a BALP "
        "event and append it in a loop. The floor is the same store committing each event in "
        "its own transaction (`group_commit=False`). After every run the chain is verified and "
        f"must hold exactly the acknowledged events. {seconds:g} s per run, {rounds} rounds "
        "interleaved; median (min–max). CPU is the process's, per event (building, "
        "serialising, hashing and inserting it).",
        "",
        "| producers | mode | durable events/s | ratio to one-by-one | events per transaction "
        "| append p50 / p99 ms | CPU µs per event | load average |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for producers in (32, 1):
        runs = asyncio.run(_runs(producers, seconds, rounds))
        load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        floor = [m.rate for m in runs["one-by-one"]]
        for mode, ms in runs.items():
            ratios = [m.rate / f for m, f in zip(ms, floor, strict=True)]
            lines.append(
                f"| {producers} | {mode} | {spread([m.rate for m in ms])} "
                f"| {spread(ratios, '{:.1f}')} "
                f"| {median([m.events / m.transactions for m in ms]):.1f} "
                f"| {median([m.p50_ms for m in ms]):.2f} / {median([m.p99_ms for m in ms]):.2f} "
                f"| {median([1e6 * m.cpu_s / m.events for m in ms]):,.0f} | {load} |"
            )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--producers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main_async(args.producers, args.seconds, args.rounds))


if __name__ == "__main__":
    main()

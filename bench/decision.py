"""The consent decision in process: what a warm read pays to decide, against the bare read.

The warm person's two source results (fetched once from the simulators), a migrated SQLite
file holding two of the person's Consents (an objection withdrawn, then an inactive one: both
are read and parsed, neither denies). Per call, µs, ``--rounds`` rounds of N calls each:

* ``floor``          — the decision query alone (:class:`gateway.policy.hot_reads.HotReads`);
* ``decide``         — :func:`consent.decide` on directives parsed in advance (no I/O);
* ``gateway``        — :class:`gateway.policy.decision.PolicyDecider` as ``serve`` wires it: one
  query, then the verdict it remembers for the very same answers and directives in force
  (decided and turned into the visible part of each source, :func:`to_verdict`, on the first
  call);
* ``two ORM reads``  — the same decider reading through the two stores' ``AsyncSession``s
  (what every request did before the one-query read).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import spread
from bench.warm import plain_people as people
from consent import decide, load_policy, parse_consents
from gateway import schema
from gateway.db import make_engine
from gateway.policy.decision import PolicyDecider, contributions, requester
from gateway.policy.hot_reads import HotReads
from gateway.policy.store import BreakGlassStore, ConsentStore
from gateway.records.access import RequestContext
from gateway.wiring import make_adapter
from simulators.runner import source_configs, start_sources
from tests.consent.factories import objection_body

CALLS = 400


async def _timed(fn: Callable[[], Awaitable[Any]], calls: int, budget_s: float = 1.5) -> float:
    """µs per call over ``calls`` calls, or as many as fit in ``budget_s``."""
    await fn()
    t0 = time.perf_counter()
    done = 0
    while done < calls and (done < 10 or time.perf_counter() - t0 < budget_s):
        await fn()
        done += 1
    return (time.perf_counter() - t0) * 1e6 / done


async def _run(workdir: Path, rounds: int) -> dict[str, list[float]]:
    nhs, gp = people(1)[0]
    running = await start_sources()
    try:
        adapters = [make_adapter(c) for c in source_configs(running)]
        results = [await a.fetch(nhs) for a in adapters]
        for a in adapters:
            await a.aclose()
    finally:
        await running.stop()
    engine = make_engine(f"sqlite+aiosqlite:///{workdir}/decision.db")
    await schema.upgrade(engine)
    consents, ledger, hot = ConsentStore(engine), BreakGlassStore(engine), HotReads(engine)
    for status in ("inactive", "inactive"):
        await consents.create(objection_body(nhs, status))
    policy = load_policy(None)
    ctx = RequestContext(
        sub="bench-user",
        role="R8000",
        org=gp,
        client_kind="user",
        purpose="TREAT",
        request_id="bench",
    )
    fast = PolicyDecider(policy, consents, ledger, inputs=hot.decision_inputs)
    slow = PolicyDecider(policy, consents, ledger)
    parsed = parse_consents(await consents.active_for(nhs))
    contrib = contributions(results)
    who = requester(ctx)
    verdict = await fast(ctx, nhs, results)
    if verdict.effect != "permit" or (await slow(ctx, nhs, results)).effect != "permit":
        raise RuntimeError(f"expected a permit, got {verdict.effect}")

    async def pure() -> None:
        decide(who, "TREAT", contrib, parsed, policy, datetime.now(UTC))

    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "floor: the decision query": lambda: hot.decision_inputs(nhs, ctx.sub),
        "decide (pure, no I/O)": pure,
        "gateway: one query + decide + verdict": lambda: fast(ctx, nhs, results),
        "two ORM reads + decide + verdict": lambda: slow(ctx, nhs, results),
    }
    out: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for _ in range(rounds):
            for name, fn in variants.items():
                out[name].append(await _timed(fn, CALLS))
    finally:
        hot.close()
        await engine.dispose()
    return out


def run_decision(workdir: Path, *, rounds: int) -> list[str]:
    import os

    out = asyncio.run(_run(workdir, rounds))
    floor = out["floor: the decision query"]
    lines = [
        "## Consent decision (in process)",
        "",
        "The warm person's two source results, two stored Consents (read on every call; the "
        "gateway parses a stored text once, the ORM path every time), the default policy; "
        f"{CALLS} calls per run (or 1.5 s), {rounds} rounds; µs per call, median (min–max); "
        "ratio to the floor per round. Load average at the end: "
        "{:.2f} {:.2f} {:.2f}.".format(*os.getloadavg()),
        "",
        "| what | µs per call | ratio to floor |",
        "|---|---:|---:|",
    ]
    for name, values in out.items():
        ratios = [v / f for v, f in zip(values, floor, strict=True)]
        lines.append(f"| {name} | {spread(values)} | {spread(ratios, '{:.1f}')} |")
    return [*lines, ""]

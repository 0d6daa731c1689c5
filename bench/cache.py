"""Record cache: cold vs warm ``$everything`` latency and warm throughput, against a floor.

    python bench/cache.py [--latency-ms 50] [--cold 20] [--warm 200] [--concurrency 16]
                          [--load-requests 3000] [--load-seconds 4] [--rounds 3]

One run, on this machine, everything on loopback:

* a real ``redis-server`` (started here on a free port, stopped by its PID at the end);
* both source simulators, each request delayed by ``--latency-ms``;
* the gateway as ``serve`` builds it: Redis-backed encrypted cache from
  ``build_record_cache`` with freshly generated keys, the default consent policy, the audit
  trail (each request's AuditEvent committed to SQLite before the answer), JSON logs (to
  /dev/null);
* the floor: a bare Starlette endpoint in the same process doing one Redis GET and one
  AES-256-GCM decrypt of the same bytes the gateway cached (the larger of the person's two
  entries), returning the plaintext.

Measured:

* ``cold``  — ``$everything`` for people not yet cached, one at a time;
* ``warm``  — ``$everything`` for a cached person, one at a time;
* ``floor`` — the bare endpoint, one at a time;
* ``cache read`` — the cache's own share of a warm read, in process, no HTTP: both sources'
  entries read with ``RecordCache.get`` (two Redis GETs, two decrypts, JSON parsing);
* throughput — warm ``$everything`` and the floor under ``--concurrency`` connections, each
  run bounded by ``--load-requests`` and ``--load-seconds``, interleaved for ``--rounds``.

The load generator is a separate Python process (a minimal keep-alive HTTP/1.1 client on
asyncio streams), so it does not share the server's event loop; on a 2-core machine it still
shares the CPU. Results are a Markdown table (with
the command) for ``docs/benchmarks.md``. The run is bounded and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from gateway.app import create_app  # noqa: E402
from gateway.auth import TokenVerifier, generate_signing_key, issue_token  # noqa: E402
from gateway.cache import (  # noqa: E402
    IndexKey,
    KeyRing,
    build_record_cache,
    generate_index_key,
    generate_key_entry,
)
from gateway.embedded import free_port, running_server  # noqa: E402
from gateway.logging import configure_logging  # noqa: E402
from gateway.state import Closer, GatewayState  # noqa: E402
from gateway.wiring import Overrides, build_state, defaults  # noqa: E402
from simulators.population import SCENARIO_NHS_NUMBERS, Population  # noqa: E402
from simulators.runner import source_configs, start_sources  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

ISSUER = "urn:caregateway:bench"
SOURCES = ("socialcare", "community")


# --- the load generator (runs in a child process) -----------------------------------------


class _Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: far cheaper per request than
    httpx, so the load generator is less of the measurement."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{extra}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        if "content-length" in fields:
            await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    """Send requests from ``spec["targets"]`` (cycled) over ``concurrency`` keep-alive
    connections until ``requests`` are done or ``seconds`` have passed; return latencies and
    the elapsed time."""
    targets = [(urlsplit(url), headers) for url, headers in spec["targets"]]
    limit, seconds, workers = spec["requests"], spec["seconds"], spec["concurrency"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    issued = 0
    first = targets[0][0]
    conns = [_Connection(first.hostname or "127.0.0.1", first.port or 80) for _ in range(workers)]

    def target(i: int) -> tuple[str, dict[str, str]]:
        url, headers = targets[i % len(targets)]
        return url.path + (f"?{url.query}" if url.query else ""), headers

    if spec.get("warmup", True):  # one untimed request per connection to open it
        await asyncio.gather(*(c.get(*target(0)) for c in conns))
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(conn: _Connection) -> None:
        nonlocal issued
        while issued < limit and time.perf_counter() < deadline:
            path, headers = target(issued)
            issued += 1
            t0 = time.perf_counter()
            status = await conn.get(path, headers)
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return {"latencies": latencies, "elapsed": elapsed, "statuses": statuses}


async def load(
    targets: list[tuple[str, dict[str, str]]],
    *,
    concurrency: int,
    requests: int,
    seconds: float,
    warmup: bool = True,
) -> dict[str, Any]:
    """Run the load generator in a child process and return its result."""
    spec = json.dumps(
        {
            "targets": targets,
            "concurrency": concurrency,
            "requests": requests,
            "seconds": seconds,
            "warmup": warmup,
        }
    ).encode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--load-generator",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(spec), timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError("load generator failed")
    result: dict[str, Any] = json.loads(out)
    bad = {s: n for s, n in result["statuses"].items() if s != "200"}
    if bad:
        raise RuntimeError(f"non-200 answers during the benchmark: {bad}")
    return result


# --- the floor ------------------------------------------------------------------------------


def floor_app(redis_url: str, ring: KeyRing, key: bytes) -> Starlette:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(redis_url, max_connections=64)

    async def one_get_one_decrypt(request: Request) -> Response:
        blob = await client.get(key)
        assert blob is not None
        return Response(ring.open(key, blob), media_type="application/json")

    return Starlette(routes=[Route("/floor", one_get_one_decrypt)])


# --- the run --------------------------------------------------------------------------------


def candidates(population: Population) -> list[tuple[str, str]]:
    """(NHS number, GP ODS code) of people in both sources, unrestricted, outside scenarios."""
    out = []
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
    return out


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


async def main(args: argparse.Namespace) -> None:
    configure_logging("json", stream=open(os.devnull, "w"))  # noqa: SIM115
    workdir = Path(tempfile.mkdtemp(prefix="caregw-bench-cache-"))
    redis = RedisServer(workdir)
    redis.start()
    running = await start_sources()
    try:
        await run(args, workdir, redis, running)
    finally:
        await running.stop()
        redis.stop()


async def run(args: argparse.Namespace, workdir: Path, redis: RedisServer, running: Any) -> None:
    sources = source_configs(running)
    async with httpx.AsyncClient(timeout=30) as client:
        for url in (running.social_care_url, running.community_url):
            r = await client.post(f"{url}/_control", json={"latency_ms": args.latency_ms})
            r.raise_for_status()

    keys, index_b64 = generate_key_entry(), generate_index_key()
    ring, index = KeyRing.parse(keys), IndexKey.parse(index_b64)
    pem, jwk = generate_signing_key()
    port, floor_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    verifier = TokenVerifier(issuer=ISSUER, audience=base, jwks={"keys": [jwk]})

    async def factory() -> tuple[GatewayState, Closer]:
        cache = build_record_cache(
            redis_url=redis.url,
            cache_keys=keys,
            index_key=index_b64,
            ttl_s=3600,
            sources=[s.name for s in sources],
        )
        overrides = Overrides(
            base_url=base,
            sources=sources,
            verifier=verifier,
            database_url=f"sqlite+aiosqlite:///{workdir}/bench.db",
            cache=cache,
        )
        return await build_state(defaults(), overrides)

    def headers(gp: str) -> dict[str, str]:
        token = issue_token(
            pem,
            issuer=ISSUER,
            audience=base,
            sub="bench-user",
            role="R8000",
            org=gp,
            purpose="TREAT",
            ttl_s=3600,
        )
        return {"Authorization": f"Bearer {token}"}

    people = candidates(running.population)
    warm_nhs, warm_gp = people[0]
    cold = [(f"{base}/Patient/{n}/$everything", headers(gp)) for n, gp in people[1 : 1 + args.cold]]
    warm = [(f"{base}/Patient/{warm_nhs}/$everything", headers(warm_gp))]

    async with running_server(create_app(factory), "127.0.0.1", port):
        async with httpx.AsyncClient(timeout=30) as client:
            first = await client.get(warm[0][0], headers=warm[0][1])
            first.raise_for_status()
            before = await source_counts(client, running)
            for url, h in cold:  # count the source requests of the cold reads
                (await client.get(url, headers=h)).raise_for_status()
            after = await source_counts(client, running)
        per_cold = {s: (after[s] - before[s]) / len(cold) for s in after}
        # the cold people are cached now: cold latency is measured on the next ones
        cold = [
            (f"{base}/Patient/{n}/$everything", headers(gp))
            for n, gp in people[1 + args.cold : 1 + 2 * args.cold]
        ]

        import redis as redis_sync

        with redis_sync.Redis.from_url(redis.url) as raw:
            entries = {s: raw.get(index.record_key(s, warm_nhs)) for s in SOURCES}
        sizes = {s: len(v or b"") for s, v in entries.items()}
        floor_key = index.record_key(max(sizes, key=lambda s: sizes[s]), warm_nhs)
        floor_url = f"http://127.0.0.1:{floor_port}/floor"

        async with running_server(floor_app(redis.url, ring, floor_key), "127.0.0.1", floor_port):
            one = {"concurrency": 1, "seconds": 60.0}
            lat: dict[str, list[float]] = {"cold": [], "warm": [], "floor": []}
            lat["cold"] = (await load(cold, requests=len(cold), warmup=False, **one))["latencies"]
            async with httpx.AsyncClient(timeout=30) as client:
                quiet = await source_counts(client, running)
            for _ in range(args.rounds):  # interleaved
                lat["floor"] += (
                    await load([(floor_url, {})], requests=args.warm // args.rounds, **one)
                )["latencies"]
                lat["warm"] += (await load(warm, requests=args.warm // args.rounds, **one))[
                    "latencies"
                ]
            # the cache's own share of a warm read: both sources' entries, in process
            reader = build_record_cache(
                redis_url=redis.url, cache_keys=keys, index_key=index_b64, ttl_s=3600
            )
            lat["cache read"] = []
            for _ in range(args.warm):
                t0 = time.perf_counter()
                got = [await reader.get(s, warm_nhs) for s in SOURCES]
                lat["cache read"].append((time.perf_counter() - t0) * 1000)
                assert all(g is not None for g in got)
            await reader.aclose()
            tput: dict[str, list[float]] = {"floor": [], "warm": []}
            p99: dict[str, list[float]] = {"floor": [], "warm": []}
            counts: dict[str, int] = {"floor": 0, "warm": 0}
            for _ in range(args.rounds):
                for name, targets in (("floor", [(floor_url, {})]), ("warm", warm)):
                    r = await load(
                        targets,
                        concurrency=args.concurrency,
                        requests=args.load_requests,
                        seconds=args.load_seconds,
                    )
                    n = len(r["latencies"])
                    counts[name] += n
                    tput[name].append(n / r["elapsed"])
                    p99[name].append(sorted(r["latencies"])[int(0.99 * (n - 1))])

        async with httpx.AsyncClient(timeout=30) as client:
            if await source_counts(client, running) != quiet:
                raise RuntimeError("a warm read reached a source: the cache did not serve it")

    command = (
        f"/work/venv/bin/python bench/cache.py --latency-ms {args.latency_ms} --cold {args.cold}"
        f" --warm {args.warm} --concurrency {args.concurrency} --load-requests "
        f"{args.load_requests} --load-seconds {args.load_seconds:g} --rounds {args.rounds}"
    )
    floor_median, _ = summary(lat["floor"])
    print(f"\n`{command}`\n")
    print(
        f"Source latency {args.latency_ms} ms per HTTP request; a cold `$everything` made "
        f"{per_cold['socialcare']:.1f} social care and {per_cold['community']:.1f} community "
        f"requests on average. Cached entries for the warm person: social care "
        f"{sizes['socialcare']} B, community {sizes['community']} B (sealed); the floor reads "
        f"the larger.\n"
    )
    print("| one at a time | requests | median ms | p95 ms | median / floor |")
    print("|---|---:|---:|---:|---:|")
    for name in ("cold", "warm", "cache read", "floor"):
        median, p95 = summary(lat[name])
        print(
            f"| {name} | {len(lat[name])} | {median:.2f} | {p95:.2f} | "
            f"{median / floor_median:.1f}x |"
        )
    print(
        f"\n| {args.concurrency} connections | requests | req/s (median of {args.rounds}) "
        f"| p99 ms (median) | throughput / floor | req/s per round |"
    )
    print("|---|---:|---:|---:|---:|---|")
    floor_tput = statistics.median(tput["floor"])
    for name in ("warm", "floor"):
        med = statistics.median(tput[name])
        rounds = ", ".join(f"{t:,.0f}" for t in tput[name])
        print(
            f"| {name} | {counts[name]} | {med:,.0f} | {statistics.median(p99[name]):.1f} | "
            f"{med / floor_tput:.2f} | {rounds} |"
        )


async def source_counts(client: httpx.AsyncClient, running: Any) -> dict[str, int]:
    out = {}
    for name, url in (
        ("socialcare", running.social_care_url),
        ("community", running.community_url),
    ):
        r = await client.get(f"{url}/_control")
        # the change-feed poller's GET /changes is not a record read
        out[name] = sum(n for path, n in r.json()["requests"].items() if path != "/changes")
    return out


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    if sys.argv[1:] == ["--load-generator"]:
        print(json.dumps(_run(_load(json.loads(sys.stdin.read())))))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--cold", type=int, default=20, help="cold reads (distinct people)")
    parser.add_argument("--warm", type=int, default=300, help="warm and floor reads, one at a time")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--load-requests", type=int, default=3000)
    parser.add_argument("--load-seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    _run(main(parser.parse_args()))

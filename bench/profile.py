"""Where a warm read's CPU goes: py-spy on one ``serve`` process under 32 connections.

    python -m bench.profile [--seconds 15] [--out profile.txt]

Starts the same deployment as :mod:`bench.warm`, loads the warm ``$everything`` with ``wrk``
and samples the gateway with ``py-spy record --gil --format raw`` (collapsed stacks of
GIL-holding samples, so waiting is not counted). Prints the share of samples in which each of
the gateway's own concerns appears (inclusive), and the top frames by own samples.
Needs ``py-spy`` (``pip install py-spy``; run as root or with ptrace allowed).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from bench import harness as h
from bench.warm import warm_person, warm_up

# Inclusive buckets, matched on a frame's "function (file)" text, first match wins per bucket.
BUCKETS: dict[str, tuple[str, ...]] = {
    "token verification": ("averify (", "_verifier.py"),
    "consent decision (policy)": ("consent/decide.py", "consent/rules.py", "to_verdict"),
    "decision reads (database)": ("hot_reads.py",),
    "cache read (Redis + decrypt + parse)": ("record_cache.py",),
    "merge": ("gateway/records/merge.py",),
    "bundle + JSON (responses.py)": ("responses.py",),
    "audit event build": ("build_event", "build_audit_event", "events.py"),
    "audit commit (writer)": ("writer.py",),
    "logging": ("structlog", "logging/__init__.py", "gateway/logging.py"),
    "FastAPI / Starlette routing": ("fastapi/", "starlette/"),
    "uvicorn / httptools": ("uvicorn/", "httptools"),
    "SQLAlchemy / aiosqlite": ("sqlalchemy/", "aiosqlite/"),
    "redis client": ("redis/",),
    "event loop": ("uvloop", "asyncio/"),
}


def summarise(raw: str, top: int = 25) -> list[str]:
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for bucket, needles in BUCKETS.items():
            if any(n in f for f in frames for n in needles):
                inclusive[bucket] += count
    if total == 0:
        return ["(no samples)"]
    lines = [f"{total} GIL-holding samples", "", "| concern (inclusive) | share |", "|---|---:|"]
    for bucket, count in inclusive.most_common():
        lines.append(f"| {bucket} | {100 * count / total:.1f}% |")
    lines += ["", "| frame (own samples) | share |", "|---|---:|"]
    for frame, count in own.most_common(top):
        lines.append(f"| `{frame[:110]}` | {100 * count / total:.1f}% |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    parser.add_argument(
        "--nonblocking",
        action="store_true",
        help="sample without pausing the gateway (cheaper, but stacks can be torn)",
    )
    parser.add_argument("--native", action="store_true", help="C frames too (py-spy --native)")
    args = parser.parse_args()
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    with tempfile.TemporaryDirectory(prefix="caregw-profile-") as tmp, h.children() as started:
        dep = h.start_deployment(Path(tmp), started)
        gw, base = h.start_gateway(dep, started, name="profile")
        nhs, gp = warm_person()
        url = f"{base}/Patient/{nhs}/$everything"
        headers = {"Authorization": f"Bearer {dep.token(gp, base)}"}
        warm_up(dep, url, headers, nhs)
        h.wrk(url, connections=args.connections, seconds=2, headers=headers)
        raw_path = Path(tmp) / "stacks.txt"
        result: dict[str, h.LoadResult] = {}

        def load() -> None:
            result["r"] = h.wrk(
                url,
                connections=args.connections,
                seconds=args.seconds + 2,
                headers=headers,
                server_pid=gw.pid,
            )

        loader = threading.Thread(target=load)
        loader.start()
        subprocess.run(  # noqa: S603
            [
                spy,
                "record",
                "--pid",
                str(gw.pid),
                "--duration",
                f"{int(args.seconds)}",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(raw_path),
                *(["--nonblocking"] if args.nonblocking else []),
                *(["--native"] if args.native else []),
            ],
            check=True,
            capture_output=True,
            timeout=args.seconds + 60,
        )
        loader.join()
        r = result["r"]
        if args.raw:
            shutil.copyfile(raw_path, args.raw)
        lines = [
            f"wrk -c{args.connections}: {r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, "
            f"p99 {r.p99_ms:.2f} ms, {r.cpu_ms_per_request:.2f} ms CPU per request; "
            f"load average {h.loadavg()}",
            "",
            *summarise(raw_path.read_text()),
        ]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

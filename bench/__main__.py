"""``python -m bench``: every benchmark scenario, each against its floor in the same run.

    python -m bench [--only warm,cold,...] [--rounds 3] [--seconds 3] [--write docs/benchmarks.md]

Scenarios (each bounded, ≤ 60 s of measuring on this 2-core machine; min / median / max over
``--rounds``):

* ``warm``     — warm authorised audited ``$everything``, one ``serve`` process, 1 and 32
  connections, against the bare Redis GET + AES-GCM floor (:mod:`bench.warm`);
* ``scale``    — the same at 32 connections with ``serve --workers 2`` against a 2-process
  floor;
* ``size``     — warm reads of a record with 1, 10 and 40 care plans (:mod:`bench.size`);
* ``cold``     — cold ``$everything`` with both sources at 100 ms per request, one at a time
  (:mod:`bench.cold`);
* ``audit``    — durable audit appends, group commit against one commit per event
  (:mod:`bench.audit_commit`);
* ``decision`` — the consent decision with its database read, in process, against the bare
  read (:mod:`bench.decision`).

Without ``--write`` the Markdown is printed; with it, the file is rewritten up to its
:data:`NOTES` marker (what follows the marker, the reading of the figures, is kept).
Needs ``wrk`` (Debian package) and ``redis-server`` on the PATH.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import report

SCENARIOS = ("warm", "scale", "size", "cold", "audit", "decision")


def _warm(args: argparse.Namespace, workdir: Path) -> list[str]:
    from bench.warm import run_warm, table

    runs = run_warm(workdir, seconds=args.seconds, rounds=args.rounds)
    return [
        "## Warm `$everything` against the floor",
        "",
        "A warm, authorised, audited `$everything` (a GP clinician with a legitimate "
        "relationship, purpose TREAT; the default consent policy decided on the person's "
        "stored directives and break-glass grants, read from the database for this request; "
        "both sources' entries read from Redis and decrypted; the AuditEvent committed before "
        "the answer) through one `caregateway serve` process, against the floor: a bare "
        "Starlette endpoint doing one Redis GET and one AES-256-GCM decrypt of the larger of "
        "the same person's cache entries, under the same uvicorn settings. `wrk -t1`, "
        f"keep-alive, {args.seconds:g} s per run, {args.rounds} rounds interleaved; req/s is "
        "median (min–max); the ratio is per round.",
        "",
        *table("connections, processes", runs),
        "",
    ]


def _scale(args: argparse.Namespace, workdir: Path) -> list[str]:
    from bench.warm import VERIFIED, run_warm, table

    runs = run_warm(workdir, seconds=args.seconds, rounds=args.rounds, workers=2)
    answered, checked = VERIFIED["2 proc"]
    return [
        "## Scale-out: `serve --workers 2`",
        "",
        "The warm read at 32 connections with two gateway processes (`serve --workers 2`: one "
        "listening socket, each process its own event loop, pools, audit writer and "
        "in-process cache tier when one is configured; one SQLite audit chain shared under "
        "the database write lock) "
        "against the floor with two processes. Compare with the one-process row above. "
        f"After the run the trail was verified: {checked:,} events in valid chains for "
        f"{answered:,} answers counted by wrk (warm-ups and the first read add events).",
        "",
        *table("connections, processes", runs),
        "",
    ]


def _size(args: argparse.Namespace, workdir: Path) -> list[str]:
    from bench.size import run_size

    return run_size(workdir, seconds=args.seconds, rounds=args.rounds)


def _cold(args: argparse.Namespace, workdir: Path) -> list[str]:
    from bench.cold import run_cold

    return run_cold(workdir, rounds=args.rounds)


def _audit(args: argparse.Namespace, workdir: Path) -> list[str]:
    from bench.audit_commit import run_markdown

    return run_markdown(rounds=args.rounds, seconds=min(args.seconds, 3.0))


def _decision(args: argparse.Namespace, workdir: Path) -> list[str]:
    from bench.decision import run_decision

    return run_decision(workdir, rounds=args.rounds)


RUNNERS: dict[str, Callable[[argparse.Namespace, Path], list[str]]] = {
    "warm": _warm,
    "scale": _scale,
    "size": _size,
    "cold": _cold,
    "audit": _audit,
    "decision": _decision,
}

HEADER = """# Benchmarks

Every number here comes from `python -m bench` (the scripts in `bench/`), run as shown, and is
a ratio against a floor measured in the same run. The build machine has 2 cores shared with
other work and is noisy: compare only numbers from one run, look at the spread, and re-run
before relying on one. Each row names the load average (1, 5, 15 min) measured after it.
"""


NOTES = "<!-- notes: kept by python -m bench --write -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per load run")
    parser.add_argument("--write", type=Path, help="rewrite this Markdown file")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown or args.rounds < 1:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}" if unknown else "rounds")
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    lines = [HEADER, f"Command: `{command}`", "", f"Machine: {report.machine()}.", ""]
    for name in chosen:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"caregw-bench-{name}-") as tmp:
            section = RUNNERS[name](args, Path(tmp))
        took = time.monotonic() - started
        lines += [*section, f"_(scenario `{name}`: {took:.0f} s including set-up)_", ""]
        print(f"bench: {name} done in {took:.0f} s", file=sys.stderr, flush=True)
    text = "\n".join(lines).rstrip() + "\n"
    if args.write is not None:
        # The hand-written reading of the figures (and the profile) follows NOTES: kept.
        old = args.write.read_text(encoding="utf-8") if args.write.exists() else ""
        if NOTES in old:
            text += "\n" + old[old.index(NOTES) :]
        args.write.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The processes a benchmark runs, and how it measures them.

Everything runs on loopback, each as a child process stopped by its own PID:

* ``redis-server`` (free port, no persistence: :class:`tests.redis_server.RedisServer`);
* both source simulators (``caregateway simulate-sources`` on free ports);
* the gateway exactly as ``caregateway serve`` runs it, configured by ``CAREGW_*`` variables
  (:func:`serve_env`): Redis-backed encrypted cache, the default consent policy, the audit
  trail on SQLite, JSON logs to /dev/null;
* the floor (:mod:`bench.floor`): a bare Starlette endpoint doing one Redis GET and one
  AES-256-GCM decrypt of the same bytes, under the same uvicorn settings.

The load generator is ``wrk`` (Debian package ``wrk``), one thread, keep-alive connections;
:func:`wrk` parses its report. CPU per request is the server's process-tree CPU time over the
run divided by the requests it answered (:func:`tree_cpu_s`, from ``/proc``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
ISSUER = "urn:caregateway:bench"
WRK = shutil.which("wrk")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# --- child processes ---------------------------------------------------------------------


@dataclass
class Child:
    """A child process, stopped (SIGTERM, then SIGKILL) by its PID."""

    name: str
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
        list(argv),
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Child(name, proc)


def wait_http(url: str, child: Child, timeout_s: float = 60.0) -> None:
    """Return once ``url`` answers (any status); fail if the child exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited during start-up ({child.proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not start within {timeout_s:.0f} s")


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """A list to put children in; every one is stopped on exit, newest first."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(p for p, parent in parents.items() if parent == current)
    return total


# --- wrk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    cpu_ms_per_request: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(report: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for pct, name in (("50", "p50_ms"), ("99", "p99_ms")):
        match = re.search(rf"^\s+{pct}%\s+(\S+)\s*$", report, re.M)
        if match is None:
            raise ValueError(f"wrk printed no latency distribution:\n{report}")
        out[name] = _ms(match.group(1))
    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", report)
    if done is None:
        raise ValueError("wrk printed no request count")
    out["requests"] = float(done.group(1))
    out["seconds"] = _ms(done.group(2) + done.group(3)) / 1000
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    out["non_2xx"] = float(non.group(1)) if non else 0.0
    errs = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    out["errors"] = float(sum(int(g) for g in errs.groups())) if errs else 0.0
    return out


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    server_pid: int | None = None,
) -> LoadResult:
    """``wrk -t1 -cN -dS --latency`` against ``url``; a failed request fails the benchmark."""
    if WRK is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    before = tree_cpu_s(server_pid) if server_pid else 0.0
    done = subprocess.run(  # noqa: S603
        [*argv, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    cpu = (tree_cpu_s(server_pid) - before) if server_pid else 0.0
    parsed = parse_wrk(done.stdout)
    requests = int(parsed["requests"])
    if parsed["non_2xx"] or parsed["errors"]:
        raise RuntimeError(
            f"{url}: {int(parsed['non_2xx'])} non-2xx answers, {int(parsed['errors'])} socket "
            "errors during the benchmark"
        )
    return LoadResult(
        requests=requests,
        seconds=parsed["seconds"],
        rps=requests / parsed["seconds"],
        p50_ms=parsed["p50_ms"],
        p99_ms=parsed["p99_ms"],
        non_2xx=int(parsed["non_2xx"]),
        errors=int(parsed["errors"]),
        cpu_ms_per_request=1000 * cpu / requests if requests else 0.0,
    )


# --- the deployment under test --------------------------------------------------------------


@dataclass
class Deployment:
    """Redis, the simulators and the configuration ``serve`` and the floor read."""

    workdir: Path
    redis_url: str
    social_url: str
    community_url: str
    env: dict[str, str] = field(default_factory=dict)
    private_pem: bytes = b""
    cache_keys: str = ""
    index_key: str = ""

    def token(self, gp: str, base: str, sub: str = "bench-user") -> str:
        from gateway.auth import issue_token

        return issue_token(
            self.private_pem,
            issuer=ISSUER,
            audience=base,
            sub=sub,
            role="R8000",
            org=gp,
            purpose="TREAT",
            ttl_s=3600,
        )


def start_deployment(workdir: Path, started: list[Child]) -> Deployment:
    """Redis and both simulators (as children in ``started``) and the ``serve`` settings."""
    from gateway.auth import generate_signing_key
    from gateway.cache import generate_index_key, generate_key_entry
    from simulators.community import DEFAULT_BEARER_TOKEN
    from simulators.population import COMMUNITY_ODS, COUNCIL_ODS
    from simulators.socialcare import DEFAULT_API_KEY

    redis_port, social_port, community_port = free_port(), free_port(), free_port()
    redis_dir = workdir / "redis"
    redis_dir.mkdir()
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    redis = spawn(
        "redis",
        [
            redis_bin,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(redis_dir),
        ],
    )
    started.append(redis)
    sims = spawn(
        "simulators",
        [
            PYTHON,
            "-m",
            "gateway",
            "simulate-sources",
            "--social-care-port",
            str(social_port),
            "--community-port",
            str(community_port),
        ],
    )
    started.append(sims)
    social, community = f"http://127.0.0.1:{social_port}", f"http://127.0.0.1:{community_port}"
    wait_http(f"{social}/_control", sims)
    wait_http(f"{community}/_control", sims)
    pem, jwk = generate_signing_key()
    (workdir / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    sources = [
        {
            "name": "socialcare",
            "kind": "social-care-api",
            "base_url": social,
            "organisation": COUNCIL_ODS,
            "api_key": DEFAULT_API_KEY,
            "timeout_s": 2.0,
        },
        {
            "name": "community",
            "kind": "community-fhir-stu3",
            "base_url": community,
            "organisation": COMMUNITY_ODS,
            "bearer_token": DEFAULT_BEARER_TOKEN,
            "timeout_s": 2.0,
        },
    ]
    (workdir / "sources.json").write_text(json.dumps(sources))
    keys, index = generate_key_entry(), generate_index_key()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        "CAREGW_AUTH_ISSUER": ISSUER,
        "CAREGW_AUTH_JWKS_FILE": str(workdir / "jwks.json"),
        "CAREGW_SOURCES_FILE": str(workdir / "sources.json"),
        "CAREGW_REDIS_URL": redis_url,
        "CAREGW_CACHE_KEYS": keys,
        "CAREGW_CACHE_INDEX_KEY": index,
        "CAREGW_CACHE_TTL_S": "3600",
        "CAREGW_LOG_FORMAT": "json",
    }
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", redis_port), 1):
            break
        time.sleep(0.05)
    return Deployment(workdir, redis_url, social, community, env, pem, keys, index)


def start_gateway(
    dep: Deployment,
    started: list[Child],
    *,
    name: str,
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[Child, str]:
    """``caregateway serve`` on a free port with its own SQLite file; (child, FHIR base)."""
    port = free_port()
    env = {
        **dep.env,
        "CAREGW_PORT": str(port),
        "CAREGW_DATABASE_URL": f"sqlite+aiosqlite:///{dep.workdir}/{name}.db",
        **(extra_env or {}),
    }
    argv = [PYTHON, "-m", "gateway", "serve"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    child = spawn(name, argv, env)
    started.append(child)
    base = f"http://127.0.0.1:{port}/fhir"
    wait_http(f"http://127.0.0.1:{port}/health/live", child)
    return child, base


def start_floor(
    dep: Deployment, started: list[Child], key: bytes, *, workers: int = 1
) -> tuple[Child, str]:
    port = free_port()
    child = spawn(
        "floor",
        [
            PYTHON,
            "-m",
            "bench.floor",
            "--port",
            str(port),
            "--redis-url",
            dep.redis_url,
            "--key-hex",
            key.hex(),
            "--workers",
            str(workers),
        ],
        {"CAREGW_CACHE_KEYS": dep.cache_keys},
    )
    started.append(child)
    url = f"http://127.0.0.1:{port}/floor"
    wait_http(url, child)
    return child, url


def control(source_url: str, **change: Any) -> dict[str, Any]:
    """POST the simulators' ``/_control`` (latency, counters)."""
    body = json.dumps(change).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{source_url}/_control", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        result: dict[str, Any] = json.loads(answer.read())
        return result


def source_requests(source_url: str) -> int:
    """Record requests the simulator has answered (the change feed's polls not counted)."""
    with urllib.request.urlopen(f"{source_url}/_control", timeout=10) as answer:  # noqa: S310
        counts = json.loads(answer.read())["requests"]
    return sum(n for path, n in counts.items() if path != "/changes")


def get(url: str, headers: Mapping[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        body: bytes = answer.read()
        return body

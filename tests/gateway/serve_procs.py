"""The steps every test that runs ``python -m gateway.cli`` as a child process repeats.

Starting ``serve`` with workers, running a one-shot command (``db upgrade``, ``audit
verify``), stopping a child with the Ctrl-C a person would send, and checking the hash chain
of a SQLite audit file once the child is gone: said once here so that each test reads as
what it checks, not how it drives a process. Every child is stopped by its own PID.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.audit.store import AuditStore, VerifyResult
from gateway.auth import generate_signing_key
from gateway.db import make_engine
from gateway.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServeAt:
    """A fresh signing key and a free loopback port for one ``serve`` child, and its URLs."""

    private_pem: bytes
    public_jwk: dict[str, Any]
    port: int
    base_url: str
    live_url: str


def serve_at() -> ServeAt:
    private_pem, public_jwk = generate_signing_key()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    return ServeAt(private_pem, public_jwk, port, f"{origin}/fhir", f"{origin}/health/live")


def serve_workers(env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    """``serve --workers N`` with its output discarded (the tests read the audit file)."""
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--workers", str(workers)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def kill_if_running(proc: subprocess.Popen[Any], timeout_s: float = 30) -> None:
    """For ``finally`` blocks: a child the test did not already stop is killed and reaped."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=timeout_s)


def interrupt(proc: subprocess.Popen[Any], timeout_s: float) -> None:
    """Ctrl-C (SIGINT) and wait; a child that will not go within ``timeout_s`` is killed."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    """A one-shot ``gateway.cli`` command (bounded at two minutes), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )


async def verified_chain(db: Path) -> VerifyResult:
    """The hash-chain check of the audit trail a child left in the SQLite file ``db``."""
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        return await AuditStore(engine).verify()
    finally:
        await engine.dispose()

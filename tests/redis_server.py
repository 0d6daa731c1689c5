"""A real ``redis-server`` for tests: loopback only, a free port, a temp dir, no persistence.

Usage in a test module::

    from tests.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

    def test_x(redis_server: RedisServer) -> None:
        url = redis_server.url
        ...
        redis_server.stop()      # fault injection
        redis_server.start()     # same port again

``redis_server`` is module-scoped (one server per test module, flushed before each test by
``fresh_redis``); ``own_redis_server`` is per test, for tests that stop and restart it.
Set ``REDIS_SERVER`` to use another binary. The server is stopped by its own PID only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_BINARY = (
    os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process that can be stopped and started again on the same port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "protected-mode": "yes",
            "dir": str(self.directory),
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
            "loglevel": "warning",
        }
        argv = [REDIS_BINARY]
        for name, value in options.items():
            argv += [f"--{name}", value]
        log = open(self.directory / "redis.log", "ab")  # handed to the child
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                self.proc = None
                raise RuntimeError(f"redis-server exited at start:\n{tail}")
            if _ping(self.port):
                return
            time.sleep(0.01)  # polling interval, not a wait for readiness
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # this process only, by its PID
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def flushall(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"FLUSHALL\r\n")
            if not s.recv(16).startswith(b"+OK"):
                raise RuntimeError("FLUSHALL failed")


def _started(directory: str) -> RedisServer:
    last: Exception | None = None
    for _ in range(3):  # a port picked free may be taken before redis binds it
        server = RedisServer(Path(directory))
        try:
            server.start()
            return server
        except RuntimeError as exc:
            last = exc
    raise RuntimeError(f"could not start redis-server: {last}")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server shared by one test module."""
    with tempfile.TemporaryDirectory(prefix="cgw-redis-") as directory:
        server = _started(directory)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> RedisServer:
    """The module's redis-server, empty and running."""
    redis_server.start()
    redis_server.flushall()
    return redis_server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own (for tests that stop and restart it)."""
    with tempfile.TemporaryDirectory(prefix="cgw-redis-") as directory:
        server = _started(directory)
        try:
            yield server
        finally:
            server.stop()

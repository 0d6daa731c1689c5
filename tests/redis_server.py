"""A real ``redis-server`` for tests: loopback only, a free port, a temp dir, no persistence.

Usage in a test module::

    from tests.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

    def test_x(redis_server: RedisServer) -> None:
        url = redis_server.url
        ...
        redis_server.stop()      # fault injection
        redis_server.start()     # same port again

``redis_server`` is module-scoped (one server per test module, flushed before each test by
``fresh_redis``); ``own_redis_server`` is per test, for tests that stop and restart it;
``tls_redis_server`` speaks only TLS, with a throwaway CA (``make_tls_files``).
Set ``REDIS_SERVER`` to use another binary. The server is stopped by its own PID only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("caregateway test CA"))
        .issuer_name(name("caregateway test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.server_key.chmod(0o600)
    return files


def _ping(port: int, timeout: float = 0.2, tls: TlsFiles | None = None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            if tls is None:
                raw.sendall(b"PING\r\n")
                return raw.recv(16).startswith(b"+PONG")
            context = ssl.create_default_context(cafile=str(tls.ca_cert))
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process that can be stopped and started again on the same port."""

    def __init__(
        self, directory: Path, port: int | None = None, *, tls: TlsFiles | None = None
    ) -> None:
        self.directory = directory
        self.port = port or _free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        options = {
            "port": "0" if self.tls else str(self.port),
            "bind": "127.0.0.1",
            "protected-mode": "yes",
            "dir": str(self.directory),
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
            "loglevel": "warning",
        }
        if self.tls:
            options |= {
                "tls-port": str(self.port),
                "tls-cert-file": str(self.tls.server_cert),
                "tls-key-file": str(self.tls.server_key),
                "tls-ca-cert-file": str(self.tls.ca_cert),
                "tls-auth-clients": "no",
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
            if _ping(self.port, tls=self.tls):
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
        if self.tls:
            raise NotImplementedError("flushall over TLS: use a client")
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"FLUSHALL\r\n")
            if not s.recv(16).startswith(b"+OK"):
                raise RuntimeError("FLUSHALL failed")


def _started(directory: str, tls: TlsFiles | None = None) -> RedisServer:
    last: Exception | None = None
    for _ in range(3):  # a port picked free may be taken before redis binds it
        server = RedisServer(Path(directory), tls=tls)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            last = exc
    raise RuntimeError(f"could not start redis-server: {last}")


def _serving(prefix: str = "cgw-redis-", tls: bool = False) -> Iterator[RedisServer]:
    """A started redis-server in a temporary folder, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        server = _started(directory, make_tls_files(Path(directory)) if tls else None)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server shared by one test module."""
    yield from _serving()


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> RedisServer:
    """The module's redis-server, empty and running."""
    redis_server.start()
    redis_server.flushall()
    return redis_server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own (for tests that stop and restart it)."""
    yield from _serving()


@pytest.fixture
def tls_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own speaking TLS only (``server.tls.ca_cert`` trusts it)."""
    yield from _serving("cgw-redis-tls-", tls=True)

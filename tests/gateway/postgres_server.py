"""A throwaway PostgreSQL server for the tests that are about PostgreSQL.

``postgres_url`` (session-scoped, one server for the run) uses ``CAREGW_TEST_POSTGRES_URL``
when set (a database the tests may fill and empty), else starts a server on a loopback port
from the local binaries (``initdb``, ``pg_ctl``; run as the ``postgres`` user when the tests
run as root) and stops it by its data directory afterwards. Tests are skipped, saying why,
when neither is possible. Each test empties the tables it uses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for version in ("17", "16", "15", "14"):
        candidate = f"/usr/lib/postgresql/{version}/bin/{name}"
        if os.path.exists(candidate):
            return candidate
    return None


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("PostgreSQL refuses to run as root and runuser is not available")
    return [runuser, "-u", "postgres", "--"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    configured = os.environ.get("CAREGW_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("no PostgreSQL: set CAREGW_TEST_POSTGRES_URL or install initdb/pg_ctl")
    prefix = _as_postgres_user()
    folder = Path(tempfile.mkdtemp(prefix="caregw-pg-"))
    if prefix:
        shutil.chown(folder, user="postgres")
    data, port = folder / "data", free_port()
    run = [*prefix]
    subprocess.run(
        [*run, initdb, "-D", str(data), "-A", "trust", "-U", "caregw", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=on"
    subprocess.run(
        [*run, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+asyncpg://caregw@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


class PostgresServer:
    """A PostgreSQL server of a test's own, which the test may stop and start again.

    For fault tests (the database going away under a running gateway), where the session's
    shared server must not be touched. ``stop`` is a fast shutdown (running sessions are
    terminated, as when the server is restarted under the gateway); ``start`` brings the
    same data directory back on the same port.
    """

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            pytest.skip("no PostgreSQL binaries (initdb/pg_ctl) for a server of the test's own")
        self._pg_ctl = pg_ctl
        self._run = _as_postgres_user()
        self.folder = Path(tempfile.mkdtemp(prefix="caregw-pg-own-"))
        if self._run:
            shutil.chown(self.folder, user="postgres")
        self.data, self.port = self.folder / "data", free_port()
        subprocess.run(
            [*self._run, initdb, "-D", str(self.data), "-A", "trust", "-U", "caregw"]
            + ["--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql+asyncpg://caregw@127.0.0.1:{self.port}/postgres"

    def start(self, *settings: str, timeout_s: float = 60) -> None:
        """Start (or start again) on the same port; ``settings``: more ``-c name=value``."""
        options = " ".join(
            [f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}", *settings]
        )
        subprocess.run(
            [*self._run, self._pg_ctl, "-D", str(self.data), "-o", options]
            + ["-l", str(self.folder / "log"), "-w", "start"],
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )

    def stop(self) -> None:
        subprocess.run(
            [*self._run, self._pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def remove(self) -> None:
        subprocess.run(
            [*self._run, self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


async def raw_connection(sqlalchemy_url: str) -> Any:
    """An asyncpg connection to the database an SQLAlchemy URL names (for plain SQL)."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url)
    return await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )


async def fresh_database(postgres_url: str) -> str:
    """A new, empty database on the server of ``postgres_url``; its URL."""
    import uuid

    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    name = f"caregw_{uuid.uuid4().hex[:12]}"
    conn = await raw_connection(postgres_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)

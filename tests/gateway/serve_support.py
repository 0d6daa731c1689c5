"""``caregateway serve`` as child processes for the operations tests (metrics, rate limits,
graceful shutdown, replicas under faults): configured only through ``CAREGW_*`` variables
and files, as in production, and stopped only by their own PIDs.

Every replica made by :class:`ReplicaSet` trusts one signing key and one audience (so one
token works on each, as behind a load balancer) and shares one cache key ring.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from gateway.auth import generate_signing_key
from gateway.cache import generate_index_key, generate_key_entry
from gateway.embedded import free_port
from simulators.population import SCENARIOS
from simulators.runner import RunningSources, source_configs
from tests.support import processes
from tests.support.tokens import user_token
from vocabulary import ClientKind

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "urn:caregateway:ops-test-issuer"
AUDIENCE = "urn:caregateway:ops-test-gateway"
START_TIMEOUT_S = 90.0  # a cold interpreter on a busy 2-core machine


@dataclasses.dataclass
class Replica:
    """One ``caregateway serve`` child: its port, environment and log files."""

    name: str
    port: int
    env: dict[str, str]
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/fhir"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> None:
        self.starts += 1
        out = (self.folder / f"{self.name}.{self.starts}.out").open("wb")
        err = (self.folder / f"{self.name}.{self.starts}.err").open("wb")
        with out, err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    async def wait_live(self, timeout_s: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while loop.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited with {self.proc.returncode} at start:\n"
                        + self.stderr()[-3000:]
                    )
                try:
                    if (await client.get(f"{self.url}/health/live")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)  # polling interval
        raise AssertionError(f"{self.name} did not answer /health/live within {timeout_s} s")

    async def start(self) -> None:
        self.spawn()
        await self.wait_live()

    def stderr(self) -> str:
        return (self.folder / f"{self.name}.{self.starts}.err").read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None
        os.kill(self.proc.pid, sig)  # this child only, by its PID

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> None:
        """Terminate (then kill, if it will not go) — for fixtures' clean-up."""
        if self.proc is not None:
            processes.stop(self.proc)


class ReplicaSet:
    """Replicas sharing one key, audience and cache key ring; ``env`` applies to all."""

    def __init__(
        self,
        folder: Path,
        running: RunningSources,
        *,
        source_timeout_s: float | None = None,
        **env: str,
    ) -> None:
        self.folder = folder
        self.running = running
        self.private_pem, public_jwk = generate_signing_key()
        jwks = folder / "jwks.json"
        jwks.write_text(json.dumps({"keys": [public_jwk]}), "utf-8")
        configs = source_configs(running)
        if source_timeout_s is not None:
            configs = [dataclasses.replace(c, timeout_s=source_timeout_s) for c in configs]
        sources = folder / "sources.json"
        sources.write_text(json.dumps([dataclasses.asdict(c) for c in configs]))
        self.sources_file = sources
        base = {k: v for k, v in os.environ.items() if not k.startswith("CAREGW_")}
        base.update(
            CAREGW_HOST="127.0.0.1",
            CAREGW_SOURCES_FILE=str(sources),
            CAREGW_AUTH_ISSUER=ISSUER,
            CAREGW_AUTH_AUDIENCE=AUDIENCE,
            CAREGW_AUTH_JWKS_FILE=str(jwks),
            CAREGW_CACHE_KEYS=generate_key_entry(),
            CAREGW_CACHE_INDEX_KEY=generate_index_key(),
            CAREGW_LOG_FORMAT="json",
        )
        base.update(env)
        self.env = base
        self.replicas: list[Replica] = []

    def replica(self, name: str, **env: str) -> Replica:
        port = free_port()
        own = {**self.env, "CAREGW_PORT": str(port), **env}
        own.setdefault("CAREGW_DATABASE_URL", f"sqlite+aiosqlite:///{self.folder / name}.db")
        found = Replica(name, port, own, self.folder)
        self.replicas.append(found)
        return found

    def token(
        self,
        *,
        sub: str,
        org: str,
        role: str | None = "R8000",
        scopes: tuple[str, ...] = ("user/*.rs",),
        purpose: str = "TREAT",
        client_kind: str = "user",
        client_id: str | None = None,
    ) -> dict[str, str]:
        token = user_token(
            self.private_pem,
            AUDIENCE,
            issuer=ISSUER,
            sub=sub,
            role=role,
            org=org,
            scopes=scopes,
            purpose=purpose,
            client_kind=ClientKind(client_kind),
            extra_claims={"client_id": client_id} if client_id else None,
        )
        return {"Authorization": f"Bearer {token}"}

    def gp_of(self, key: str) -> tuple[str, str]:
        """(NHS number, ODS code of their GP practice) of a scenario person."""
        number = SCENARIOS[key].nhs_number
        assert number is not None
        gp = self.running.population.council_people_with(number)[0].gp
        assert gp is not None
        return number, gp.ods_code

    def stop_all(self) -> None:
        for replica in self.replicas:
            replica.stop()


def request_ids_in(resources: list[str]) -> dict[str, list[str]]:
    """request id -> the ``outcomeDesc`` of each stored AuditEvent (JSON texts) with it."""
    found: dict[str, list[str]] = {}
    for text in resources:
        event: dict[str, Any] = json.loads(text)
        for entity in event.get("entity", ()):
            if entity.get("type", {}).get("code") == "XrequestId":
                rid = entity["what"]["identifier"]["value"]
                found.setdefault(rid, []).append(event.get("outcomeDesc", ""))
    return found


def sqlite_events(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT resource FROM audit_event").fetchall()]

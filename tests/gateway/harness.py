"""Run a real gateway (uvicorn on a loopback port) in the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from adapters.base import SourceConfig
from gateway.app import create_app
from gateway.auth import TokenVerifier, issue_token
from gateway.wiring import build_state

ISSUER = "urn:caregateway:test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Gateway:
    base_url: str
    private_pem: bytes
    client: httpx.AsyncClient

    def token(
        self,
        *,
        role: str | None = "R8000",
        org: str = "F81001",
        scopes: Sequence[str] = ("user/*.rs",),
        purpose: str | None = "TREAT",
        sub: str = "test-user-0001",
        **kw: Any,
    ) -> str:
        return issue_token(
            self.private_pem,
            issuer=ISSUER,
            audience=self.base_url,
            sub=sub,
            role=role,  # type: ignore[arg-type]
            org=org,
            scopes=tuple(scopes),
            purpose=purpose,
            **kw,
        )

    def headers(self, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kw)}"}

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", None)
        if headers is None:
            headers = self.headers()
        return await self.client.get(f"{self.base_url}{path}", headers=headers, **kw)


@asynccontextmanager
async def running_gateway(
    sources: Sequence[SourceConfig], private_pem: bytes, public_jwk: dict[str, Any]
) -> AsyncIterator[Gateway]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    verifier = TokenVerifier(issuer=ISSUER, audience=base_url, jwks={"keys": [public_jwk]})

    async def factory():  # type: ignore[no-untyped-def]
        return await build_state(base_url=base_url, sources=sources, verifier=verifier)

    config = uvicorn.Config(
        create_app(factory), host="127.0.0.1", port=port, access_log=False, log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    started = asyncio.Event()

    async def wait_started() -> None:
        while not server.started:
            if task.done():
                raise RuntimeError("gateway failed to start")
            await asyncio.sleep(0.01)
        started.set()

    await asyncio.wait_for(wait_started(), timeout=20)
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            yield Gateway(base_url=base_url, private_pem=private_pem, client=client)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=20)

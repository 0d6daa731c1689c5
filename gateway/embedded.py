"""Run an ASGI app with uvicorn inside the current event loop (demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (the caller binds it straight away)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def running_server(
    app: Any, host: str, port: int, *, start_timeout_s: float = 30.0
) -> AsyncIterator[uvicorn.Server]:
    """Start uvicorn, wait until it accepts connections, stop it on exit."""
    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> None:
        while not server.started:
            if task.done():
                await task  # re-raises the start-up failure
                raise RuntimeError(f"server on {host}:{port} stopped during start-up")
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(started(), timeout=start_timeout_s)
        yield server
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)

"""A caller's W3C ``traceparent`` reaches the sources: same trace id and flags, a new parent.

The middleware of :mod:`gateway.ops.tracing` around an ASGI app that calls a source through
:class:`adapters.http_source.BoundedClient` (the client every adapter uses), and a loopback
HTTP server standing in for the source, recording the request heads it receives.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from adapters.http_source import BoundedClient
from gateway.ops.tracing import TraceContextMiddleware

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
async def source() -> AsyncIterator[tuple[str, list[bytes]]]:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()
        await server.wait_closed()


def _traceparents(heads: list[bytes]) -> list[str]:
    found = []
    for head in heads:
        match = re.search(rb"\r\ntraceparent: ([^\r]+)", head, re.IGNORECASE)
        found.append(match.group(1).decode() if match else "")
    return found


async def test_traceparent_goes_on_to_the_source_with_a_new_parent_id(
    source: tuple[str, list[bytes]],
) -> None:
    url, heads = source
    client = BoundedClient(max_in_flight=2, timeout=5.0)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await client.get(f"{url}/Patient")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    gateway = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=TraceContextMiddleware(app)), base_url="http://gw"
    )
    try:
        await gateway.get("/", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        await gateway.get("/")  # no trace: nothing sent on
        await gateway.get("/", headers={"traceparent": f"00-{'0' * 32}-{PARENT}-01"})  # invalid
        await gateway.get("/", headers={"traceparent": "not a trace"})
    finally:
        await gateway.aclose()
        await client.aclose()

    first, *others = _traceparents(heads)
    version, trace, parent, flags = first.split("-")
    assert (version, trace, flags) == ("00", TRACE, "01")
    assert re.fullmatch(r"[0-9a-f]{16}", parent) and parent != PARENT
    assert others == ["", "", ""]

"""Serve an ASGI app to an ``httpx.AsyncClient`` in-process, without a socket.

For route tests, where what matters is the gateway's answer and not the HTTP server in
front of it. Two things a real server does are kept, because the gateway relies on them:

* the lifespan is run (start-up builds the state, shut-down closes it): ASGITransport alone
  does not send lifespan events, so :class:`asgi_lifespan.LifespanManager` sends them, to the
  whole app (every middleware sees them, as under uvicorn). Requests go to the app itself,
  not to the manager's wrapper, so each request's ``scope["state"]`` is its own dict (the
  wrapper would share one between requests, which uvicorn never does);
* only requests to the app's own origin go to it: the client reaches every other address
  (the source simulators' control endpoints, say) over the network as before;
* each request runs in a task of its own (:class:`TaskASGITransport`), as uvicorn runs each
  connection: context variables the app sets (structlog's, the audit note's) stay in that
  task and never leak into the test or into the next request.

What is not the same as a socket, and why such tests keep one (``running_gateway(...,
socket=True)``): no HTTP parsing or framing (malformed requests, ``Content-Length``
mismatches, slow clients, size limits the server enforces), no headers the server writes
(``date``, ``server``), no connections (keep-alive, drain on shut-down, a peer that goes
away), and nothing outside this event loop can reach it (browsers, other processes, sync
clients in worker threads).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

# uvicorn's own start-up allowance in the harness (gateway.embedded.running_server): building
# the state migrates a database, which on a loaded machine can take a few seconds.
LIFESPAN_TIMEOUT_S = 30.0


class TaskASGITransport(httpx.ASGITransport):
    """``httpx.ASGITransport`` that runs each request in a task of its own.

    ``asyncio.create_task`` gives the task a copy of the caller's context, so whatever the
    app binds is dropped when the request ends, as with a server's per-connection task.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await asyncio.create_task(super().handle_async_request(request))


@asynccontextmanager
async def serving_in_process(
    app: ASGIApp,
    origin: str,
    *,
    client: tuple[str, int] = ("127.0.0.1", 50000),
    timeout: float = 30,
) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``app`` (its lifespan), yield a client whose requests to ``origin``
    (``http://host:port``) go to it, then stop it. ``client`` is the peer address the app
    sees (loopback, as for the socket harness)."""
    async with (
        LifespanManager(
            app, startup_timeout=LIFESPAN_TIMEOUT_S, shutdown_timeout=LIFESPAN_TIMEOUT_S
        ),
        httpx.AsyncClient(
            mounts={origin: TaskASGITransport(app=app, client=client)}, timeout=timeout
        ) as http,
    ):
        yield http

"""Run both simulated sources as real HTTP servers (uvicorn) on loopback.

In tests, the demo and benchmarks, inside an event loop that is already running::

    async with serve_sources() as running:
        configs = source_configs(running)      # adapters.base.SourceConfig for each source
        ...                                    # running.social_care_url, running.community_url

or ``running = await start_sources()`` ... ``await running.stop()``. Ports are chosen by the
operating system (a socket bound to port 0), and ``start_sources`` returns only once both
servers are accepting connections.

``await running.cut_off("community")`` takes one source off the network, as a failed host or
a cut link would: its listening socket is closed (new connections are refused) and its open
connections are dropped. ``await running.restore("community")`` serves it again on the same
port, with the same data and fault settings (:mod:`simulators.control`).

From a shell, :func:`main_simulate` (the ``caregateway simulate-sources`` command, also
``python -m simulators``) serves them on fixed ports until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from adapters.base import SourceConfig, SourceKind
from simulators import community, socialcare
from simulators.population import (
    COMMUNITY_ODS,
    COUNCIL_ODS,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    SCENARIOS,
    Population,
    build_population,
)

__all__ = [
    "RunningSources",
    "main_simulate",
    "serve_sources",
    "source_configs",
    "start_sources",
]

STARTUP_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone (the host owns them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class _Serving:
    server: _Server
    task: asyncio.Task[None]
    url: str
    app: FastAPI
    host: str
    port: int


async def _serve(app: FastAPI, host: str, port: int) -> _Serving:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Accepted connections inherit TCP_NODELAY on Linux. Without it, a keep-alive client
    # waits ~40 ms per request (Nagle's algorithm meets the peer's delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=2
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    # Wait on the server's own "started" flag (set once the socket is listening).
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # re-raise the startup error
            raise RuntimeError("simulated source stopped before it started")
        if loop.time() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("simulated source did not start in time")
        await asyncio.sleep(0.005)
    return _Serving(server, task, f"http://{host}:{bound_port}", app, host, bound_port)


@dataclass
class RunningSources:
    """Both simulators, serving; ``stop()`` (or leaving ``async with``) shuts them down."""

    population: Population
    social_care_url: str
    community_url: str
    api_key: str
    bearer_token: str
    _servers: list[_Serving] = field(default_factory=list, repr=False)
    _cut: set[str] = field(default_factory=set, repr=False)

    SOURCES = ("socialcare", "community")  # the order of ``_servers``

    def _serving(self, source: str) -> _Serving:
        if source not in self.SOURCES:
            raise ValueError(f"no simulated source {source!r}")
        return self._servers[self.SOURCES.index(source)]

    async def cut_off(self, source: str) -> None:
        """Stop ``source`` (``socialcare`` or ``community``) answering at all: its listening
        socket is closed and its connections dropped, so connecting is refused."""
        serving = self._serving(source)
        if source in self._cut:
            return
        serving.server.should_exit = True
        serving.server.force_exit = True  # do not drain open connections ...
        for connection in list(serving.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()  # ... drop them, answered or not
        await serving.task
        self._cut.add(source)

    async def restore(self, source: str) -> None:
        """Serve a source cut off by :meth:`cut_off` again, on the same port."""
        serving = self._serving(source)
        if source not in self._cut:
            return
        again = await _serve(serving.app, serving.host, serving.port)
        self._servers[self.SOURCES.index(source)] = again
        self._cut.discard(source)

    async def stop(self) -> None:
        for name in list(self._cut):
            await self.restore(name)
        for serving in self._servers:
            serving.server.should_exit = True
        for serving in self._servers:
            await serving.task
        self._servers.clear()

    async def __aenter__(self) -> RunningSources:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_sources(
    seed: int = DEFAULT_SEED,
    size: int = DEFAULT_SIZE,
    *,
    population: Population | None = None,
    host: str = "127.0.0.1",
    social_port: int = 0,
    community_port: int = 0,
    api_key: str = socialcare.DEFAULT_API_KEY,
    bearer_token: str = community.DEFAULT_BEARER_TOKEN,
) -> RunningSources:
    """Build the population once and serve both simulators in the running event loop."""
    pop = population if population is not None else build_population(seed, size)
    social = await _serve(socialcare.create_app(pop, api_key), host, social_port)
    try:
        health = await _serve(community.create_app(pop, bearer_token), host, community_port)
    except BaseException:
        social.server.should_exit = True
        await social.task
        raise
    return RunningSources(pop, social.url, health.url, api_key, bearer_token, [social, health])


@contextlib.asynccontextmanager
async def serve_sources(
    seed: int = DEFAULT_SEED,
    size: int = DEFAULT_SIZE,
    *,
    population: Population | None = None,
) -> AsyncIterator[RunningSources]:
    """``async with serve_sources() as running:`` — both simulators for the block's duration."""
    running = await start_sources(seed, size, population=population)
    try:
        yield running
    finally:
        await running.stop()


def source_configs(running: RunningSources) -> list[SourceConfig]:
    """The gateway's source configuration for the running simulators."""
    return [
        _config("socialcare", "social-care-api", running.social_care_url, COUNCIL_ODS,
                api_key=running.api_key),
        _config("community", "community-fhir-stu3", running.community_url, COMMUNITY_ODS,
                bearer_token=running.bearer_token),
    ]


def _config(name: str, kind: SourceKind, base_url: str, organisation: str, *,
            api_key: str | None = None, bearer_token: str | None = None) -> SourceConfig:
    """One simulator as a gateway source, with the short deadline tests and the demo use."""
    return SourceConfig(name=name, kind=kind, base_url=base_url, organisation=organisation,
                        api_key=api_key, bearer_token=bearer_token, timeout_s=2.0)


def describe(running: RunningSources) -> str:
    """What :func:`main_simulate` prints: URLs, credentials and the scenario people."""
    lines = [
        f"social care API   {running.social_care_url}   X-Api-Key: {running.api_key}",
        f"community FHIR    {running.community_url}   Authorization: Bearer "
        f"{running.bearer_token}",
        f"population        {running.population.size} people (seed {running.population.seed})",
        "scenario people:",
    ]
    for s in SCENARIOS.values():
        ident = s.nhs_number or ", ".join(s.person_ids)
        lines.append(f"  {s.key:<16} {ident:<12} {s.description}")
    return "\n".join(lines)


def main_simulate(
    host: str = "127.0.0.1", social_port: int = 8101, community_port: int = 8102
) -> None:
    """Serve both simulators in the foreground until interrupted (Ctrl-C)."""

    async def run() -> None:
        running = await start_sources(host=host, social_port=social_port,
                                      community_port=community_port)
        print(describe(running), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await running.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())

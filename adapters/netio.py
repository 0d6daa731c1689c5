"""httpcore's sockets on asyncio's own streams, for the source pools (:mod:`adapters.pool`).

httpx sends through httpcore, whose default asyncio backend goes through anyio: every read
and every write enters an anyio cancel scope (``fail_after``), registers the task in a
``WeakKeyDictionary`` and builds a dict of socket attributes whenever the pool asks whether
an idle connection was closed by the source. On a cold ``$everything`` (a dozen source
exchanges) anyio held about a fifth of the gateway's GIL-holding samples. This backend is
the same contract (httpcore's ``AsyncNetworkBackend``: the same exceptions for the same
failures, so :func:`adapters.resilience.map_httpx_error` reads them the same) on
``asyncio.open_connection``, with one ``asyncio.timeout`` per read or write.

HTTP/1.1 with keep-alive only, like the pool it serves. Neither source's spec offers HTTP/2
and the simulators' server (uvicorn) speaks HTTP/1.1 only; HTTP/2 would save connections,
which the bulkhead already bounds and keeps alive, not round trips (every request a read
depends on waits for the answer before it), and httpx's HTTP/2 runs on the pure-Python
``h2``, which is not expected to cost less per exchange. Not measured: there is nothing to
measure it against on loopback.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
from httpcore._backends.base import (  # the documented extension point of httpcore
    SOCKET_OPTION,
    AsyncNetworkBackend,
    AsyncNetworkStream,
)
from httpcore._utils import is_socket_readable

__all__ = ["AsyncioBackend", "AsyncioStream", "use_asyncio_streams"]

#: Bytes asyncio may buffer for writing before ``drain`` waits (requests are small).
_WRITE_HIGH_WATER = 64 * 1024


class AsyncioStream(AsyncNetworkStream):
    """One connection as an asyncio ``StreamReader``/``StreamWriter`` pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading from the source") from None
        except OSError as exc:
            raise httpcore.ReadError(type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                if self._writer.transport.is_closing():
                    raise ConnectionResetError("connection closed")
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing to the source") from None
        except OSError as exc:
            raise httpcore.WriteError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        # Not waiting for the close to finish: a source that stopped reading must not hold
        # the pool; the transport closes the socket by itself.
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            self._writer.close()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # An idle connection is "readable" when the source closed it (or sent what no
            # request asked for): what asyncio has already seen costs nothing to ask, and the
            # socket itself is asked only when asyncio has not seen it yet.
            if self._writer.transport.is_closing() or self._reader.at_eof():
                return True
            return is_socket_readable(self._writer.get_extra_info("socket"))
        return None


class AsyncioBackend(AsyncNetworkBackend):
    """httpcore's network backend on asyncio streams (TCP; Unix sockets as well)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout("timed out connecting to the source") from None
        except OSError as exc:
            raise httpcore.ConnectError(type(exc).__name__) from exc
        return _opened(reader, writer, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError:
            raise httpcore.ConnectTimeout("timed out connecting to the source") from None
        except OSError as exc:
            raise httpcore.ConnectError(type(exc).__name__) from exc
        return _opened(reader, writer, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _opened(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    socket_options: Iterable[SOCKET_OPTION] | None,
) -> AsyncioStream:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        for option in socket_options or ():
            sock.setsockopt(*option)
    writer.transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
    return AsyncioStream(reader, writer)


def use_asyncio_streams(client: Any) -> bool:
    """Make ``client`` (an ``httpx.AsyncClient`` with its default transport) connect through
    :class:`AsyncioBackend`; ``False`` when its transport is not httpx's own pool (a test's
    transport, or another httpx version), which is then left as it is.

    httpx does not take a network backend as an argument; its transport keeps the httpcore
    pool in ``_pool``, and the pool its backend in ``_network_backend``.
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        return False
    pool._network_backend = AsyncioBackend()
    return True

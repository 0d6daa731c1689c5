"""The floor: a bare Starlette endpoint doing one Redis GET and one AES-256-GCM decrypt.

    python -m bench.floor --port P --redis-url URL --key-hex HEX [--workers N]

It reads the sealed cache entry under ``--key-hex`` or ``?key=HEX`` (the gateway's own entry
for the warm person) with ``redis.asyncio``, opens it with the gateway's key ring
(``CAREGW_CACHE_KEYS``)
and returns the plaintext. It runs under the same uvicorn settings as ``caregateway serve``
(uvloop, httptools, no access log, ``--workers`` processes), so a ratio against it measures
the gateway's own work and nothing of the server.
"""

from __future__ import annotations

import argparse
import os

import redis.asyncio as redis_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.cache import KeyRing


def create_app() -> Starlette:
    """The app, configured from ``BENCH_FLOOR_*`` (set by :func:`main` for its workers)."""
    ring = KeyRing.parse(os.environ["CAREGW_CACHE_KEYS"])
    key = bytes.fromhex(os.environ["BENCH_FLOOR_KEY"])
    client = redis_asyncio.Redis.from_url(os.environ["BENCH_FLOOR_REDIS"], max_connections=64)

    async def one_get_one_decrypt(request: Request) -> Response:
        wanted = request.query_params.get("key")  # another entry (the record-size runs)
        entry = bytes.fromhex(wanted) if wanted else key
        blob = await client.get(entry)
        if blob is None:
            return Response(b"missing", status_code=500)
        return Response(ring.open(entry, blob), media_type="application/json")

    return Starlette(routes=[Route("/floor", one_get_one_decrypt)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--key-hex", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ["BENCH_FLOOR_KEY"] = args.key_hex
    os.environ["BENCH_FLOOR_REDIS"] = args.redis_url
    uvicorn.run(
        "bench.floor:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()

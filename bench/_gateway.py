"""The gateway the fan-out benchmarks measure: permit-all policy, in-process cache, SQLite.

``permit_all`` takes the policy out of the measurement (these benchmarks are about fetching
and merging); the audit trail still commits every request, as in production.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.base import SourceConfig
from gateway.app import create_app
from gateway.auth import TokenVerifier, generate_signing_key, issue_token
from gateway.cache.factory import build_record_cache
from gateway.embedded import free_port
from gateway.records.access import permit_all
from gateway.state import Closer, GatewayState
from gateway.wiring import Overrides, build_state, defaults


@dataclass(frozen=True)
class BenchGateway:
    app: Any
    port: int
    base_url: str
    headers: dict[str, str]  # a GP clinician's token, purpose TREAT


def bench_gateway(sources: Sequence[SourceConfig], issuer: str, name: str) -> BenchGateway:
    """An app (not yet serving) for ``sources``, its port and a caller's headers."""
    workdir = tempfile.mkdtemp(prefix=f"caregw-{name}-")
    pem, jwk = generate_signing_key()
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    verifier = TokenVerifier(issuer=issuer, audience=base, jwks={"keys": [jwk]})

    async def factory() -> tuple[GatewayState, Closer]:
        cache = build_record_cache(
            redis_url=None, cache_keys=None, index_key=None, ttl_s=3600, demo=True
        )
        overrides = Overrides(
            base_url=base,
            sources=list(sources),
            verifier=verifier,
            database_url=f"sqlite+aiosqlite:///{workdir}/{name}.db",
            decider=permit_all,
            cache=cache,
        )
        return await build_state(defaults(), overrides)

    token = issue_token(
        pem, issuer=issuer, audience=base, sub="bench", role="R8000", org="F81001", purpose="TREAT"
    )
    return BenchGateway(create_app(factory), port, base, {"Authorization": f"Bearer {token}"})

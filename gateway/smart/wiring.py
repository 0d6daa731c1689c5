"""Attach the authorization server to a gateway's state (called by ``gateway.wiring``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from consent import Policy
from gateway.auth import TokenVerifier
from gateway.smart.config import SmartConfig
from gateway.smart.server import SmartServer
from gateway.smart.store import SmartStore


def build_smart(config: SmartConfig, engine: AsyncEngine, policy: Policy) -> SmartServer:
    """The server on the gateway's own database (its tables are created with the rest)."""
    return SmartServer(config, SmartStore(engine), policy)


def trust_own_issuer(
    verifier: TokenVerifier,
    server: SmartServer,
    revoked: Callable[[str], Awaitable[bool]] | None = None,
) -> None:
    """Make the FHIR API accept our tokens (beside ``CAREGW_AUTH_ISSUER``'s), unless revoked.

    ``revoked(jti)`` is asked for every such token, on every request (default: the store's
    own lookup; the gateway passes its cheaper hot-path read of the same table)."""
    own = TokenVerifier(
        issuer=server.config.issuer,
        audience=server.config.fhir_base,
        jwks=server.config.keys.jwks(),
    )
    verifier.trust_also(own, revoked or server.store.is_revoked)

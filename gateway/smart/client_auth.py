"""``private_key_jwt`` client authentication (RFC 7523) as SMART Backend Services profiles it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidClientError,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.smart.clients import PRIVATE_KEY_JWT, Client
from gateway.smart.context import (
    ASSERTION_ALGORITHMS,
    LEEWAY_S,
    MAX_ASSERTION_LIFETIME_S,
    request_event,
)

if TYPE_CHECKING:
    from gateway.smart.server import SmartServer

# --- client authentication ------------------------------------------------------------------


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` as SMART Backend Services profiles it (RS384 / ES384, ≤ 5 min)."""

    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, server: SmartServer) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY_S)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [self.server.config.token_endpoint]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        try:
            return client.public_keys()
        except Exception:  # a jwks_url that cannot be fetched or parsed
            raise InvalidClientError(
                description="The client's registered keys (jwks_url) cannot be obtained."
            ) from None

    def extract_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        headers, claims = super().extract_assertion(assertion)
        alg = headers.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise InvalidClientError(
                description="client_assertion must be signed with RS384 or ES384 "
                "(alg none and HMAC algorithms are refused)."
            )
        self._kid = headers.get("kid")
        if isinstance(claims.get("sub"), str):
            request_event().client_id = (
                claims["sub"] if self.server.clients.get(claims["sub"]) else None
            )
        return headers, claims

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        keys = resolve_key if isinstance(resolve_key, KeySet) else None
        if keys is not None and self._kid is not None:
            if not any(k.kid == self._kid for k in keys.keys):
                raise InvalidClientError(
                    description="client_assertion is signed with a key (kid) that is not "
                    "registered for this client."
                )
        try:
            token = jose_jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except JoseError:
            raise InvalidClientError(
                description="client_assertion signature does not verify with the client's "
                "registered keys."
            ) from None
        self.verify_claims(token.claims)
        return dict(token.claims)

    def verify_claims(self, claims: Any) -> None:
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise InvalidClientError(description="client_assertion has no exp.")
        if exp < now - LEEWAY_S:
            raise InvalidClientError(description="client_assertion has expired.")
        if exp > now + MAX_ASSERTION_LIFETIME_S + LEEWAY_S:
            raise InvalidClientError(
                description="client_assertion exp must be at most 5 minutes ahead."
            )
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.server.config.token_endpoint not in audiences:
            raise InvalidClientError(
                description="client_assertion aud must be the token endpoint "
                f"{self.server.config.token_endpoint}."
            )
        if claims.get("iss") != claims.get("sub"):
            raise InvalidClientError(
                description="client_assertion iss and sub must both be the client_id."
            )
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise InvalidClientError(description="client_assertion has no jti.")
        super().verify_claims(claims)

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        expires = datetime.fromtimestamp(float(claims["exp"]) + LEEWAY_S, UTC)
        fresh = self.server.wait(self.server.store.record_jti(str(claims["sub"]), jti, expires))
        if not fresh:
            raise InvalidClientError(
                description="client_assertion jti has been used before (replay refused)."
            )
        return True

"""Authentication: who is asking, what their token lets them do, and why they are asking.

Framework-free (no FastAPI here), so every rule is unit-tested directly; ``gateway.deps``
wires it into requests in the order of ``specs/behaviour.md``::

    token = parse_bearer(request.headers.get("authorization"))        # 401
    principal = verifier.verify(token)                                  # 401
    require_scope(principal, "CarePlan", "search")                      # 403 scope-insufficient
    purpose = resolve_purpose(principal, request.headers.get("x-purpose-of-use"))  # 403

Modules: ``_verifier`` (bearer header, JWT checks, the cache of verified tokens), ``_claims``
(claims → Principal), ``_errors`` (``InvalidToken`` and its fixed messages), ``_jwks`` (keys
from a JWKS document or URL), ``_principal``, ``_scopes`` (SMART v1/v2), ``_purpose`` (HL7 v3
PurposeOfUse), ``_issuer`` (dev/demo keys and tokens).
"""

from gateway.auth._issuer import generate_signing_key, issue_token, jwks_from_private_pem
from gateway.auth._jwks import (
    RemoteJwks,
    StaticJwks,
    jwk_thumbprint,
    keys_from_jwks,
    load_jwks_file,
)
from gateway.auth._principal import (
    PROOFING_LEVELS,
    ClientKind,
    Principal,
    ProofingLevel,
    reduce_role,
)
from gateway.auth._purpose import PURPOSES_OF_USE, resolve_purpose
from gateway.auth._scopes import (
    Interaction,
    Scope,
    has_scope,
    parse_scope,
    parse_scopes,
    require_scope,
)
from gateway.auth._verifier import (
    ALLOWED_ALGORITHMS,
    InvalidToken,
    TokenVerifier,
    parse_bearer,
    principal_from_claims,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "PROOFING_LEVELS",
    "PURPOSES_OF_USE",
    "ClientKind",
    "Interaction",
    "InvalidToken",
    "Principal",
    "ProofingLevel",
    "RemoteJwks",
    "Scope",
    "StaticJwks",
    "TokenVerifier",
    "generate_signing_key",
    "has_scope",
    "issue_token",
    "jwk_thumbprint",
    "jwks_from_private_pem",
    "keys_from_jwks",
    "load_jwks_file",
    "parse_bearer",
    "parse_scope",
    "parse_scopes",
    "principal_from_claims",
    "reduce_role",
    "require_scope",
    "resolve_purpose",
]

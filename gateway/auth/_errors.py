"""The one error of token verification, :class:`InvalidToken`, and its fixed messages.

It stands alone because every step raises it (the bearer header and JWT checks in
:mod:`._verifier`, the claims in :mod:`._claims`), and because its messages are a security
property reviewed in one table: each is fixed text for a short machine ``reason``, never
the token nor any value taken from it, so none can carry a decoded fragment into a log.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import Unauthorized

_MESSAGES = {
    "missing-token": "An access token is required: send 'Authorization: Bearer <token>'.",
    "malformed": "The access token is malformed.",
    "alg-not-allowed": "The access token's signing algorithm is not accepted "
    "(RS256, RS384, ES256 or ES384 only).",
    "unknown-kid": "The access token was signed with a key the gateway does not know.",
    "keys-unavailable": "The gateway cannot obtain the identity provider's keys to verify "
    "the access token.",
    "bad-signature": "The access token's signature is not valid.",
    "expired": "The access token has expired.",
    "not-yet-valid": "The access token is not yet valid (nbf or iat in the future).",
    "wrong-audience": "The access token was not issued for this gateway (aud).",
    "wrong-issuer": "The access token was not issued by the trusted issuer (iss).",
    "missing-claim": "The access token lacks a required claim.",
    "invalid-claim": "The access token has a claim with an unusable value.",
    "invalid": "The access token is not valid.",
    "revoked": "The access token has been revoked.",
}


class InvalidToken(Unauthorized):
    """401: no usable access token. ``reason`` is a short machine code (``expired`` ...)."""

    def __init__(self, reason: str, message: str | None = None, **kw: Any) -> None:
        super().__init__(message or _MESSAGES[reason], reasons=[reason], **kw)
        self.reason = reason

"""A demo / development token issuer: make a signing key, publish its JWKS, sign tokens.

Not an identity provider: it signs whatever claims it is told to. ``caregateway demo`` and
the tests use it; in production the gateway only verifies tokens an IdP issued.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth._jwks import b64url, jwk_thumbprint
from gateway.auth._principal import ClientKind

_EC_CURVES: dict[str, tuple[str, str, int]] = {
    # cryptography curve name -> (JWK crv, JWS alg, coordinate bytes)
    "secp256r1": ("P-256", "ES256", 32),
    "secp384r1": ("P-384", "ES384", 48),
}


def generate_signing_key() -> tuple[bytes, dict[str, Any]]:
    """A new EC P-256 key: ``(private PEM (PKCS#8), public JWK)``.

    The JWK's ``kid`` is its RFC 7638 thumbprint, so the same key always has the same id.
    """
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, _public_jwk(private)


def jwks_from_private_pem(pem: bytes) -> dict[str, Any]:
    """The JWKS (``{"keys": [jwk]}``) that verifies tokens signed with this private key."""
    return {"keys": [_public_jwk(_load_private(pem))]}


def issue_token(
    private_pem: bytes,
    *,
    issuer: str,
    audience: str,
    sub: str,
    role: str | None,
    org: str | None,
    scopes: Sequence[str] = ("user/*.rs",),
    purpose: str | None = None,
    name: str | None = None,
    ttl_s: int = 43200,
    client_kind: ClientKind = ClientKind.USER,
    now: datetime | float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign an access token in the shape ``specs/access-token.md`` describes.

    The algorithm follows the key (ES256 / ES384 / RS256) and the header carries its
    thumbprint ``kid``. ``now`` (a datetime or epoch seconds) fixes ``iat``/``nbf``;
    ``extra_claims`` (e.g. ``client_id``) are added last and may override.
    """
    private = _load_private(pem=private_pem)
    jwk = _public_jwk(private)
    if now is None:
        issued = int(time.time())
    elif isinstance(now, datetime):
        issued = int(now.timestamp())
    else:
        issued = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "scope": " ".join(scopes),
        "client_kind": client_kind,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if org is not None:  # none for the person themself (client_kind patient)
        claims["org"] = org
    if role is not None:
        claims["role"] = role
    if name is not None:
        claims["name"] = name
    if purpose is not None:
        claims["purpose_of_use"] = purpose
    if extra_claims:
        claims.update(extra_claims)
    return jwt.encode(
        claims, private, algorithm=jwk["alg"], headers={"kid": jwk["kid"], "typ": "JWT"}
    )


def _load_private(pem: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_CURVES:
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return key
    raise ValueError("signing keys are EC P-256 / P-384 or RSA of at least 2048 bits")


def _public_jwk(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any]
    if isinstance(private, ec.EllipticCurvePrivateKey):
        crv, alg, size = _EC_CURVES[private.curve.name]
        numbers = private.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": b64url(numbers.x.to_bytes(size, "big")),
            "y": b64url(numbers.y.to_bytes(size, "big")),
        }
    else:
        rsa_numbers = private.public_key().public_numbers()
        n = rsa_numbers.n
        jwk = {
            "kty": "RSA",
            "n": b64url(n.to_bytes((n.bit_length() + 7) // 8, "big")),
            "e": b64url(rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8, "big")),
        }
        alg = "RS256"
    jwk["kid"] = jwk_thumbprint(jwk)
    jwk["use"] = "sig"
    jwk["alg"] = alg
    return jwk

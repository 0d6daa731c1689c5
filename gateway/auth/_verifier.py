"""Bearer token verification: ``Authorization`` header → JWT → verified claims → Principal.

Order inside :meth:`TokenVerifier.verify`, cheapest and most dangerous first:

1. shape (three base64url segments, bounded length) and the *unverified* header;
2. ``alg`` must be one of RS256, RS384, ES256, ES384 — ``none`` and every ``HS*`` are refused
   here, before any key is looked up, so a public key can never be used as an HMAC secret;
   ``jku`` / ``x5u`` / ``jwk`` header members are never followed;
3. ``kid`` selects the key (and the key's type must match ``alg``);
4. signature, ``exp`` (required), ``nbf`` / ``iat``, ``iss`` (exact), ``aud`` (contains), with
   a leeway of 60 s; ``exp``, ``nbf`` and ``iat`` must be JSON numbers (RFC 7519 NumericDate),
   never numeric strings;
5. claims → :class:`Principal` (``sub``, ``org``, ``scope`` required; ``role`` for users;
   for the person themself ``patient`` instead of ``org`` and ``role``): :mod:`._claims`.

Every failure is :class:`InvalidToken` (:mod:`._errors`; an ``Unauthorized``, so 401) with a
fixed message and a short machine ``reason``. Messages never contain the token nor any value
taken from it, and PyJWT's exceptions are not chained (``from None``): their text can carry
decoded fragments that would otherwise reach logged tracebacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth._claims import invalid_claim
from gateway.auth._claims import principal_from_claims as principal_from_claims  # re-exported
from gateway.auth._errors import InvalidToken as InvalidToken  # re-exported
from gateway.auth._jwks import KeysUnavailable, PublicKey, RemoteJwks, StaticJwks
from gateway.auth._principal import Principal

ALLOWED_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "ES256", "ES384")
LEEWAY_S = 60
MAX_TOKEN_CHARS = 16 * 1024

_NUMERIC_DATES = ("exp", "iat", "nbf")
_CURVE_FOR_ALG = {"ES256": "secp256r1", "ES384": "secp384r1"}
_JWS_COMPACT = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


Revoked = Callable[[str], Awaitable[bool]]
CACHE_MAX_AGE_S = 300.0
"""How long a verified token is remembered at most, even before its ``exp`` (as long as a
JWKS document is kept: a key withdrawn by the identity provider stops working by then)."""
CACHE_MAX_ENTRIES = 4096


class VerifiedTokens:
    """Principals of verified tokens, keyed by the token's SHA-256 (the token itself is not
    kept), each until ``min(exp, remembered + CACHE_MAX_AGE_S)``; at most
    :data:`CACHE_MAX_ENTRIES`, the oldest dropped first."""

    def __init__(
        self,
        max_entries: int = CACHE_MAX_ENTRIES,
        max_age_s: float = CACHE_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self.clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Principal, Revoked | None]] = OrderedDict()

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> tuple[Principal, Revoked | None] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        until, principal, revoked = entry
        if self.clock() >= until:
            self._entries.pop(key, None)
            return None
        return principal, revoked

    def put(
        self, key: bytes, principal: Principal, exp: float, revoked: Revoked | None
    ) -> tuple[Principal, Revoked | None]:
        until = min(exp, self.clock() + self.max_age_s)
        self._entries[key] = (until, principal, revoked)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return principal, revoked

    def drop(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


def parse_bearer(authorization_header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1).

    Missing → ``missing-token`` (with a bare ``WWW-Authenticate: Bearer`` challenge, as
    RFC 6750 §3.1 asks); any other scheme or a token with characters outside ``b64token``
    → ``malformed`` (``invalid_request``).
    """
    if authorization_header is None or not authorization_header.strip():
        raise InvalidToken("missing-token", headers={"WWW-Authenticate": "Bearer"})
    parts = authorization_header.strip().split(" ")
    invalid_request = {"WWW-Authenticate": 'Bearer error="invalid_request"'}
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise InvalidToken(
            "malformed",
            "The Authorization header must be 'Bearer <token>'.",
            headers=invalid_request,
        )
    token = parts[1]
    if len(token) > MAX_TOKEN_CHARS or _B64TOKEN.fullmatch(token) is None:
        raise InvalidToken("malformed", headers=invalid_request)
    return token


class TokenVerifier:
    """Verifies access tokens against the configured issuer, audience and keys.

    Give exactly one of ``jwks`` (a JWKS document, e.g. from :func:`load_jwks_file`) or
    ``jwks_url`` (fetched with ``httpx``; cached ``jwks_ttl_s``; refetched on an unknown
    ``kid`` at most once per ``jwks_min_refresh_s``)::

        verifier = TokenVerifier(issuer=ISS, audience="https://gw.example/fhir", jwks=jwks)
        principal = verifier.verify(parse_bearer(request.headers.get("authorization")))

    :meth:`verify` may block on a JWKS fetch; from async code use :meth:`averify`, which
    runs a due fetch in a worker thread.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: Mapping[str, Any] | None = None,
        jwks_url: str | None = None,
        algorithms: Iterable[str] = ALLOWED_ALGORITHMS,
        leeway_s: int = LEEWAY_S,
        jwks_ttl_s: float = 300.0,
        jwks_min_refresh_s: float = 30.0,
        jwks_timeout_s: float = 5.0,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        if (jwks is None) == (jwks_url is None):
            raise ValueError("give exactly one of jwks or jwks_url")
        self.algorithms = tuple(algorithms)
        if not self.algorithms or not set(self.algorithms) <= set(ALLOWED_ALGORITHMS):
            raise ValueError(f"algorithms must be drawn from {', '.join(ALLOWED_ALGORITHMS)}")
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._also: dict[str, tuple[TokenVerifier, Revoked | None]] = {}
        self._verified = VerifiedTokens()
        self.keys: StaticJwks | RemoteJwks
        if jwks is not None:
            self.keys = StaticJwks(jwks)
        else:
            assert jwks_url is not None
            extra: dict[str, Any] = {} if clock is None else {"clock": clock}
            self.keys = RemoteJwks(
                jwks_url,
                ttl_s=jwks_ttl_s,
                min_refresh_s=jwks_min_refresh_s,
                timeout_s=jwks_timeout_s,
                client=http_client,
                **extra,
            )

    def trust_also(self, other: TokenVerifier, revoked: Revoked | None = None) -> None:
        """Also accept tokens whose ``iss`` is ``other.issuer``, checked by ``other``.

        The gateway's own SMART authorization server is such an issuer. ``revoked(jti)``
        is asked by :meth:`averify` for every such token: a revoked one is refused.
        Tokens of the configured issuer pay nothing for this but one unverified peek at
        ``iss`` while another issuer is trusted.
        """
        self._also[other.issuer] = (other, revoked)

    def _other_for(self, token: str) -> tuple[TokenVerifier, Revoked | None] | None:
        if not self._also or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError:
            return None
        return self._also.get(iss) if isinstance(iss, str) and iss != self.issuer else None

    def verify(self, token: str) -> Principal:
        """Verify ``token`` and return its :class:`Principal`; ``InvalidToken`` otherwise."""
        other = self._other_for(token)
        if other is not None:
            return other[0].verify(token)
        return principal_from_claims(self._claims(token))

    def _claims(self, token: str) -> dict[str, Any]:
        alg, kid = self._inspect_header(token)
        key = self._key_for(alg, kid)
        return self._decode(token, key, alg)

    async def averify(self, token: str) -> Principal:
        """:meth:`verify` for the event loop: a due JWKS fetch runs in a worker thread.

        A verified token is remembered (:class:`VerifiedTokens`: by its SHA-256, bounded,
        until its ``exp`` and for at most :data:`CACHE_MAX_AGE_S`), so a client sending the
        same token again costs one hash, not a signature check. The revocation check of a
        trusted issuer (:meth:`trust_also`) is never remembered: it runs on every request, so
        a revocation recorded by any replica applies to the next request everywhere, and a
        revoked token is dropped from the cache.
        """
        key = VerifiedTokens.key(token)
        hit = self._verified.get(key)
        if hit is None:
            principal, exp, revoked = await self._averify_claims(token)
            hit = self._verified.put(key, principal, exp, revoked)
        principal, revoked = hit
        if revoked is not None and (principal.jti is None or await revoked(principal.jti)):
            self._verified.drop(key)
            raise InvalidToken("revoked")
        return principal

    def forget(self, token: str) -> None:
        """Drop ``token`` from the cache of verified tokens (its revocation, here)."""
        self._verified.drop(VerifiedTokens.key(token))

    async def _averify_claims(self, token: str) -> tuple[Principal, float, Revoked | None]:
        other = self._other_for(token)
        if other is not None:
            verifier, revoked = other
            principal, exp, _ = await verifier._averify_claims(token)
            return principal, exp, revoked
        alg, kid = self._inspect_header(token)
        if self.keys.needs_fetch(kid):
            await asyncio.to_thread(self._key_for, alg, kid)
        claims = self._claims(token)
        return principal_from_claims(claims), float(claims["exp"]), None

    def close(self) -> None:
        if isinstance(self.keys, RemoteJwks):
            self.keys.close()

    def _inspect_header(self, token: str) -> tuple[str, str | None]:
        if (
            not isinstance(token, str)
            or len(token) > MAX_TOKEN_CHARS
            or _JWS_COMPACT.fullmatch(token) is None
        ):
            raise InvalidToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken("alg-not-allowed")
        if "crit" in header:  # RFC 7515 §4.1.11: we understand no extensions
            raise InvalidToken("malformed")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid):
            raise InvalidToken("malformed")
        return alg, kid

    def _key_for(self, alg: str, kid: str | None) -> PublicKey:
        try:
            key = self.keys.get(kid)
        except KeysUnavailable:
            raise InvalidToken("keys-unavailable") from None
        if key is None:
            raise InvalidToken("unknown-kid")
        if alg.startswith("RS"):
            ok = isinstance(key, rsa.RSAPublicKey)
        else:
            ok = (
                isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _CURVE_FOR_ALG[alg]
            )
        if not ok:
            raise InvalidToken("alg-not-allowed", "The signing algorithm does not match the key.")
        return key

    def _decode(self, token: str, key: PublicKey, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(_reason_for(exc)) from None
        # RFC 7519 §2: a NumericDate is a JSON number. PyJWT reads these with int(), so a
        # string such as "9999999999" would pass as a date; refuse it.
        for name in _NUMERIC_DATES:
            if name in claims and not _is_numeric_date(claims[name]):
                raise invalid_claim(name)
        # Belt and braces over the library: exact issuer, audience contained.
        if claims.get("iss") != self.issuer:
            raise InvalidToken("wrong-issuer")
        aud = claims.get("aud")
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud)):
            raise InvalidToken("wrong-audience")
        return claims


def _is_numeric_date(value: Any) -> bool:
    """A JSON number (int or finite float), not a string and not ``true``/``false``."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _reason_for(exc: jwt.InvalidTokenError) -> str:
    # Order matters: InvalidSignatureError is a DecodeError.
    table: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
        (jwt.ExpiredSignatureError, "expired"),
        (jwt.ImmatureSignatureError, "not-yet-valid"),
        (jwt.InvalidAudienceError, "wrong-audience"),
        (jwt.InvalidIssuerError, "wrong-issuer"),
        (jwt.MissingRequiredClaimError, "missing-claim"),
        (jwt.InvalidSignatureError, "bad-signature"),
        (jwt.InvalidAlgorithmError, "alg-not-allowed"),
        (jwt.DecodeError, "malformed"),
        (jwt.InvalidIssuedAtError, "invalid-claim"),
        (jwt.exceptions.InvalidSubjectError, "invalid-claim"),
        (jwt.exceptions.InvalidJTIError, "invalid-claim"),
    )
    for kind, reason in table:
        if isinstance(exc, kind):
            return reason
    return "invalid"

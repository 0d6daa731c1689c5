"""Verification keys: a JWKS held in memory, or fetched from a URL and cached.

Only asymmetric signing keys are ever loaded (``RSA`` of at least 2048 bits, ``EC`` on P-256
or P-384); ``oct`` (HMAC) keys, keys marked for encryption (``use: enc``) and unparseable
entries are skipped, so a symmetric secret can never end up verifying a token. Private
members (``d``...) in a JWKS are ignored: only the public half is kept.

:class:`RemoteJwks` fetches with ``httpx``: it refetches when its copy is older than
``ttl_s``, and on an unknown ``kid`` (key rotation at the issuer) at most once per
``min_refresh_s`` so that tokens with made-up ``kid`` values cannot make the gateway hammer
the identity provider. A failed fetch keeps the keys it already had.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_MAX_JWKS_BYTES = 256 * 1024
_CURVES = {"P-256", "P-384"}
_MIN_RSA_BITS = 2048


class KeysUnavailable(Exception):
    """The key set could not be obtained (never fetched successfully, or unusable)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public RSA or EC JWK, base64url-encoded."""
    kty = jwk.get("kty")
    if kty == "EC":
        members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    elif kty == "RSA":
        members = {k: jwk[k] for k in ("e", "kty", "n")}
    else:
        raise ValueError("thumbprints are computed for RSA and EC keys only")
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _public_key(jwk: Mapping[str, Any]) -> PublicKey | None:
    """The public key of one JWK entry, or ``None`` when it is not a usable signing key."""
    if jwk.get("use", "sig") != "sig":
        return None
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            key: Any = RSAAlgorithm.from_jwk(dict(jwk))
        elif kty == "EC" and jwk.get("crv") in _CURVES:
            key = ECAlgorithm.from_jwk(dict(jwk))
        else:
            return None
    except Exception:  # noqa: BLE001 - any malformed entry is skipped, not fatal
        return None
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return key if key.key_size >= _MIN_RSA_BITS else None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key
    return None


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str | None, PublicKey]:
    """Map ``kid`` → public key for every usable key in a JWKS document.

    A key without a ``kid`` is stored under ``None``; it is only ever selected for a token
    without a ``kid`` when it is the one key in the set.
    """
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("a JWKS is a JSON object with a 'keys' array")
    keys: dict[str | None, PublicKey] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        key = _public_key(entry)
        if key is None:
            continue
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) and kid else None] = key
    return keys


def load_jwks_file(path: str) -> dict[str, Any]:
    """Read a JWKS JSON file (for ``TokenVerifier(jwks=...)``); ``ValueError`` when unusable."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("a JWKS is a JSON object with a 'keys' array")
    keys_from_jwks(data)
    return data


class StaticJwks:
    """Keys given at start-up (a JWKS file, or the demo issuer's key)."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = keys_from_jwks(jwks)
        if not self._keys:
            raise ValueError("the JWKS holds no usable RS/ES signing key")

    def needs_fetch(self, kid: str | None) -> bool:
        return False

    def get(self, kid: str | None) -> PublicKey | None:
        return _select(self._keys, kid)


class RemoteJwks:
    """Keys fetched from a JWKS URL, cached for ``ttl_s``, refreshed on an unknown ``kid``.

    Thread-safe: FastAPI runs sync dependencies in a thread pool, so several requests may ask
    for keys at once; one fetch happens, the others wait for it.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 300.0,
        min_refresh_s: float = 30.0,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_url(url)
        self.url = url
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self._owns_client = client is None
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, PublicKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, success or not
        self.fetch_count = 0

    def needs_fetch(self, kid: str | None) -> bool:
        """Whether :meth:`get` for this ``kid`` would go to the network now."""
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self.min_refresh_s:
            return False
        if self._fetched_at is None or now - self._fetched_at >= self.ttl_s:
            return True
        return _select(self._keys, kid) is None

    def get(self, kid: str | None) -> PublicKey | None:
        """The key for ``kid``, fetching first when stale or unknown (rate-limited)."""
        if self.needs_fetch(kid):
            with self._lock:
                if self.needs_fetch(kid):  # another thread may just have fetched
                    self._refresh()
        if self._fetched_at is None:
            raise KeysUnavailable("the JWKS URL has not answered with a usable key set")
        return _select(self._keys, kid)

    def close(self) -> None:
        """Close the HTTP client, when this object made it."""
        if self._owns_client:
            self._client.close()

    def _refresh(self) -> None:
        self._attempted_at = self._clock()
        self.fetch_count += 1
        try:
            keys = self._fetch()
        except (httpx.HTTPError, ValueError):
            return  # keep what we had; the next attempt is after min_refresh_s
        if keys:
            self._keys = keys
            self._fetched_at = self._clock()

    def _fetch(self) -> dict[str | None, PublicKey]:
        response = self._client.get(self.url, headers={"Accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > _MAX_JWKS_BYTES:
            raise ValueError("JWKS response too large")
        data = json.loads(response.content)
        return keys_from_jwks(data)


def _select(keys: Mapping[str | None, PublicKey], kid: str | None) -> PublicKey | None:
    if kid is not None:
        return keys.get(kid)
    if len(keys) == 1:
        return next(iter(keys.values()))
    return None


def _check_url(url: str) -> None:
    """JWKS URLs must be HTTPS; plain HTTP only to a loopback address (tests, sidecars)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        if host == "localhost":
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
    raise ValueError("jwks_url must be an https:// URL (http:// only to a loopback address)")

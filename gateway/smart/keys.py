"""The authorization server's signing keys: the current one signs, the previous one is published.

A key comes from a PEM private key file (EC P-256 / P-384 or RSA of at least 2048 bits); any
other key (RSA 1024, an Ed25519 key, a certificate, garbage) is refused with a message that
names the setting it came from, so ``serve`` stops before it would sign a weak token.
Rotation: move the old key to ``CAREGW_SMART_PREVIOUS_KEY_FILE`` and put a new one in
``CAREGW_SMART_SIGNING_KEY_FILE``; both are published at ``/auth/jwks``, so tokens signed
before the rotation verify until they expire.

    keys = SigningKeys.from_files(Path("smart.pem"), previous=None)
    token = keys.sign({"iss": ..., "sub": ...})
    keys.jwks()            # {"keys": [current, previous?]}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth import generate_signing_key, jwks_from_private_pem
from gateway.settings import ConfigurationError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def load_private_key(pem: bytes, variable: str) -> PrivateKey:
    """Parse and check one PEM private key; ``ConfigurationError`` naming ``variable``."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"{variable}: not an unencrypted PEM private key ({type(exc).__name__})"
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size >= 2048:
            return key
        raise ConfigurationError(
            f"{variable}: RSA key of {key.key_size} bits is too weak (at least 2048)"
        )
    raise ConfigurationError(f"{variable}: the key must be EC P-256, EC P-384 or RSA >= 2048 bits")


@dataclass(frozen=True, slots=True)
class _Key:
    private: PrivateKey
    jwk: dict[str, Any]


def _key(pem: bytes, variable: str) -> _Key:
    private = load_private_key(pem, variable)
    return _Key(private, jwks_from_private_pem(pem)["keys"][0])


class SigningKeys:
    """The current signing key and, after a rotation, the previous one (published only)."""

    def __init__(self, current_pem: bytes, previous_pem: bytes | None = None) -> None:
        self._current = _key(current_pem, "CAREGW_SMART_SIGNING_KEY_FILE")
        self._previous = (
            None if previous_pem is None else _key(previous_pem, "CAREGW_SMART_PREVIOUS_KEY_FILE")
        )
        if self._previous is not None and self._previous.jwk["kid"] == self._current.jwk["kid"]:
            raise ConfigurationError(
                "CAREGW_SMART_PREVIOUS_KEY_FILE: is the same key as CAREGW_SMART_SIGNING_KEY_FILE"
            )

    @classmethod
    def from_files(cls, current: Path | None, previous: Path | None = None) -> SigningKeys:
        if current is None:
            raise ConfigurationError(
                "CAREGW_SMART_SIGNING_KEY_FILE is required when CAREGW_SMART_CLIENTS_FILE is set"
            )
        return cls(
            _read(current, "CAREGW_SMART_SIGNING_KEY_FILE"),
            None if previous is None else _read(previous, "CAREGW_SMART_PREVIOUS_KEY_FILE"),
        )

    @classmethod
    def generate(cls) -> SigningKeys:
        """A fresh key (the demo's; it is gone when the process ends)."""
        pem, _ = generate_signing_key()
        return cls(pem)

    @property
    def kid(self) -> str:
        return str(self._current.jwk["kid"])

    @property
    def alg(self) -> str:
        return str(self._current.jwk["alg"])

    def jwks(self) -> dict[str, Any]:
        """The public keys, current first (what ``/auth/jwks`` serves)."""
        keys = [self._current.jwk]
        if self._previous is not None:
            keys.append(self._previous.jwk)
        return {"keys": [dict(k) for k in keys]}

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        return jwt.encode(
            claims,
            self._current.private,
            algorithm=self.alg,
            headers={"kid": self.kid, "typ": typ},
        )


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{variable}: cannot read {path}: {exc.strerror}") from None

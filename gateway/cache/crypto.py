"""Encryption of cached values and the HMAC that turns an NHS number into a cache key.

Blob format (version 1), all of it stored as the cache value::

    0x01 | len(kid) (1 byte) | kid (ASCII) | nonce (12 bytes) | AES-256-GCM ciphertext + tag

The associated data is ``version | len(kid) | kid | cache key``: a value copied to another
key, re-labelled with another key id or format version fails authentication. A fresh random
96-bit nonce per write means the same record written twice gives different bytes.

Key ring (``CAREGW_CACHE_KEYS``): ``kid:base64key,kid:base64key,...``; the first key
encrypts, all decrypt. To rotate: put a new key first, keep the old one after it until the
cache TTL has passed, then drop it.

Index key (``CAREGW_CACHE_INDEX_KEY``): a separate base64 secret for the HMAC-SHA256 of the
NHS number, so rotating encryption keys keeps the cache reachable and Redis never holds an
NHS number, even as a key.

Usage::

    ring = KeyRing.parse(settings.cache_keys)
    index = IndexKey.parse(settings.cache_index_key)
    refuse_demo_keys(ring, index)            # anywhere but `caregateway demo`
    key = index.record_key("social-care", nhs)
    blob = ring.seal(key, plaintext)
    assert ring.open(key, blob) == plaintext
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.cache.errors import CacheConfigError, UndecryptableValue

__all__ = [
    "DEMO_CACHE_KEYS",
    "DEMO_INDEX_KEY",
    "FORMAT_VERSION",
    "KEY_PREFIX",
    "IndexKey",
    "KeyRing",
    "generate_index_key",
    "generate_key_entry",
    "refuse_demo_keys",
]

FORMAT_VERSION = 1
KEY_PREFIX = b"cgw:v1:"
NONCE_BYTES = 12
KEY_BYTES = 32
MIN_INDEX_KEY_BYTES = 32
_KID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")

KEYS_VAR = "CAREGW_CACHE_KEYS"
INDEX_VAR = "CAREGW_CACHE_INDEX_KEY"

# --------------------------------------------------------------------------------------
# DEMO KEYS — PUBLIC, IN SOURCE CONTROL, FOR `caregateway demo` AND TESTS ONLY.
# They protect nothing. `refuse_demo_keys` stops any other mode from using them.
# --------------------------------------------------------------------------------------
DEMO_CACHE_KEYS = "demo-1:" + base64.b64encode(b"caregateway-demo-cache-key-00001").decode()
DEMO_INDEX_KEY = base64.b64encode(b"caregateway-demo-index-key-000001").decode()


def _b64decode(text: str, var: str, what: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise CacheConfigError(f"{var}: {what} is not valid base64") from None


@dataclass(frozen=True, slots=True)
class KeyRing:
    """AES-256-GCM keys by key id; ``primary`` encrypts, every key decrypts."""

    primary: str
    keys: Mapping[str, bytes] = field(repr=False)
    _aead: Mapping[str, AESGCM] = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.primary not in self.keys:
            raise CacheConfigError(f"{KEYS_VAR}: primary key id is not in the ring")
        for kid, key in self.keys.items():
            if not _KID_RE.match(kid):
                raise CacheConfigError(
                    f"{KEYS_VAR}: key id {kid!r} must be 1-32 of A-Z a-z 0-9 _ . -"
                )
            if len(key) != KEY_BYTES:
                raise CacheConfigError(
                    f"{KEYS_VAR}: key {kid!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
        object.__setattr__(self, "_aead", {kid: AESGCM(key) for kid, key in self.keys.items()})

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Parse ``kid:base64key,...`` (whitespace around entries is ignored)."""
        entries = [e.strip() for e in (text or "").split(",") if e.strip()]
        if not entries:
            raise CacheConfigError(f"{KEYS_VAR} is empty: expected 'kid:base64key,...'")
        keys: dict[str, bytes] = {}
        for entry in entries:
            kid, sep, b64 = entry.partition(":")
            kid = kid.strip()
            if not sep or not kid or not b64.strip():
                raise CacheConfigError(f"{KEYS_VAR}: entry {len(keys) + 1} is not 'kid:base64key'")
            if kid in keys:
                raise CacheConfigError(f"{KEYS_VAR}: key id {kid!r} appears twice")
            if not _KID_RE.match(kid):
                raise CacheConfigError(
                    f"{KEYS_VAR}: key id {kid!r} must be 1-32 of A-Z a-z 0-9 _ . -"
                )
            keys[kid] = _b64decode(b64, KEYS_VAR, f"key {kid!r}")
        return cls(primary=next(iter(keys)), keys=keys)

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    def seal(self, cache_key: bytes, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` for storage under ``cache_key`` with the primary key."""
        header = _header(self.primary)
        nonce = os.urandom(NONCE_BYTES)
        ct = self._aead[self.primary].encrypt(nonce, plaintext, header + cache_key)
        return header + nonce + ct

    def open(self, cache_key: bytes, blob: bytes) -> bytes:
        """Decrypt a blob stored under ``cache_key``; raise :class:`UndecryptableValue`."""
        if len(blob) < 2:
            raise UndecryptableValue("value too short")
        if blob[0] != FORMAT_VERSION:
            raise UndecryptableValue("unknown format version")
        kid_len = blob[1]
        header_len = 2 + kid_len
        if kid_len == 0 or len(blob) < header_len + NONCE_BYTES + 16:
            raise UndecryptableValue("value too short")
        try:
            kid = blob[2:header_len].decode("ascii")
        except UnicodeDecodeError:
            raise UndecryptableValue("malformed key id") from None
        aead = self._aead.get(kid)
        if aead is None:
            raise UndecryptableValue("key id not in the key ring")
        nonce = blob[header_len : header_len + NONCE_BYTES]
        try:
            return aead.decrypt(
                nonce, blob[header_len + NONCE_BYTES :], blob[:header_len] + cache_key
            )
        except InvalidTag:
            raise UndecryptableValue("authentication failed") from None


def _header(kid: str) -> bytes:
    raw = kid.encode("ascii")
    return bytes((FORMAT_VERSION, len(raw))) + raw


def kid_of(blob: bytes) -> str | None:
    """The key id a blob was sealed with (for rotation checks and metrics), if readable."""
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        return None
    try:
        return blob[2 : 2 + blob[1]].decode("ascii")
    except UnicodeDecodeError:
        return None


@functools.lru_cache(maxsize=8192)
def _mac(secret: bytes, label: bytes, value: str) -> str:
    """The hex HMAC, remembered (bounded): a warm read names the same person's entries in
    every request, two HMACs per source each time. Pure; nothing leaves this process."""
    return hmac.new(secret, label + b"\x00" + value.encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=8192)
def _record_key(index: IndexKey, source: str, nhs_number: str) -> bytes:
    """:meth:`IndexKey.record_key`, remembered (bounded) like the HMACs it is made of."""
    return index.record_key_for_token(source, index.person_token(nhs_number))


@dataclass(frozen=True, slots=True)
class IndexKey:
    """HMAC-SHA256 secret that maps NHS numbers (and source names) to opaque cache keys.

    ``person_token(nhs)`` is the hex HMAC of the NHS number: it names a person in Redis keys
    and eviction messages. ``record_key(source, nhs)`` is
    ``cgw:v1:r:{person_token}:{source_token}``.
    """

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_INDEX_KEY_BYTES:
            raise CacheConfigError(
                f"{INDEX_VAR}: secret is {len(self.secret)} bytes; at least "
                f"{MIN_INDEX_KEY_BYTES} are required"
            )

    @classmethod
    def parse(cls, text: str) -> IndexKey:
        if not (text or "").strip():
            raise CacheConfigError(f"{INDEX_VAR} is empty: expected a base64 secret")
        return cls(_b64decode(text, INDEX_VAR, "the secret"))

    def _mac(self, label: bytes, value: str) -> str:
        return _mac(self.secret, label, value)

    def person_token(self, nhs_number: str) -> str:
        return self._mac(b"person", nhs_number)

    def source_token(self, source: str) -> str:
        return self._mac(b"source", source)[:16]

    def record_key(self, source: str, nhs_number: str) -> bytes:
        return _record_key(self, source, nhs_number)

    def record_key_for_token(self, source: str, person_token: str) -> bytes:
        return KEY_PREFIX + f"r:{person_token}:{self.source_token(source)}".encode()


def refuse_demo_keys(ring: KeyRing, index_key: IndexKey) -> None:
    """Raise :class:`CacheConfigError` if either secret is a demo one (use outside demo)."""
    demo_ring = KeyRing.parse(DEMO_CACHE_KEYS)
    demo_secrets = set(demo_ring.keys.values())
    if any(key in demo_secrets for key in ring.keys.values()):
        raise CacheConfigError(
            f"{KEYS_VAR} contains the public demo key: generate one with "
            "`caregateway keys generate`"
        )
    if hmac.compare_digest(index_key.secret, IndexKey.parse(DEMO_INDEX_KEY).secret):
        raise CacheConfigError(
            f"{INDEX_VAR} is the public demo key: generate one with "
            "`caregateway keys generate --index`"
        )


def generate_key_entry(kid: str | None = None) -> str:
    """A new ``kid:base64key`` entry for ``CAREGW_CACHE_KEYS`` (kid defaults to random)."""
    kid = kid or "k" + secrets.token_hex(4)
    if not _KID_RE.match(kid):
        raise CacheConfigError(f"{KEYS_VAR}: key id {kid!r} must be 1-32 of A-Z a-z 0-9 _ . -")
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def generate_index_key() -> str:
    """A new base64 secret for ``CAREGW_CACHE_INDEX_KEY``."""
    return base64.b64encode(secrets.token_bytes(32)).decode()

"""Cache encryption and keys: key ring parsing, sealing, tampering, rotation, demo keys."""

from __future__ import annotations

import base64

import pytest

from gateway.cache import (
    DEMO_CACHE_KEYS,
    DEMO_INDEX_KEY,
    CacheConfigError,
    IndexKey,
    KeyRing,
    UndecryptableValue,
    generate_index_key,
    generate_key_entry,
    refuse_demo_keys,
)
from gateway.cache.crypto import KEY_PREFIX, kid_of

KEY_A = "key-a:" + base64.b64encode(b"A" * 32).decode()
KEY_B = "key-b:" + base64.b64encode(b"B" * 32).decode()
CK = b"cgw:v1:r:abc:def"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is empty"),
        (" , ", "is empty"),
        ("nokey", "not 'kid:base64key'"),
        ("k1:", "not 'kid:base64key'"),
        (":" + base64.b64encode(b"x" * 32).decode(), "not 'kid:base64key'"),
        ("k1:not*base64!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "AES-256 needs 32"),
        (KEY_A + "," + KEY_A, "appears twice"),
        ("bad kid:" + base64.b64encode(b"x" * 32).decode(), "key id"),
    ],
)
def test_bad_key_ring_names_the_variable(text: str, fragment: str) -> None:
    with pytest.raises(CacheConfigError) as err:
        KeyRing.parse(text)
    assert "CAREGW_CACHE_KEYS" in str(err.value)
    assert fragment in str(err.value)
    assert "QUFB" not in str(err.value)  # never echoes key material


def test_first_key_encrypts_all_decrypt() -> None:
    ring = KeyRing.parse(f"{KEY_B}, {KEY_A}")
    assert ring.primary == "key-b"
    assert ring.kids == ("key-b", "key-a")
    assert "AAAA" not in repr(ring)


def test_urlsafe_base64_and_missing_padding_accepted() -> None:
    raw = bytes(range(200, 232))
    text = "u:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert KeyRing.parse(text).keys["u"] == raw


def test_seal_open_roundtrip_and_fresh_nonce() -> None:
    ring = KeyRing.parse(KEY_A)
    one, two = ring.seal(CK, b"record"), ring.seal(CK, b"record")
    assert one != two
    assert ring.open(CK, one) == ring.open(CK, two) == b"record"
    assert one[0] == 1 and kid_of(one) == "key-a"
    assert b"record" not in one


def test_tampered_blob_fails() -> None:
    ring = KeyRing.parse(KEY_A)
    blob = bytearray(ring.seal(CK, b"record"))
    blob[-1] ^= 1
    with pytest.raises(UndecryptableValue):
        ring.open(CK, bytes(blob))


def test_value_under_another_key_fails() -> None:
    ring = KeyRing.parse(KEY_A)
    blob = ring.seal(CK, b"record")
    with pytest.raises(UndecryptableValue):
        ring.open(CK + b"x", blob)


def test_relabelled_kid_or_version_fails() -> None:
    ring = KeyRing.parse(f"{KEY_A},{KEY_B}")
    blob = ring.seal(CK, b"record")
    relabelled = blob.replace(b"key-a", b"key-b", 1)
    with pytest.raises(UndecryptableValue):
        ring.open(CK, relabelled)
    with pytest.raises(UndecryptableValue, match="version"):
        ring.open(CK, b"\x02" + blob[1:])


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01\x05key-a", b"\x01\x00" + b"x" * 40])
def test_short_or_malformed_blob_fails(blob: bytes) -> None:
    with pytest.raises(UndecryptableValue):
        KeyRing.parse(KEY_A).open(CK, blob)


def test_rotation_old_values_readable_new_writes_use_new_key() -> None:
    old = KeyRing.parse(KEY_A)
    blob_a = old.seal(CK, b"old")
    rotated = KeyRing.parse(f"{KEY_B},{KEY_A}")
    assert rotated.open(CK, blob_a) == b"old"
    blob_b = rotated.seal(CK, b"new")
    assert kid_of(blob_b) == "key-b"
    with pytest.raises(UndecryptableValue, match="not in the key ring"):
        old.open(CK, blob_b)


def test_index_key_is_opaque_and_stable() -> None:
    index = IndexKey.parse(DEMO_INDEX_KEY)
    key = index.record_key("social-care", "9990000018")
    assert key.startswith(KEY_PREFIX)
    assert b"9990000018" not in key and b"social" not in key
    assert key == index.record_key("social-care", "9990000018")
    assert key != index.record_key("community", "9990000018")
    assert key != index.record_key("social-care", "9990000026")
    other = IndexKey.parse(generate_index_key())
    assert other.record_key("social-care", "9990000018") != key
    token = index.person_token("9990000018")
    assert key == index.record_key_for_token("social-care", token)
    assert len(token) == 64


def test_index_key_errors_name_the_variable() -> None:
    for text in ("", "***", base64.b64encode(b"short").decode()):
        with pytest.raises(CacheConfigError, match="CAREGW_CACHE_INDEX_KEY"):
            IndexKey.parse(text)


def test_demo_keys_refused_outside_demo() -> None:
    demo_ring, demo_index = KeyRing.parse(DEMO_CACHE_KEYS), IndexKey.parse(DEMO_INDEX_KEY)
    real_ring = KeyRing.parse(generate_key_entry())
    real_index = IndexKey.parse(generate_index_key())
    with pytest.raises(CacheConfigError, match="CAREGW_CACHE_KEYS"):
        refuse_demo_keys(demo_ring, real_index)
    with pytest.raises(CacheConfigError, match="CAREGW_CACHE_KEYS"):
        refuse_demo_keys(KeyRing.parse(f"{generate_key_entry()},{DEMO_CACHE_KEYS}"), real_index)
    with pytest.raises(CacheConfigError, match="CAREGW_CACHE_INDEX_KEY"):
        refuse_demo_keys(real_ring, demo_index)
    refuse_demo_keys(real_ring, real_index)


def test_generated_entries_parse_and_differ() -> None:
    one, two = generate_key_entry(), generate_key_entry("2026-11")
    ring = KeyRing.parse(f"{one},{two}")
    assert len(set(ring.keys.values())) == 2
    assert two.startswith("2026-11:")
    assert len(base64.b64decode(generate_index_key())) == 32
    with pytest.raises(CacheConfigError):
        generate_key_entry("no spaces")

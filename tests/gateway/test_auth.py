"""gateway.auth: bearer tokens, the Principal, SMART scopes, purpose of use, JWKS (real crypto).

Every token here is really signed; attacks (``alg: none``, HS256 keyed with the public key,
a foreign key with a known ``kid``) are crafted by hand. The JWKS URL tests run a real HTTP
server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth import (
    PURPOSES_OF_USE,
    InvalidToken,
    Principal,
    Scope,
    TokenVerifier,
    generate_signing_key,
    has_scope,
    issue_token,
    jwk_thumbprint,
    jwks_from_private_pem,
    load_jwks_file,
    parse_bearer,
    parse_scope,
    parse_scopes,
    require_scope,
    resolve_purpose,
)
from gateway.errors import Forbidden, Unauthorized

ISS = "https://idp.example.test/realms/care"
AUD = "https://gateway.example.test/fhir"


# --- keys and token helpers -----------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    pem: bytes
    jwk: dict[str, Any]

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}


def _pem(private: Any) -> bytes:
    pem: bytes = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem


def _key_from_pem(pem: bytes) -> Key:
    return Key(pem, jwks_from_private_pem(pem)["keys"][0])


@pytest.fixture(scope="module")
def key() -> Key:
    return Key(*generate_signing_key())


@pytest.fixture(scope="module")
def other_key() -> Key:
    return Key(*generate_signing_key())


@pytest.fixture(scope="module")
def rsa_key() -> Key:
    return _key_from_pem(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))


@pytest.fixture(scope="module")
def p384_key() -> Key:
    return _key_from_pem(_pem(ec.generate_private_key(ec.SECP384R1())))


@pytest.fixture(scope="module")
def verifier(key: Key) -> TokenVerifier:
    return TokenVerifier(issuer=ISS, audience=AUD, jwks=key.jwks)


def token_for(key: Key, **kw: Any) -> str:
    args: dict[str, Any] = {
        "issuer": ISS,
        "audience": AUD,
        "sub": "5fd1a0e2-0000-4000-8000-000000000001",
        "role": "R8000",
        "org": "RAT",
        "scopes": ("user/*.rs",),
        "purpose": "TREAT",
        "name": "Dr Ada Example",
    }
    args.update(kw)
    return issue_token(key.pem, **args)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "user-1",
        "role": "R8000",
        "org": "RAT",
        "scope": "user/*.rs",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def signed(key: Key, payload: dict[str, Any], **headers: Any) -> str:
    """Sign arbitrary claims (bypassing issue_token) with the key's own kid."""
    alg = key.jwk["alg"]
    hdr = {"kid": key.jwk["kid"], **headers}
    private = serialization.load_pem_private_key(key.pem, password=None)
    return jwt.encode(payload, private, algorithm=alg, headers=hdr)  # type: ignore[arg-type]


def reject(verifier: TokenVerifier, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    err = info.value
    assert isinstance(err, Unauthorized) and err.status == 401
    assert_no_token_in(err, token)
    return err


def assert_no_token_in(err: Exception, token: str) -> None:
    """Neither the token nor any sizeable part of it reaches a message, header or outcome."""
    texts = [str(err), repr(err)]
    if isinstance(err, Unauthorized):
        texts += [err.message, json.dumps(err.to_operation_outcome()), json.dumps(err.headers)]
    pieces = [p for p in [token, *token.split(".")] if len(p) >= 12]
    for text in texts:
        for piece in pieces:
            assert piece not in text
    assert err.__cause__ is None


# --- valid tokens -----------------------------------------------------------------------------


def test_valid_token_gives_principal(key: Key, verifier: TokenVerifier) -> None:
    token = token_for(
        key,
        scopes=("user/CarePlan.rs", "user/Consent.cruds", "openid"),
        extra_claims={"client_id": "viewer-app"},
    )
    p = verifier.verify(token)
    assert isinstance(p, Principal)
    assert p.sub == "5fd1a0e2-0000-4000-8000-000000000001"
    assert (p.role, p.org, p.name) == ("R8000", "RAT", "Dr Ada Example")
    assert p.default_purpose == "TREAT"
    assert p.client_kind == "user"
    assert p.client_id == "viewer-app"
    assert p.jti is not None and len(p.jti) == 32
    assert p.scopes == frozenset(
        {
            Scope("user", "CarePlan", frozenset("rs")),
            Scope("user", "Consent", frozenset("cruds")),
        }
    )
    with pytest.raises(AttributeError):
        p.sub = "someone else"  # type: ignore[misc]


def test_cis2_long_role_form_is_reduced(key: Key, verifier: TokenVerifier) -> None:
    assert verifier.verify(token_for(key, role="S8000:G8000:R8000")).role == "R8000"
    assert verifier.verify(token_for(key, role="S0080:G0450:R5105")).role == "R5105"


def test_local_role_code_is_kept(key: Key, verifier: TokenVerifier) -> None:
    assert verifier.verify(token_for(key, role="LA-SW")).role == "LA-SW"


def test_azp_is_the_client_id_when_client_id_is_absent(key: Key, verifier: TokenVerifier) -> None:
    assert verifier.verify(token_for(key, extra_claims={"azp": "epr-1"})).client_id == "epr-1"


def test_system_client_without_role(key: Key, verifier: TokenVerifier) -> None:
    p = verifier.verify(
        token_for(key, role=None, client_kind="system", sub="epr-client", scopes=("system/*.rs",))
    )
    assert p.client_kind == "system" and p.role is None and p.sub == "epr-client"


def test_audience_list_containing_ours(key: Key, verifier: TokenVerifier) -> None:
    token = signed(key, claims(aud=["https://other.example", AUD]))
    assert verifier.verify(token).sub == "user-1"


def test_rsa_and_p384_keys_verify(rsa_key: Key, p384_key: Key) -> None:
    v = TokenVerifier(issuer=ISS, audience=AUD, jwks={"keys": [rsa_key.jwk, p384_key.jwk]})
    assert v.verify(token_for(rsa_key)).org == "RAT"
    assert v.verify(token_for(p384_key)).org == "RAT"
    private = serialization.load_pem_private_key(rsa_key.pem, password=None)
    rs384 = jwt.encode(claims(), private, algorithm="RS384", headers={"kid": rsa_key.jwk["kid"]})  # type: ignore[arg-type]
    assert v.verify(rs384).sub == "user-1"


def test_leeway_of_sixty_seconds(key: Key, verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert verifier.verify(signed(key, claims(exp=now - 30))).sub == "user-1"
    assert verifier.verify(signed(key, claims(nbf=now + 30, iat=now + 30))).sub == "user-1"


# --- refusals ---------------------------------------------------------------------------------


def test_signed_by_another_key_with_our_kid(
    key: Key, other_key: Key, verifier: TokenVerifier
) -> None:
    forged = signed(Key(other_key.pem, key.jwk), claims())
    assert reject(verifier, forged).reason == "bad-signature"


def test_embedded_jwk_header_is_not_trusted(
    key: Key, other_key: Key, verifier: TokenVerifier
) -> None:
    forged = signed(Key(other_key.pem, key.jwk), claims(), jwk=other_key.jwk)
    assert reject(verifier, forged).reason == "bad-signature"


def test_tampered_payload(key: Key, verifier: TokenVerifier) -> None:
    h, _, s = token_for(key).split(".")
    tampered = f"{h}.{b64(claims(role='R0001'))}.{s}"
    assert reject(verifier, tampered).reason == "bad-signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(key: Key, verifier: TokenVerifier, alg: str) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": key.jwk["kid"]}
    token = f"{b64(header)}.{b64(claims())}."
    assert reject(verifier, token).reason == "alg-not-allowed"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_the_public_key_text(key: Key, verifier: TokenVerifier, alg: str) -> None:
    """The classic confusion: an HMAC over the token using the public key PEM as the secret."""
    public_pem = (
        serialization.load_pem_private_key(key.pem, password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64({'alg': alg, 'kid': key.jwk['kid']})}.{b64(claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), digest).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert reject(verifier, token).reason == "alg-not-allowed"


def test_alg_refused_before_any_key_lookup(key: Key) -> None:
    """An HS256 token never reaches the key source (no JWKS fetch is triggered)."""

    class Exploding:
        def needs_fetch(self, kid: str | None) -> bool:
            raise AssertionError("key source consulted")

        def get(self, kid: str | None) -> Any:
            raise AssertionError("key source consulted")

    v = TokenVerifier(issuer=ISS, audience=AUD, jwks=key.jwks)
    v.keys = Exploding()  # type: ignore[assignment]
    mac = hmac.new(b"secret", b"x.y", hashlib.sha256).digest()
    token = f"{b64({'alg': 'HS256', 'kid': 'k'})}.{b64(claims())}.{b64(mac)}"
    assert reject(v, token).reason == "alg-not-allowed"


def test_algorithm_must_match_key_type(key: Key, rsa_key: Key, p384_key: Key) -> None:
    v = TokenVerifier(issuer=ISS, audience=AUD, jwks={"keys": [key.jwk, p384_key.jwk]})
    # ES384 header but the kid names the P-256 key
    private = serialization.load_pem_private_key(p384_key.pem, password=None)
    token = jwt.encode(claims(), private, algorithm="ES384", headers={"kid": key.jwk["kid"]})  # type: ignore[arg-type]
    assert reject(v, token).reason == "alg-not-allowed"
    # RS256 under an EC key's kid
    rsa_private = serialization.load_pem_private_key(rsa_key.pem, password=None)
    token = jwt.encode(claims(), rsa_private, algorithm="RS256", headers={"kid": key.jwk["kid"]})  # type: ignore[arg-type]
    assert reject(v, token).reason == "alg-not-allowed"


def test_crit_header_is_refused(key: Key, verifier: TokenVerifier) -> None:
    token = signed(key, claims(), crit=["exp"])
    assert reject(verifier, token).reason == "malformed"


def test_expired(key: Key, verifier: TokenVerifier) -> None:
    token = token_for(key, now=time.time() - 3600, ttl_s=600)
    assert reject(verifier, token).reason == "expired"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(key: Key, verifier: TokenVerifier, claim: str) -> None:
    now = int(time.time())
    token = signed(key, claims(**{claim: now + 600}, exp=now + 1200))
    assert reject(verifier, token).reason == "not-yet-valid"


@pytest.mark.parametrize(
    "over",
    [
        # A day ahead: read at collection, it must still be in the future when a long run
        # reaches this test (ten minutes was not), or the token is refused as expired.
        {"exp": str(int(time.time()) + 86400)},
        {"exp": "9999999999"},
        {"iat": True},
        {"iat": str(int(time.time()))},
        {"nbf": str(int(time.time()))},
        {"nbf": False},
    ],
)
def test_numeric_dates_must_be_json_numbers(
    key: Key, verifier: TokenVerifier, over: dict[str, Any]
) -> None:
    # RFC 7519 §2 NumericDate: a JSON number; PyJWT alone would read "9999999999" with int().
    err = reject(verifier, signed(key, claims(**over)))
    assert err.reason == "invalid-claim"
    assert f"'{next(iter(over))}'" in err.message


def test_numeric_dates_as_numbers_are_fine(key: Key, verifier: TokenVerifier) -> None:
    now = time.time()
    principal = verifier.verify(signed(key, claims(exp=now + 600.5, iat=now, nbf=int(now))))
    assert principal.sub == "user-1"


def test_issued_in_the_future_by_issue_token(key: Key, verifier: TokenVerifier) -> None:
    token = token_for(key, now=time.time() + 3600)
    assert reject(verifier, token).reason == "not-yet-valid"


@pytest.mark.parametrize(
    "aud", ["https://other.example/fhir", ["https://a.example", "https://b.example"], AUD + "x"]
)
def test_wrong_audience(key: Key, verifier: TokenVerifier, aud: Any) -> None:
    assert reject(verifier, signed(key, claims(aud=aud))).reason == "wrong-audience"


@pytest.mark.parametrize("iss", ["https://evil.example", ISS + "/x", ISS[:-1], ""])
def test_wrong_issuer(key: Key, verifier: TokenVerifier, iss: str) -> None:
    assert reject(verifier, signed(key, claims(iss=iss))).reason == "wrong-issuer"


def test_unknown_kid(key: Key, other_key: Key, verifier: TokenVerifier) -> None:
    assert reject(verifier, token_for(other_key)).reason == "unknown-kid"


def test_no_kid_with_one_key_uses_it_and_with_two_is_unknown(key: Key, other_key: Key) -> None:
    private = serialization.load_pem_private_key(key.pem, password=None)
    token = jwt.encode(claims(), private, algorithm="ES256")  # type: ignore[arg-type]
    assert TokenVerifier(issuer=ISS, audience=AUD, jwks=key.jwks).verify(token).sub == "user-1"
    two = TokenVerifier(issuer=ISS, audience=AUD, jwks={"keys": [key.jwk, other_key.jwk]})
    assert reject(two, token).reason == "unknown-kid"


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub", "org", "scope"])
def test_missing_required_claim(key: Key, verifier: TokenVerifier, claim: str) -> None:
    err = reject(verifier, signed(key, claims(**{claim: None})))
    expected = {"iss": "wrong-issuer", "aud": "wrong-audience"}.get(claim, "missing-claim")
    assert err.reason in {expected, "missing-claim"}


def test_missing_role_for_a_user(key: Key, verifier: TokenVerifier) -> None:
    assert reject(verifier, token_for(key, role=None)).reason == "missing-claim"
    assert reject(verifier, token_for(key, role="  ")).reason == "missing-claim"


@pytest.mark.parametrize(
    "over",
    [
        {"role": "S8000:G8000"},  # long form without an R code
        {"role": "R 8000; drop"},
        {"role": 8000},
        {"org": "RAT/../x"},
        {"org": ["RAT"]},
        {"sub": 42},
        {"client_kind": "admin"},
        {"scope": 7},
        {"name": {"given": "x"}},
        {"purpose_of_use": ["TREAT"]},
    ],
)
def test_unusable_claim_values(key: Key, verifier: TokenVerifier, over: dict[str, Any]) -> None:
    assert reject(verifier, signed(key, claims(**over))).reason in {"invalid-claim", "malformed"}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c.d.e",
        "!!!.???.***",
        "eyJhbGciOiJFUzI1NiJ9.not-json.c2ln",
        f"{b64(b'not json')}.{b64(claims())}.c2ln",
        f"{b64(b'[1,2]')}.{b64(claims())}.c2ln",
        "x" * 20000,
    ],
)
def test_garbage_tokens(verifier: TokenVerifier, token: str) -> None:
    # a well-formed header with an unreadable payload fails on the signature first
    assert reject(verifier, token).reason in {"malformed", "alg-not-allowed", "bad-signature"}


def test_signed_non_json_payload(key: Key, verifier: TokenVerifier) -> None:
    private = serialization.load_pem_private_key(key.pem, password=None)
    token = jwt.api_jws.encode(b"\xff\xfenot json", private, "ES256", {"kid": key.jwk["kid"]})  # type: ignore[arg-type]
    assert reject(verifier, token).reason == "malformed"


def test_every_refusal_is_a_401_with_bearer_challenge(key: Key, verifier: TokenVerifier) -> None:
    err = reject(verifier, token_for(key, now=time.time() - 86400, ttl_s=60))
    assert err.headers["WWW-Authenticate"].startswith("Bearer")
    outcome = err.to_operation_outcome()
    assert outcome["issue"][0]["code"] == "login"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "expired"


# --- Authorization header ---------------------------------------------------------------------


def test_parse_bearer_ok() -> None:
    assert parse_bearer("Bearer abc.def.ghi") == "abc.def.ghi"
    assert parse_bearer("bearer abc.def.ghi") == "abc.def.ghi"
    assert parse_bearer("  BEARER abc.def.ghi  ") == "abc.def.ghi"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_parse_bearer_missing(header: str | None) -> None:
    with pytest.raises(InvalidToken) as info:
        parse_bearer(header)
    assert info.value.reason == "missing-token"
    assert info.value.headers == {"WWW-Authenticate": "Bearer"}


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer  abc",
        "Token abc.def.ghi",
        "Bearer abc\x00def",
        "Bearer abc,def",
        "Bearer " + "a" * 20000,
        "abc.def.ghi",
    ],
)
def test_parse_bearer_odd(header: str) -> None:
    with pytest.raises(InvalidToken) as info:
        parse_bearer(header)
    assert info.value.reason == "malformed"
    assert "invalid_request" in info.value.headers["WWW-Authenticate"]
    secretish = header.split(" ", 1)[-1].strip()
    if len(secretish) >= 3 and secretish.lower() != "bearer":
        assert secretish not in info.value.message


# --- scopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user/CarePlan.rs", Scope("user", "CarePlan", frozenset("rs"))),
        ("system/Patient.rs", Scope("system", "Patient", frozenset("rs"))),
        ("user/*.rs", Scope("user", "*", frozenset("rs"))),
        ("user/Consent.cruds", Scope("user", "Consent", frozenset("cruds"))),
        ("patient/CarePlan.r", Scope("patient", "CarePlan", frozenset("r"))),
        ("user/AuditEvent.rs", Scope("user", "AuditEvent", frozenset("rs"))),
        ("user/CarePlan.cu", Scope("user", "CarePlan", frozenset("cu"))),
        ("user/CarePlan.read", Scope("user", "CarePlan", frozenset("rs"))),
        ("user/*.write", Scope("user", "*", frozenset("cud"))),
        ("user/*.*", Scope("user", "*", frozenset("cruds"))),
        ("system/*.read", Scope("system", "*", frozenset("rs"))),
        # not resource scopes, or malformed: ignored
        ("openid", None),
        ("launch/patient", None),
        ("fhirUser", None),
        ("user/CarePlan.sr", None),  # v2 letters out of order
        ("user/CarePlan.rr", None),
        ("user/CarePlan.x", None),
        ("user/CarePlan.", None),
        ("user/carePlan.rs", None),
        ("admin/CarePlan.rs", None),
        ("user/CarePlan.rs?category=x", None),  # constrained scopes never widen access
        ("User/CarePlan.rs", None),
    ],
)
def test_parse_scope(text: str, expected: Scope | None) -> None:
    assert parse_scope(text) == expected


def test_parse_scopes_space_separated_and_list() -> None:
    assert parse_scopes("openid user/CarePlan.rs  user/Patient.read") == parse_scopes(
        ["user/CarePlan.rs", "user/Patient.rs"]
    )
    assert str(parse_scope("user/*.*")) == "user/*.cruds"


def _principal(kind: str, *scopes: str) -> Principal:
    return Principal(
        sub="s",
        org=None if kind == "patient" else "RAT",
        role="R8000" if kind == "user" else None,
        scopes=parse_scopes(" ".join(scopes)),
        client_kind=kind,  # type: ignore[arg-type]
        patient="9991000003" if kind == "patient" else None,
    )


SCOPE_TABLE: list[tuple[str, tuple[str, ...], str, str, bool]] = [
    # kind, scopes, resource type, interaction, allowed
    ("user", ("user/CarePlan.rs",), "CarePlan", "read", True),
    ("user", ("user/CarePlan.rs",), "CarePlan", "search", True),
    ("user", ("user/CarePlan.rs",), "CarePlan", "create", False),
    ("user", ("user/CarePlan.rs",), "Patient", "read", False),
    ("user", ("user/CarePlan.r",), "CarePlan", "search", False),
    ("user", ("user/CarePlan.s",), "CarePlan", "read", False),
    ("user", ("user/*.rs",), "Patient", "read", True),
    ("user", ("user/*.rs",), "AuditEvent", "search", True),
    ("user", ("user/*.rs",), "Consent", "create", False),
    ("user", ("user/Consent.cruds",), "Consent", "create", True),
    ("user", ("user/Consent.cruds",), "Consent", "update", True),
    ("user", ("user/Consent.cruds",), "Consent", "delete", True),
    ("user", ("user/Consent.cu",), "Consent", "delete", False),
    # v1
    ("user", ("user/CarePlan.read",), "CarePlan", "read", True),
    ("user", ("user/CarePlan.read",), "CarePlan", "search", True),
    ("user", ("user/CarePlan.read",), "CarePlan", "update", False),
    ("user", ("user/*.write",), "Consent", "create", True),
    ("user", ("user/*.write",), "Consent", "update", True),
    ("user", ("user/*.write",), "Consent", "read", False),
    ("user", ("user/*.*",), "Consent", "delete", True),
    ("user", ("user/*.*",), "CarePlan", "search", True),
    # contexts: user/ only for users, system/ only for system clients, patient/ for the person
    ("user", ("system/*.cruds",), "CarePlan", "read", False),
    ("system", ("user/*.cruds",), "CarePlan", "read", False),
    ("system", ("system/Patient.rs",), "Patient", "search", True),
    ("system", ("system/Patient.rs",), "CarePlan", "search", False),
    ("system", ("system/*.rs",), "CarePlan", "read", True),
    ("user", ("patient/*.rs",), "CarePlan", "read", False),
    ("system", ("patient/*.rs",), "CarePlan", "read", False),
    ("patient", ("patient/*.rs",), "CarePlan", "read", True),
    ("patient", ("patient/Consent.crus",), "Consent", "update", True),
    ("patient", ("patient/Consent.crs",), "Consent", "update", False),
    ("patient", ("user/*.cruds",), "CarePlan", "read", False),
    ("patient", ("system/*.rs",), "CarePlan", "read", False),
    # combinations
    ("user", ("user/CarePlan.rs", "user/Consent.c"), "Consent", "create", True),
    ("user", ("openid", "fhirUser"), "Patient", "read", False),
    ("user", (), "Patient", "read", False),
]


@pytest.mark.parametrize(("kind", "scopes", "rtype", "interaction", "allowed"), SCOPE_TABLE)
def test_scope_table(
    kind: str, scopes: tuple[str, ...], rtype: str, interaction: str, allowed: bool
) -> None:
    p = _principal(kind, *scopes)
    assert has_scope(p, rtype, interaction) is allowed  # type: ignore[arg-type]
    if allowed:
        require_scope(p, rtype, interaction)  # type: ignore[arg-type]
    else:
        with pytest.raises(Forbidden) as info:
            require_scope(p, rtype, interaction)  # type: ignore[arg-type]
        assert info.value.reasons == ("scope-insufficient",)
        assert info.value.status == 403


def test_scopes_from_a_real_token(key: Key, verifier: TokenVerifier) -> None:
    p = verifier.verify(token_for(key, scopes=("user/CarePlan.read", "user/Consent.cruds")))
    require_scope(p, "CarePlan", "search")
    require_scope(p, "Consent", "update")
    with pytest.raises(Forbidden):
        require_scope(p, "Patient", "read")


def test_unknown_interaction_is_never_allowed() -> None:
    assert has_scope(_principal("user", "user/*.*"), "CarePlan", "patch") is False  # type: ignore[arg-type]


# --- purpose of use ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("default", "header", "expected"),
    [
        ("TREAT", None, "TREAT"),
        ("TREAT", "", "TREAT"),
        ("TREAT", "  ", "TREAT"),
        ("TREAT", "CAREMGT", "CAREMGT"),
        (None, "ETREAT", "ETREAT"),
        (None, " HOPERAT ", "HOPERAT"),
        ("TREAT", "HOPERAT", "HOPERAT"),
    ],
)
def test_resolve_purpose(default: str | None, header: str | None, expected: str) -> None:
    p = Principal(sub="s", org="RAT", role="R8000", scopes=frozenset(), default_purpose=default)
    assert resolve_purpose(p, header) == expected


@pytest.mark.parametrize("header", [None, "", "   "])
def test_purpose_missing(header: str | None) -> None:
    p = Principal(sub="s", org="RAT", role="R8000", scopes=frozenset())
    with pytest.raises(Forbidden) as info:
        resolve_purpose(p, header)
    assert info.value.reasons == ("purpose-missing",)


@pytest.mark.parametrize(
    ("default", "header"),
    [
        (None, "treat"),  # HL7 codes are case-sensitive
        (None, "BTG"),  # break-glass is ETREAT + a reason, not a purpose code
        (None, "MARKETING<script>"),
        ("TREAT", "TREAT,ETREAT"),
        ("NOPE", None),  # an unknown default in the token
    ],
)
def test_purpose_not_permitted(default: str | None, header: str | None) -> None:
    p = Principal(sub="s", org="RAT", role="R8000", scopes=frozenset(), default_purpose=default)
    with pytest.raises(Forbidden) as info:
        resolve_purpose(p, header)
    assert info.value.reasons == ("purpose-not-permitted",)
    if header:
        assert header not in info.value.message


def test_purpose_vocabulary_covers_the_policy_purposes() -> None:
    assert {"TREAT", "ETREAT", "CAREMGT", "HOPERAT", "HPAYMT", "HRESCH", "PUBHLTH", "PATRQT"} <= (
        set(PURPOSES_OF_USE)
    )


# --- issuing (dev / demo) ---------------------------------------------------------------------


def test_generate_signing_key_shape(key: Key) -> None:
    assert key.pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    jwk = key.jwk
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in jwk
    assert jwk["kid"] == jwk_thumbprint(jwk)
    assert jwks_from_private_pem(key.pem) == {"keys": [jwk]}


def test_rfc7638_thumbprint_example() -> None:
    """The worked example of RFC 7638 §3.1."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhA"
        "I4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_issue_token_claims(key: Key) -> None:
    now = int(time.time())
    token = token_for(key, now=now, ttl_s=120, purpose=None, name=None)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": key.jwk["kid"], "typ": "JWT"}
    body = jwt.decode(token, options={"verify_signature": False})
    assert body["iat"] == body["nbf"] == now and body["exp"] == now + 120
    assert body["scope"] == "user/*.rs" and body["client_kind"] == "user"
    assert "purpose_of_use" not in body and "name" not in body


def test_load_jwks_file(tmp_path: Any, key: Key) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(key.jwks), encoding="utf-8")
    v = TokenVerifier(issuer=ISS, audience=AUD, jwks=load_jwks_file(str(path)))
    assert v.verify(token_for(key)).org == "RAT"
    (tmp_path / "bad.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError):
        load_jwks_file(str(tmp_path / "bad.json"))


def test_jwks_with_only_unusable_keys_is_refused(key: Key) -> None:
    hmac_jwk = {"kty": "oct", "k": b64(b"secret"), "kid": "h"}
    enc_jwk = {**key.jwk, "use": "enc"}
    with pytest.raises(ValueError):
        TokenVerifier(issuer=ISS, audience=AUD, jwks={"keys": [hmac_jwk, enc_jwk]})


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"jwks": {"keys": []}, "jwks_url": "https://idp.example/jwks"},
        {"jwks_url": "http://idp.example/jwks"},  # plain http off loopback
        {"jwks_url": "file:///etc/passwd"},
    ],
)
def test_verifier_configuration_errors(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TokenVerifier(issuer=ISS, audience=AUD, **kw)


def test_only_rs_es_algorithms_configurable(key: Key) -> None:
    with pytest.raises(ValueError):
        TokenVerifier(issuer=ISS, audience=AUD, jwks=key.jwks, algorithms=["ES256", "HS256"])
    es384_only = TokenVerifier(issuer=ISS, audience=AUD, jwks=key.jwks, algorithms=["ES384"])
    assert reject(es384_only, token_for(key)).reason == "alg-not-allowed"


# --- JWKS over HTTP (a real server on 127.0.0.1) ----------------------------------------------


@dataclass
class JwksServer:
    url: str
    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    hits: int = 0


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            state.hits += 1
            body = json.dumps(state.document).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def remote(server: JwksServer, clock: Callable[[], float], **kw: Any) -> TokenVerifier:
    return TokenVerifier(
        issuer=ISS,
        audience=AUD,
        jwks_url=server.url,
        jwks_ttl_s=300,
        jwks_min_refresh_s=30,
        clock=clock,
        **kw,
    )


def test_jwks_url_fetch_and_cache(jwks_server: JwksServer, key: Key) -> None:
    jwks_server.document = key.jwks
    clock = Clock()
    v = remote(jwks_server, clock)
    try:
        for _ in range(3):
            assert v.verify(token_for(key)).org == "RAT"
        assert jwks_server.hits == 1  # cached
        clock.now += 301  # past the TTL
        assert v.verify(token_for(key)).org == "RAT"
        assert jwks_server.hits == 2
    finally:
        v.close()


def test_jwks_url_key_rotation_refreshes_once(
    jwks_server: JwksServer, key: Key, other_key: Key, rsa_key: Key
) -> None:
    jwks_server.document = key.jwks
    clock = Clock()
    v = remote(jwks_server, clock)
    try:
        assert v.verify(token_for(key)).sub
        assert jwks_server.hits == 1
        clock.now += 31
        # the issuer rotates: new key published, a token under it arrives
        jwks_server.document = {"keys": [key.jwk, other_key.jwk]}
        assert v.verify(token_for(other_key)).sub
        assert jwks_server.hits == 2  # exactly one refresh for the unknown kid
        # a made-up kid right after: no new fetch inside the minimum interval
        assert reject(v, token_for(rsa_key)).reason == "unknown-kid"
        assert reject(v, token_for(rsa_key)).reason == "unknown-kid"
        assert jwks_server.hits == 2
        # after the interval, one more attempt, still unknown
        clock.now += 31
        assert reject(v, token_for(rsa_key)).reason == "unknown-kid"
        assert jwks_server.hits == 3
        # the old key is retired at the issuer
        jwks_server.document = other_key.jwks
        clock.now += 301
        assert reject(v, token_for(key)).reason == "unknown-kid"
        assert v.verify(token_for(other_key)).sub
    finally:
        v.close()


def test_jwks_url_outage_keeps_known_keys(jwks_server: JwksServer, key: Key) -> None:
    jwks_server.document = key.jwks
    clock = Clock()
    v = remote(jwks_server, clock)
    try:
        assert v.verify(token_for(key)).sub
        jwks_server.status = 500
        clock.now += 301
        assert v.verify(token_for(key)).sub  # stale keys still verify
        assert jwks_server.hits == 2
    finally:
        v.close()


def test_jwks_url_never_answering(jwks_server: JwksServer, key: Key) -> None:
    jwks_server.status = 503
    v = remote(jwks_server, Clock())
    try:
        token = token_for(key)
        assert reject(v, token).reason == "keys-unavailable"
        assert reject(v, token).reason == "keys-unavailable"
        assert jwks_server.hits == 1  # rate-limited retries
    finally:
        v.close()


def test_jwks_url_unreachable(key: Key) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    v = TokenVerifier(
        issuer=ISS, audience=AUD, jwks_url=f"http://127.0.0.1:{port}/jwks", jwks_timeout_s=2
    )
    try:
        assert reject(v, token_for(key)).reason == "keys-unavailable"
    finally:
        v.close()


async def test_averify_fetches_off_the_event_loop(jwks_server: JwksServer, key: Key) -> None:
    jwks_server.document = key.jwks
    v = remote(jwks_server, Clock())
    try:
        p = await v.averify(token_for(key))
        assert p.org == "RAT" and jwks_server.hits == 1
        assert (await v.averify(token_for(key))).org == "RAT"
        assert jwks_server.hits == 1
    finally:
        v.close()


# --- the person themself (client_kind patient) -------------------------------------------


def _patient_claims(**over: Any) -> dict[str, Any]:
    base = claims(
        sub="nhs-login-sub-1",
        org=None,
        role=None,
        client_kind="patient",
        patient="9991000003",
        fhirUser="Patient/9991000003",
        identity_proofing_level="P9",
        scope="patient/*.rs",
        purpose_of_use=None,
    )
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_a_patient_token_names_the_person_and_no_organisation(
    key: Key, verifier: TokenVerifier
) -> None:
    p = verifier.verify(signed(key, _patient_claims()))
    assert (p.client_kind, p.patient, p.proofing_level) == ("patient", "9991000003", "P9")
    assert p.org is None and p.role is None
    assert p.default_purpose == "PATRQT"  # the person's own request unless stated
    unproven = verifier.verify(signed(key, _patient_claims(identity_proofing_level=None)))
    assert unproven.proofing_level == "P0"


@pytest.mark.parametrize(
    "over",
    [
        {"patient": None},  # whose record?
        {"patient": "9991000004"},  # fails Modulus 11
        {"patient": ["9991000003"]},
        {"fhirUser": "Patient/9991000070"},  # another person
        {"org": "F81001"},  # acts for nobody but the person
        {"role": "R8000"},
        {"identity_proofing_level": "P7"},
    ],
)
def test_unusable_patient_tokens(key: Key, verifier: TokenVerifier, over: dict[str, Any]) -> None:
    assert reject(verifier, signed(key, _patient_claims(**over))).reason in {
        "invalid-claim",
        "missing-claim",
    }

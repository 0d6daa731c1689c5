"""Clients, keys and small helpers for the SMART tests (a real gateway on loopback)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from consent import load_policy
from gateway.auth import jwks_from_private_pem
from gateway.smart import SmartConfig
from gateway.smart.clients import Client, ClientRegistry
from gateway.smart.keys import SigningKeys
from gateway.smart.picker import DemoDirectory
from simulators.population import SCENARIOS
from tests.gateway.harness import Gateway

APP_REDIRECT = "http://127.0.0.1:9/app/callback"  # never served: tests read the Location
EHR_ORG = "F81001"  # the GP practice of the scenario person held by both sources


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class ClientKey:
    pem: bytes
    kid: str
    alg: str
    jwk: dict[str, Any]


def client_key(kind: str = "ec") -> ClientKey:
    if kind == "ec":
        pem = _pem(ec.generate_private_key(ec.SECP384R1()))
        alg = "ES384"
    else:
        pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        alg = "RS384"
    jwk = jwks_from_private_pem(pem)["keys"][0]
    jwk["alg"] = alg
    return ClientKey(pem, jwk["kid"], alg, jwk)


EHR_KEY = client_key("ec")
CONFIDENTIAL_KEY = client_key("rsa")
OTHER_KEY = client_key("ec")  # registered to nobody


def clients() -> list[Client]:
    scopes_app = ("launch", "launch/patient", "openid", "fhirUser", "user/*.rs", "patient/*.rs")
    return [
        Client("app", "Test app (public)", "public", (APP_REDIRECT,), scopes_app),
        Client(
            "conf-app",
            "Test app (confidential-asymmetric)",
            "confidential-asymmetric",
            (APP_REDIRECT,),
            scopes_app,
            jwks={"keys": [CONFIDENTIAL_KEY.jwk]},
        ),
        Client(
            "ehr",
            "Trust EPR (backend)",
            "backend",
            (),
            ("system/*.rs", "system/launch.c"),
            org=EHR_ORG,
            jwks={"keys": [EHR_KEY.jwk]},
        ),
    ]


BOTH = SCENARIOS["both"].nhs_number or ""


def directory() -> DemoDirectory:
    policy = load_policy()
    return DemoDirectory(
        roles={code: rule.name for code, rule in policy.roles.items()},
        organisations={"F81001": "GP practice (demo)", "RAT": "Community trust (demo)"},
        people=[(BOTH, "held by both sources")],
    )


def smart_config(base_url: str) -> SmartConfig:
    return SmartConfig(
        fhir_base=base_url,
        keys=SigningKeys.generate(),
        clients=ClientRegistry(clients()),
        directory=directory(),
    )


def auth_url(gw: Gateway, name: str) -> str:
    return gw.base_url.removesuffix("/fhir") + f"/auth/{name}"


def assertion(
    gw: Gateway,
    key: ClientKey = EHR_KEY,
    client_id: str = "ehr",
    *,
    aud: str | None = None,
    exp_in: int = 240,
    jti: str | None = None,
    alg: str | None = None,
    kid: str | None = None,
    sign_key: Any = None,
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud or auth_url(gw, "token"),
        "exp": now + exp_in,
        "iat": now,
        "jti": jti or uuid.uuid4().hex,
    }
    private: Any = (
        sign_key if sign_key is not None else serialization.load_pem_private_key(key.pem, None)
    )
    return jwt.encode(claims, private, algorithm=alg or key.alg, headers={"kid": kid or key.kid})


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def post_token(gw: Gateway, **form: str) -> httpx.Response:
    return await gw.client.post(auth_url(gw, "token"), data=form)


async def system_token(gw: Gateway, scope: str = "system/*.rs system/launch.c") -> dict[str, Any]:
    resp = await post_token(
        gw,
        grant_type="client_credentials",
        scope=scope,
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=assertion(gw),
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def create_launch(gw: Gateway, **context: Any) -> str:
    token = (await system_token(gw))["access_token"]
    body = {
        "sub": "dr-ehr-0001",
        "name": "Dr Launch",
        "role": "R8000",
        "org": "F81001",
        "purpose_of_use": "TREAT",
        **context,
    }
    resp = await gw.client.post(
        auth_url(gw, "launch"), json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 201, resp.text
    launch: str = resp.json()["launch"]
    return launch


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorize_params(gw: Gateway, challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "app",
        "redirect_uri": APP_REDIRECT,
        "scope": "launch openid fhirUser user/*.rs",
        "state": secrets.token_urlsafe(8),
        "aud": gw.base_url,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


async def authorize(gw: Gateway, params: dict[str, str]) -> httpx.Response:
    return await gw.client.get(auth_url(gw, "authorize"), params=params, follow_redirects=False)


def location_params(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith(APP_REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def ehr_code(gw: Gateway, **context: Any) -> tuple[str, str]:
    """Launch, authorize, and return (code, code_verifier)."""
    launch = await create_launch(gw, **context)
    verifier, challenge = pkce()
    params = authorize_params(gw, challenge, launch=launch)
    got = location_params(await authorize(gw, params))
    assert got["state"] == params["state"]
    return got["code"], verifier


def pending_of(page: httpx.Response) -> str:
    """The pending sign-in the demo picker's page carries in its form."""
    pending = re.search(r'name="pending" value="([^"]+)"', page.text)
    assert pending is not None
    return pending.group(1)


def code_of(answer: httpx.Response) -> str:
    """The authorization code in the redirect the sign-in answered with."""
    code = re.search(r"[?&]code=([^&]+)", answer.headers["location"])
    assert code is not None
    return code.group(1)


async def login_as_person(gw: Gateway, pending: str, person: str, level: str) -> httpx.Response:
    """The picker's form sent for ``person`` (an NHS number) proofed to ``level``."""
    return await gw.client.post(
        auth_url(gw, "login"),
        data={"pending": pending, "as": "person", "person": person, "proofing": level},
    )


@dataclass(frozen=True)
class PersonLogin:
    """A person's sign-in through the demo picker: the PKCE verifier, the pending sign-in
    and the picker's answer (a redirect carrying the code, when it succeeds)."""

    verifier: str
    pending: str
    answer: httpx.Response


async def person_login(gw: Gateway, person: str, level: str, scope: str) -> PersonLogin:
    verifier, challenge = pkce()
    page = await authorize(gw, authorize_params(gw, challenge, scope=scope))
    pending = pending_of(page)
    return PersonLogin(verifier, pending, await login_as_person(gw, pending, person, level))


async def redeem(gw: Gateway, code: str, verifier: str, client_id: str = "app") -> httpx.Response:
    return await post_token(
        gw,
        grant_type="authorization_code",
        code=code,
        redirect_uri=APP_REDIRECT,
        client_id=client_id,
        code_verifier=verifier,
    )


async def security_events(gw: Gateway, **filters: Any) -> list[dict[str, Any]]:
    """The audit trail's security events (DICOM 110114 / 110113), newest first."""
    events = await gw.audit.search(count=200, **filters)
    return [
        e
        for e in events
        if e["type"].get("system") == "http://dicom.nema.org/resources/ontology/DCM"
    ]

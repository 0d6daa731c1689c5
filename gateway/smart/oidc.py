"""Standalone login through an upstream OpenID Connect provider: NHS CIS2 or NHS login.

``CAREGW_OIDC_ISSUER``, ``CAREGW_OIDC_CLIENT_ID`` and ``CAREGW_OIDC_CLIENT_KEY_FILE`` (a PEM
private key: the gateway authenticates to the provider with ``private_key_jwt``, as NHS
login requires; the provider holds its public half) turn it on. The flow, for an app's
authorization request without ``launch=``:

1. the request waits in ``smart_pending`` under a secret ``P``; the person is sent to the
   provider's authorization endpoint with ``state=P`` and PKCE S256. The PKCE verifier and the
   ``nonce`` are derived from ``P`` (HMAC-free SHA-256 of a label and ``P``), so nothing
   secret is stored: the table holds only ``P``'s digest;
2. back at ``/auth/oidc/callback`` the code is exchanged (``private_key_jwt``), the ID token
   verified against the provider's JWKS (``iss``, ``aud``, ``exp``, ``nonce``), and the
   userinfo read when the ID token lacks the identity claims;
3. the identity becomes a :class:`~gateway.smart.tokens.Grantee`: ``nhs_number`` (NHS
   login) makes a person with their ``identity_proofing_level``; ``nhsid_nrbac_roles``
   (CIS2) makes staff, in the role ``selected_roleid`` names — or, when it names none and
   the person holds several, the role they pick on the next page (which also asks for the
   patient when the app asked for ``launch/patient``).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from gateway.auth import reduce_role
from gateway.settings import ConfigurationError, Settings
from gateway.smart.keys import PrivateKey, load_private_key

DEFAULT_SCOPE = "openid profile nationalrbacaccess selectedrole nhs_number"
_TIMEOUT = httpx.Timeout(10.0)


class UpstreamError(Exception):
    """The provider's answer cannot be used; the message is safe to show and to audit."""


def derive(secret: str, label: str) -> str:
    digest = hashlib.sha256(f"{label}|{secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class StaffRole:
    role_id: str  # CIS2 person_roleid
    role: str  # the R code
    org: str  # ODS code


@dataclass(frozen=True)
class UpstreamIdentity:
    sub: str
    name: str | None
    nhs_number: str | None = None
    proofing_level: str | None = None
    roles: tuple[StaffRole, ...] = ()
    selected: StaffRole | None = None


def _algorithm_for(key: PrivateKey) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES384" if key.curve.name == "secp384r1" else "ES256"
    return "RS384"


@dataclass
class UpstreamOidc:
    issuer: str
    client_id: str
    key: PrivateKey
    key_id: str
    scope: str = DEFAULT_SCOPE
    _metadata: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamOidc:
        from gateway.auth import jwks_from_private_pem

        if not settings.oidc_client_id:
            raise ConfigurationError("CAREGW_OIDC_CLIENT_ID is required with CAREGW_OIDC_ISSUER")
        if settings.oidc_client_key_file is None:
            raise ConfigurationError(
                "CAREGW_OIDC_CLIENT_KEY_FILE is required with CAREGW_OIDC_ISSUER (private_key_jwt)"
            )
        try:
            pem = settings.oidc_client_key_file.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"CAREGW_OIDC_CLIENT_KEY_FILE: cannot read: {exc.strerror}"
            ) from None
        key = load_private_key(pem, "CAREGW_OIDC_CLIENT_KEY_FILE")
        return cls(
            issuer=settings.oidc_issuer.rstrip("/") if settings.oidc_issuer else "",
            client_id=settings.oidc_client_id,
            key=key,
            key_id=str(jwks_from_private_pem(pem)["keys"][0]["kid"]),
            scope=settings.oidc_scope or DEFAULT_SCOPE,
        )

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=_TIMEOUT) as http:
                response = await http.get(url)
            if response.status_code != 200:
                raise UpstreamError("The identity provider's discovery document is unavailable.")
            data = response.json()
            if data.get("issuer", "").rstrip("/") != self.issuer:
                raise UpstreamError("The identity provider's discovery names another issuer.")
            self._metadata = data
        return self._metadata

    async def authorize_url(self, pending: str, callback: str) -> str:
        meta = await self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": callback,
            "scope": self.scope,
            "state": pending,
            "nonce": derive(pending, "nonce"),
            "code_challenge": s256(derive(pending, "pkce")),
            "code_challenge_method": "S256",
        }
        return f"{meta['authorization_endpoint']}?{urlencode(query)}"

    def client_assertion(self, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self.key, algorithm=_algorithm_for(self.key), headers={"kid": self.key_id}
        )

    async def identity(self, code: str, pending: str, callback: str) -> UpstreamIdentity:
        """Exchange the code, verify the ID token, and read who signed in."""
        meta = await self.metadata()
        async with httpx.AsyncClient(timeout=_TIMEOUT) as http:
            token = await http.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": callback,
                    "code_verifier": derive(pending, "pkce"),
                    "client_id": self.client_id,
                    "client_assertion_type": (
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    ),
                    "client_assertion": self.client_assertion(meta["token_endpoint"]),
                },
            )
            if token.status_code != 200:
                raise UpstreamError("The identity provider refused the code exchange.")
            body = token.json()
            claims = await self._verified_id_token(http, meta, str(body.get("id_token", "")))
            if claims.get("nonce") != derive(pending, "nonce"):
                raise UpstreamError("The ID token's nonce does not match this sign-in.")
            if "nhs_number" not in claims and "nhsid_nrbac_roles" not in claims:
                info = await http.get(
                    meta["userinfo_endpoint"],
                    headers={"Authorization": f"Bearer {body.get('access_token', '')}"},
                )
                if info.status_code == 200 and info.json().get("sub") == claims["sub"]:
                    claims = {**info.json(), **claims}
        return identity_from_claims(claims)

    async def _verified_id_token(
        self, http: httpx.AsyncClient, meta: dict[str, Any], id_token: str
    ) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError:
            raise UpstreamError("The identity provider sent no usable ID token.") from None
        if header.get("alg") not in ("RS256", "RS384", "ES256", "ES384", "PS256"):
            raise UpstreamError("The ID token's signing algorithm is not accepted.")
        keys = (await http.get(meta["jwks_uri"])).json().get("keys", [])
        jwk = next((k for k in keys if k.get("kid") == header.get("kid")), None)
        if jwk is None:
            raise UpstreamError("The ID token is signed with a key the provider does not list.")
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                jwt.PyJWK(jwk).key,
                algorithms=[header["alg"]],
                audience=self.client_id,
                issuer=meta["issuer"],
                leeway=60,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.InvalidTokenError:
            raise UpstreamError("The ID token does not verify.") from None
        return claims


def identity_from_claims(claims: dict[str, Any]) -> UpstreamIdentity:
    """NHS login (``nhs_number``) or CIS2 (``nhsid_nrbac_roles``, ``selected_roleid``)."""
    sub = str(claims["sub"])
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    if isinstance(claims.get("nhs_number"), str):
        level = claims.get("identity_proofing_level")
        return UpstreamIdentity(
            sub=sub,
            name=name,
            nhs_number=claims["nhs_number"].replace(" ", ""),
            proofing_level=level if level in ("P0", "P5", "P9") else "P0",
        )
    roles: list[StaffRole] = []
    for entry in claims.get("nhsid_nrbac_roles") or []:
        if not isinstance(entry, dict):
            continue
        role = reduce_role(str(entry.get("role_code", "")))
        org, role_id = entry.get("org_code"), entry.get("person_roleid")
        if role and isinstance(org, str) and isinstance(role_id, str):
            roles.append(StaffRole(role_id=role_id, role=role, org=org))
    if not roles:
        raise UpstreamError("The signed-in identity carries neither an NHS number nor a role.")
    chosen = next((r for r in roles if r.role_id == claims.get("selected_roleid")), None)
    if chosen is None and len(roles) == 1:
        chosen = roles[0]
    return UpstreamIdentity(sub=sub, name=name, roles=tuple(roles), selected=chosen)

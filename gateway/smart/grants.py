"""The grants (authorization code with PKCE S256, client credentials) and the token endpoints
(introspection, revocation) on Authlib's classes, wired to our store and registry."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from gateway.smart.clients import BEARER_SYSTEM_TOKEN, PRIVATE_KEY_JWT, Client
from gateway.smart.context import (
    SmartRequest,
    note_grantee,
    request_event,
)
from gateway.smart.scopes import registered_subset
from gateway.smart.store import CODE_TTL
from gateway.smart.tokens import Grantee, id_token_claims

if TYPE_CHECKING:
    from gateway.smart.server import SmartServer


class AuthCode:
    """A stored authorization code, as Authlib's grant asks for it."""

    def __init__(self, secret: str, data: dict[str, Any]) -> None:
        self.secret = secret
        self.data = data
        self.code_challenge = data["code_challenge"]
        self.code_challenge_method = data["code_challenge_method"]

    def get_redirect_uri(self) -> str:
        return str(self.data["redirect_uri"])

    def get_scope(self) -> str:
        return str(self.data["scope"])


class IssuedToken:
    """One of our access tokens, decoded, for introspection and revocation."""

    def __init__(self, claims: dict[str, Any], revoked: bool) -> None:
        self.claims = claims
        self.revoked = revoked

    def check_client(self, client: Client) -> bool:
        return bool(self.claims.get("client_id") == client.client_id)

    def is_expired(self) -> bool:
        return int(self.claims.get("exp", 0)) <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked


# --- grants ---------------------------------------------------------------------------------


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE, always, with ``S256`` (``plain`` is refused, as SMART 2.2 says)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "code_challenge is required (PKCE with code_challenge_method S256).",
                redirect_uri=redirect_uri,
            )
        method = data.get("code_challenge_method")
        if method != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256 (plain is not accepted)."
                if method
                else "code_challenge_method is required and must be S256.",
                redirect_uri=redirect_uri,
            )
        super().validate_code_challenge(grant, redirect_uri)


def _check_registered(grant: Any) -> None:
    client: Client = grant.request.client
    asked = (grant.request.payload.scope or "").split()
    if not asked:
        raise InvalidScopeError("scope is required.")
    beyond = [s for s in asked if s not in registered_subset([s], client.scopes)]
    if beyond:
        raise InvalidScopeError(
            f"scope {' '.join(beyond)} is beyond what client {client.client_id} is registered for."
        )


class AuthCodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", PRIVATE_KEY_JWT]
    server: SmartServer

    def validate_requested_scope(self) -> None:
        _check_registered(self)

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        aud = self.request.payload.data.get("aud")
        if aud is None or aud.rstrip("/") != self.server.config.fhir_base:
            raise InvalidRequestError(
                f"aud must be this server's FHIR base URL {self.server.config.fhir_base}.",
                redirect_uri=redirect_uri,
                state=self.request.payload.state,
            )
        return redirect_uri

    def save_authorization_code(self, code: str, request: SmartRequest) -> None:
        data = request.payload.data
        grantee: Grantee = request.user
        record = {
            "client_id": request.client.client_id,
            "redirect_uri": data["redirect_uri"],
            # Authlib re-validates the request (scope = asked ∩ registered) just before
            # this; the policy's narrowing for this person is applied here, once.
            "scope": self.server.grant_scopes(request.scope or "", grantee),
            "code_challenge": data["code_challenge"],
            "code_challenge_method": data["code_challenge_method"],
            "nonce": data.get("nonce"),
            "grantee": grantee.to_data(),
        }
        self.server.wait(self.server.store.put("code", record, CODE_TTL, secret=code))

    def query_authorization_code(self, code: str, client: Client) -> AuthCode:
        found = self.server.wait(self.server.store.peek("code", code))
        if found is None:
            state, data = self.server.wait(self.server.store.state_of("code", code))
            if data is not None and data.get("client_id") == client.client_id:
                note_grantee(request_event(), Grantee.from_data(data["grantee"]))
            raise InvalidGrantError(
                {
                    "used": "The authorization code has already been used.",
                    "expired": "The authorization code has expired (codes live 60 seconds).",
                }.get(state, "The authorization code is not known.")
            )
        if found["client_id"] != client.client_id:
            raise InvalidGrantError("The authorization code was issued to another client.")
        return AuthCode(code, found)

    def authenticate_user(self, authorization_code: AuthCode) -> Grantee:
        # Single use: the conditional UPDATE decides between two concurrent redemptions.
        redeemed = self.server.wait(self.server.store.redeem("code", authorization_code.secret))
        if redeemed is None:
            raise InvalidGrantError("The authorization code has already been used.")
        return Grantee.from_data(redeemed["grantee"])

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        """Nothing to do: :meth:`authenticate_user` redeemed it."""

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        status, token, headers = super().create_token_response()
        code: AuthCode = self.request.authorization_code
        grantee: Grantee = self.request.user
        scope = code.get_scope().split()
        if "openid" in scope and "fhirUser" in scope:
            now = int(time.time())
            token["id_token"] = self.server.config.keys.sign(
                id_token_claims(
                    self.server.config,
                    client_id=self.request.client.client_id,
                    grantee=grantee,
                    nonce=code.data.get("nonce"),
                    now=now,
                )
            )
        if grantee.patient:
            token["patient"] = grantee.patient
        token["need_patient_banner"] = True
        return status, token, headers


class SystemGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [PRIVATE_KEY_JWT]

    def validate_requested_scope(self) -> None:
        _check_registered(self)


# --- introspection and revocation -----------------------------------------------------------


class _OwnTokens:
    server: SmartServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        claims = self.server.decode_own(token_string, verify_exp=False)
        if claims is None:
            return None
        jti = str(claims.get("jti", ""))
        revoked = bool(jti) and self.server.wait(self.server.store.is_revoked(jti))
        return IssuedToken(claims, revoked)


class Introspection(_OwnTokens, IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = [PRIVATE_KEY_JWT, BEARER_SYSTEM_TOKEN]

    def check_permission(self, token: IssuedToken, client: Client, request: Any) -> bool:
        return client.kind == "backend"

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        keep = (
            "scope",
            "client_id",
            "sub",
            "exp",
            "iat",
            "iss",
            "aud",
            "patient",
            "fhirUser",
            "org",
            "role",
            "client_kind",
            "purpose_of_use",
        )
        payload = {k: token.claims[k] for k in keep if k in token.claims}
        payload["token_type"] = "Bearer"
        return payload


class Revocation(_OwnTokens, RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["none", PRIVATE_KEY_JWT]

    def revoke_token(self, token: IssuedToken, request: Any) -> None:
        jti = token.claims.get("jti")
        if not jti:
            return
        expires = datetime.fromtimestamp(int(token.claims.get("exp", 0)), UTC) + timedelta(
            seconds=120
        )
        self.server.wait(self.server.store.revoke(str(jti), expires))
        event = request_event()
        event.kind = "revoked"
        event.user_sub = token.claims.get("sub")
        event.user_org = token.claims.get("org")
        event.user_role = token.claims.get("role")
        event.patient = token.claims.get("patient")

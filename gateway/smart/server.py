"""The OAuth2 machinery: Authlib's authorization server, grants and endpoints, wired to us.

Authlib (``authlib.oauth2``) does the protocol — request validation, redirect URI and
response type checks, PKCE (RFC 7636), client authentication with a JWT assertion
(RFC 7523), introspection (RFC 7662), revocation (RFC 7009) and the error bodies. What is ours:

* the client registry (:mod:`gateway.smart.clients`), the tables (:mod:`gateway.smart.store`)
  and the tokens (:mod:`gateway.smart.tokens`);
* SMART's stricter rules: PKCE ``S256`` only and always, ``private_key_jwt`` with RS384 /
  ES384 only, an assertion ``exp`` at most 5 minutes ahead, a scope beyond the registration
  refused (``invalid_scope``).

Authlib's grant code is synchronous and our database is async, so every Authlib call runs in
a worker thread (``asyncio.to_thread``) and the few storage calls it makes come back to the
event loop through :meth:`SmartServer.wait` (``run_coroutine_threadsafe``). The event loop
never blocks; a request costs one thread hop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import jwt as pyjwt
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from consent import Policy
from gateway.smart.audit import SecurityEvent
from gateway.smart.clients import BEARER_SYSTEM_TOKEN, PRIVATE_KEY_JWT, Client
from gateway.smart.config import SmartConfig
from gateway.smart.scopes import allowed_for_role, registered_subset, role_resource_types
from gateway.smart.store import CODE_TTL, SmartStore
from gateway.smart.tokens import Grantee, access_token_claims, id_token_claims

T = TypeVar("T")

# Authlib logs issued tokens and codes at DEBUG ("Issue token %r to %r"): whatever level the
# site's logging is at, its loggers never go below WARNING here.
logging.getLogger("authlib").setLevel(logging.WARNING)
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME_S = 300
LEEWAY_S = 30

#: What the current /auth request has learned (its audit event), visible in worker threads.
current_event: contextvars.ContextVar[SecurityEvent | None] = contextvars.ContextVar(
    "caregateway_smart_event", default=None
)


def _event() -> SecurityEvent:
    event = current_event.get()
    return event if event is not None else SecurityEvent(endpoint="unknown")


class SmartRequest(OAuth2Request):  # type: ignore[misc]
    """An ``OAuth2Request`` built from what the FastAPI route read (form or query)."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], params: dict[str, str]
    ) -> None:
        super().__init__(method, uri, headers=dict(headers))
        self.payload = BasicOAuth2Payload(params)
        self._params = params

    @property
    def args(self) -> dict[str, str]:
        return self._params

    @property
    def form(self) -> dict[str, str]:
        return self._params


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


def note_grantee(event: SecurityEvent, grantee: Grantee) -> None:
    event.user_sub, event.user_name = grantee.sub, grantee.name
    event.user_role, event.user_org = grantee.role, grantee.org
    event.patient, event.purpose = grantee.patient, grantee.purpose


# --- client authentication ------------------------------------------------------------------


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` as SMART Backend Services profiles it (RS384 / ES384, ≤ 5 min)."""

    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, server: SmartServer) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY_S)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [self.server.config.token_endpoint]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        try:
            return client.public_keys()
        except Exception:  # a jwks_url that cannot be fetched or parsed
            raise InvalidClientError(
                description="The client's registered keys (jwks_url) cannot be obtained."
            ) from None

    def extract_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        headers, claims = super().extract_assertion(assertion)
        alg = headers.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise InvalidClientError(
                description="client_assertion must be signed with RS384 or ES384 "
                "(alg none and HMAC algorithms are refused)."
            )
        self._kid = headers.get("kid")
        if isinstance(claims.get("sub"), str):
            _event().client_id = claims["sub"] if self.server.clients.get(claims["sub"]) else None
        return headers, claims

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        keys = resolve_key if isinstance(resolve_key, KeySet) else None
        if keys is not None and self._kid is not None:
            if not any(k.kid == self._kid for k in keys.keys):
                raise InvalidClientError(
                    description="client_assertion is signed with a key (kid) that is not "
                    "registered for this client."
                )
        try:
            token = jose_jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except JoseError:
            raise InvalidClientError(
                description="client_assertion signature does not verify with the client's "
                "registered keys."
            ) from None
        self.verify_claims(token.claims)
        return dict(token.claims)

    def verify_claims(self, claims: Any) -> None:
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise InvalidClientError(description="client_assertion has no exp.")
        if exp < now - LEEWAY_S:
            raise InvalidClientError(description="client_assertion has expired.")
        if exp > now + MAX_ASSERTION_LIFETIME_S + LEEWAY_S:
            raise InvalidClientError(
                description="client_assertion exp must be at most 5 minutes ahead."
            )
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.server.config.token_endpoint not in audiences:
            raise InvalidClientError(
                description="client_assertion aud must be the token endpoint "
                f"{self.server.config.token_endpoint}."
            )
        if claims.get("iss") != claims.get("sub"):
            raise InvalidClientError(
                description="client_assertion iss and sub must both be the client_id."
            )
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise InvalidClientError(description="client_assertion has no jti.")
        super().verify_claims(claims)

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        expires = datetime.fromtimestamp(float(claims["exp"]) + LEEWAY_S, UTC)
        fresh = self.server.wait(self.server.store.record_jti(str(claims["sub"]), jti, expires))
        if not fresh:
            raise InvalidClientError(
                description="client_assertion jti has been used before (replay refused)."
            )
        return True


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
                note_grantee(_event(), Grantee.from_data(data["grantee"]))
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
        event = _event()
        event.kind = "revoked"
        event.user_sub = token.claims.get("sub")
        event.user_org = token.claims.get("org")
        event.user_role = token.claims.get("role")
        event.patient = token.claims.get("patient")


# --- the server ----------------------------------------------------------------------------


class SmartServer(AuthorizationServer):  # type: ignore[misc]
    """Our authorization server: the registry, the store, the keys, and Authlib's protocol."""

    def __init__(self, config: SmartConfig, store: SmartStore, policy: Policy) -> None:
        super().__init__(scopes_supported=None)
        self.config = config
        self.clients = config.clients
        self.store = store
        self.policy = policy
        self.loop: asyncio.AbstractEventLoop | None = None
        self.register_client_auth_method(PRIVATE_KEY_JWT, PrivateKeyJwt(self))
        self.register_client_auth_method(BEARER_SYSTEM_TOKEN, self._bearer_system_token)
        self.register_grant(AuthCodeGrant, [S256Only(required=True)])
        self.register_grant(SystemGrant)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)
        self.register_token_generator("default", self._generate_token)

    def oauth_uris(self) -> dict[str, Any]:
        from gateway.smart.discovery import oauth_uris_extension

        return oauth_uris_extension(self.config)

    # --- running Authlib off the event loop ----------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a synchronous Authlib call in a worker thread (see the module docstring)."""
        self.loop = asyncio.get_running_loop()
        return await asyncio.to_thread(fn, *args)

    def wait(self, coro: Awaitable[T]) -> T:
        """From a worker thread: run ``coro`` on the event loop and wait for its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)  # type: ignore[arg-type]

    # --- Authlib's framework hooks -------------------------------------------------------
    def query_client(self, client_id: str) -> Client | None:
        client = self.clients.get(client_id)
        event = _event()
        if client is not None and event.client_id is None:
            event.client_id = client.client_id
        return client

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Nothing to store: access tokens are self-contained signed JWTs."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        assert isinstance(request, OAuth2Request)
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals: the route writes the audit event from :data:`current_event`."""

    def validate_requested_scope(self, scope: str | None) -> None:
        """Checked per client by the grants (:func:`_check_registered`)."""

    # --- tokens ----------------------------------------------------------------------------
    def grant_scopes(self, scope: str, grantee: Grantee | None) -> str:
        """Narrow registered scopes to what the policy lets the role (or the person) have."""
        if grantee is None:
            types = role_resource_types(self.policy, None, system=True)
            narrowed = allowed_for_role(scope.split(), types | {"launch"})
        elif grantee.kind == "patient":
            narrowed = [s for s in scope.split() if not s.startswith(("user/", "system/"))]
        else:
            types = role_resource_types(self.policy, grantee.role)
            narrowed = [
                s for s in allowed_for_role(scope.split(), types) if not s.startswith("patient/")
            ]
        return " ".join(narrowed)

    def _generate_token(
        self,
        grant_type: str,
        client: Client,
        user: Grantee | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        event = _event()
        granted = scope or ""
        if grant_type == "client_credentials":
            granted = self.grant_scopes(granted, None)
            if not any(s.startswith("system/") for s in granted.split()):
                raise InvalidScopeError(
                    "No asked scope is one the access policy allows system clients."
                )
        claims = access_token_claims(
            self.config,
            client_id=client.client_id,
            scope=granted,
            grantee=user,
            system_org=client.org,
        )
        event.kind, event.grant_type, event.scope = "issued", grant_type, granted
        event.user_sub = claims["sub"]
        event.user_name, event.user_role = claims.get("name"), claims.get("role")
        event.user_org, event.patient = claims.get("org"), claims.get("patient")
        event.purpose = claims.get("purpose_of_use")
        return {
            "access_token": self.config.keys.sign(claims, typ="at+jwt"),
            "token_type": "Bearer",
            "expires_in": self.config.access_token_ttl_s,
            "scope": granted,
        }

    def decode_own(self, token: str, *, verify_exp: bool = True) -> dict[str, Any] | None:
        """The claims of an access token we issued (signature, ``iss``, ``aud``), or None."""
        try:
            header = pyjwt.get_unverified_header(token)
            key = next(
                (k for k in self.config.keys.jwks()["keys"] if k["kid"] == header.get("kid")),
                None,
            )
            if key is None or header.get("alg") != key["alg"]:
                return None
            public = pyjwt.PyJWK(key).key
            claims: dict[str, Any] = pyjwt.decode(
                token,
                public,
                algorithms=[key["alg"]],
                audience=self.config.fhir_base,
                issuer=self.config.issuer,
                options={"verify_exp": verify_exp},
            )
        except (pyjwt.InvalidTokenError, ValueError, TypeError):
            return None
        return claims

    def _bearer_system_token(self, query_client: Any, request: Any) -> Client | None:
        """Introspection caller authenticated by its own backend access token."""
        header = request.headers.get("authorization") or request.headers.get("Authorization")
        if not header or not header.lower().startswith("bearer "):
            return None
        claims = self.decode_own(header[7:].strip())
        if claims is None or claims.get("client_kind") != "system":
            raise InvalidClientError(description="The bearer token is not a valid system token.")
        jti = str(claims.get("jti", ""))
        if self.wait(self.store.is_revoked(jti)):
            raise InvalidClientError(description="The bearer token has been revoked.")
        client: Client | None = query_client(claims.get("client_id"))
        return client

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
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import jwt as pyjwt
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidScopeError,
    OAuth2Request,
)

from consent import Policy
from gateway.smart.client_auth import PrivateKeyJwt
from gateway.smart.clients import BEARER_SYSTEM_TOKEN, PRIVATE_KEY_JWT, Client
from gateway.smart.config import SmartConfig
from gateway.smart.context import request_event
from gateway.smart.grants import AuthCodeGrant, Introspection, Revocation, S256Only, SystemGrant
from gateway.smart.scopes import allowed_for_role, role_resource_types
from gateway.smart.store import SmartStore
from gateway.smart.tokens import Grantee, access_token_claims

T = TypeVar("T")

# Authlib logs issued tokens and codes at DEBUG ("Issue token %r to %r"): whatever level the
# site's logging is at, its loggers never go below WARNING here.
logging.getLogger("authlib").setLevel(logging.WARNING)

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
        event = request_event()
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
        event = request_event()
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

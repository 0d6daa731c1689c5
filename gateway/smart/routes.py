"""HTTP endpoints of the authorization server, and SMART discovery under ``/fhir``.

=====================================================  ===================================
``GET  /fhir/.well-known/smart-configuration``         discovery (no token)
``GET  /auth/jwks``                                    our public signing keys
``GET  /auth/authorize``                               EHR launch (``launch=``) or standalone
``POST /auth/login``                                   the demo identity picker's answer
``POST /auth/token``                                   authorization_code, client_credentials
``POST /auth/introspect``, ``POST /auth/revoke``       RFC 7662, RFC 7009
``POST /auth/launch``                                  an EHR creates a launch context
=====================================================  ===================================

Errors here are OAuth2's (``{"error", "error_description"}``, RFC 6749 §5.2), not
OperationOutcome: the callers are OAuth2 client libraries. An authorization request whose
client or redirect URI is not registered gets a JSON error and is never redirected; any
later problem is redirected to the (registered) redirect URI, as RFC 6749 §4.1.2.1 asks.
Every answer writes one security AuditEvent (:mod:`gateway.audit.security`) before it leaves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import structlog
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.audit import AuditUnavailable, SecurityEvent, build_security_event
from gateway.smart import launch as launch_ctx
from gateway.smart.context import SmartRequest, current_event, note_grantee
from gateway.smart.server import SmartServer
from gateway.smart.tokens import Grantee

log = structlog.get_logger("caregateway.smart")
# Not in the OpenAPI document: SMART clients find these endpoints by discovery
# (/fhir/.well-known/smart-configuration, the contract of specs/smart.md), and their errors are
# OAuth2 JSON, not the FHIR API's OperationOutcome.
router = APIRouter(include_in_schema=False)

MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _server(request: Request) -> SmartServer | None:
    state = getattr(request.app.state, "gateway", None)
    server = getattr(state, "smart", None)
    return server if isinstance(server, SmartServer) else None


def oauth_json(status: int, error: str, description: str, **extra: str) -> JSONResponse:
    body = {"error": error, "error_description": description, **extra}
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def _off() -> JSONResponse:
    return oauth_json(404, "not_found", "This gateway runs no SMART authorization server.")


def render(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    if status == 302:
        location = dict(headers)["Location"]
        return RedirectResponse(location, status_code=302, headers=NO_STORE)
    out = JSONResponse(body if isinstance(body, dict) else {}, status_code=status)
    for name, value in headers:
        if name.lower() != "content-type":
            out.headers[name] = value
    out.headers.update(NO_STORE)
    return out


def _outcome_of(response: Response) -> tuple[str | None, str | None]:
    """The OAuth2 error (code, description) an answer carries, if it is a refusal."""
    if response.status_code == 302:
        query = parse_qs(urlsplit(response.headers.get("location", "")).query)
        if "error" in query:
            return query["error"][0], query.get("error_description", [None])[0]
        return None, None
    if response.status_code >= 400 and isinstance(response, JSONResponse):
        import orjson

        body = orjson.loads(bytes(response.body))
        return body.get("error"), body.get("error_description")
    return None, None


async def finish(request: Request, event: SecurityEvent, response: Response) -> Response:
    """Write the request's security AuditEvent, then let the answer go (503 if we cannot)."""
    error, description = _outcome_of(response)
    if error:
        event.refuse(error, description)
    elif event.kind is None:
        return response  # nothing was issued, launched, revoked or refused (e.g. the picker)
    state = request.app.state.gateway
    resource = build_security_event(
        event,
        base_url=state.base_url,
        request_id=getattr(request.state, "request_id", "") or "",
        client_address=request.client.host if request.client else None,
    )
    log.info(
        "smart_event",
        endpoint=event.endpoint,
        kind=event.kind,
        error=event.error,
        client_id=event.client_id,
    )
    try:
        await state.audit.append(resource)
    except AuditUnavailable:
        return oauth_json(
            503,
            "temporarily_unavailable",
            "The event could not be recorded in the audit trail, so nothing is issued.",
        )
    return response


async def read_form(request: Request) -> dict[str, str] | JSONResponse:
    """A form-encoded body as a dict; a repeated parameter is an ``invalid_request``."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return oauth_json(400, "invalid_request", "The request body is too large.")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return oauth_json(
            400, "invalid_request", "The body must be application/x-www-form-urlencoded."
        )
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return oauth_json(400, "invalid_request", "The body is not UTF-8.")
    return _unique(pairs)


def _unique(pairs: list[tuple[str, str]]) -> dict[str, str] | JSONResponse:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            return oauth_json(400, "invalid_request", f"Parameter {name} is repeated.")
        params[name] = value
    return params


def smart_request(request: Request, params: dict[str, str]) -> SmartRequest:
    return SmartRequest(request.method, str(request.url), request.headers, params)


# --- discovery and keys ---------------------------------------------------------------------


def smart_configuration(server: SmartServer) -> dict[str, Any]:
    from gateway.smart.discovery import configuration

    return configuration(server.config)


@router.get("/fhir/.well-known/smart-configuration")
async def read_smart_configuration(request: Request) -> Response:
    server = _server(request)
    if server is None:
        return _off()
    return JSONResponse(smart_configuration(server), headers={"Cache-Control": "max-age=300"})


@router.get("/auth/jwks")
async def read_jwks(request: Request) -> Response:
    server = _server(request)
    if server is None:
        return _off()
    return JSONResponse(server.config.keys.jwks(), headers={"Cache-Control": "max-age=300"})


# --- authorization endpoint -----------------------------------------------------------------


@router.get("/auth/authorize")
async def authorize(request: Request) -> Response:
    server = _server(request)
    if server is None:
        return _off()
    params = _unique(list(request.query_params.multi_items()))
    if isinstance(params, JSONResponse):
        return params
    event = SecurityEvent(endpoint="authorize")
    current_event.set(event)
    req = smart_request(request, params)
    try:
        grant = await server.run(server.get_consent_grant, req)
    except OAuth2Error as err:
        return await finish(request, event, render(err()))
    launch = params.get("launch")
    if launch:
        response = await launch_ctx.ehr_authorize(server, req, grant, launch, event)
        return await finish(request, event, response)
    from gateway.smart.login import begin_login

    response = await begin_login(request, server, req, grant)
    return await finish(request, event, response)


async def complete_authorization(
    server: SmartServer, req: SmartRequest, grant: Any, grantee: Grantee, event: SecurityEvent
) -> Response:
    """Issue the code for ``grantee``: scopes narrowed by policy, then 302 to the app."""
    if grantee.kind == "user" and grantee.role not in server.policy.roles:
        err = AccessDeniedError(
            f"Role {grantee.role} is not one the access policy names.",
            redirect_uri=grant.redirect_uri,
            state=req.payload.state,
        )
        return render(err())
    note_grantee(event, grantee)
    result = await server.run(server.create_authorization_response, req, grantee, grant)
    return render(result)


def redirect_error(grant: Any, req: SmartRequest, description: str) -> Response:
    err = InvalidRequestError(description, redirect_uri=grant.redirect_uri, state=req.payload.state)
    return render(err())


# --- token, introspection, revocation -------------------------------------------------------


@router.post("/auth/token")
async def token(request: Request) -> Response:
    return await _form_endpoint(request, "token", _token_response)


@router.post("/auth/introspect")
async def introspect(request: Request) -> Response:
    return await _form_endpoint(request, "introspect", _endpoint_response("introspection"))


@router.post("/auth/revoke")
async def revoke(request: Request) -> Response:
    return await _form_endpoint(request, "revoke", _endpoint_response("revocation"))


_Respond = Callable[[SmartServer, SecurityEvent, SmartRequest], Awaitable[Any]]


async def _token_response(server: SmartServer, event: SecurityEvent, req: SmartRequest) -> Any:
    event.grant_type = req.form.get("grant_type")
    client_id = req.form.get("client_id")
    event.client_id = client_id if server.clients.get(client_id) else None
    return await server.run(server.create_token_response, req)


def _endpoint_response(name: str) -> _Respond:
    async def respond(server: SmartServer, event: SecurityEvent, req: SmartRequest) -> Any:
        return await server.run(server.create_endpoint_response, name, req)

    return respond


async def _form_endpoint(request: Request, label: str, respond: _Respond) -> Response:
    """The one shape of every form-posting OAuth2 endpoint: off unless the server is on, a
    security event for the attempt, the form read strictly, Authlib's answer audited."""
    server = _server(request)
    if server is None:
        return _off()
    event = SecurityEvent(endpoint=label)
    current_event.set(event)
    params = await read_form(request)
    if isinstance(params, JSONResponse):
        return await finish(request, event, params)
    result = await respond(server, event, smart_request(request, params))
    return await finish(request, event, render(result))


@router.post("/auth/launch")
async def create_launch(request: Request) -> Response:
    server = _server(request)
    if server is None:
        return _off()
    event = SecurityEvent(endpoint="launch")
    response = await launch_ctx.create_from_request(request, server, event)
    return await finish(request, event, response)

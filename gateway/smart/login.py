"""Standalone launch: the person signs in — upstream (OpenID Connect) or on the demo picker.

The app's authorization request waits in ``smart_pending`` (10 minutes) under a secret id
while the person signs in; the provider's callback (``state``) or the picker's form brings
the id back, and it is redeemed once. With an upstream provider configured it is used; the
demo, which has none, shows its identity picker (:mod:`gateway.smart.picker`).
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any

import httpx
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError
from fastapi import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from adapters import nhs_number
from gateway.audit import SecurityEvent
from gateway.smart.context import SmartRequest, current_event
from gateway.smart.oidc import StaffRole, UpstreamError, UpstreamIdentity
from gateway.smart.routes import (
    complete_authorization,
    finish,
    oauth_json,
    read_form,
    render,
    router,
    smart_request,
)
from gateway.smart.server import SmartServer
from gateway.smart.store import PENDING_TTL
from gateway.smart.tokens import Grantee

CSP = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
_EXPIRED = "The sign-in has expired or was already used; start again from the app."


def page(body: str, title: str) -> HTMLResponse:
    """A plain page: no script, no external resource, a CSP that would block any."""
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body><main>\n{body}\n</main></body></html>"
    )
    return HTMLResponse(
        document,
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
        },
    )


def deny(grant: Any, req: SmartRequest, description: str, error: str = "access_denied") -> Response:
    err = AccessDeniedError(description, redirect_uri=grant.redirect_uri, state=req.payload.state)
    err.error = error
    response: Response = render(err())
    return response


async def begin_login(
    request: Request, server: SmartServer, req: SmartRequest, grant: Any
) -> Response:
    config = server.config
    if config.upstream is None and config.directory is None:
        return deny(grant, req, "Standalone launch needs an identity provider; none is set.")
    pending = await server.store.put("pending", dict(req.payload.data), PENDING_TTL)
    if config.upstream is not None:
        try:
            url = await config.upstream.authorize_url(pending, config.endpoint("oidc/callback"))
        except (UpstreamError, httpx.HTTPError):
            return deny(
                grant, req, "The identity provider cannot be reached.", "temporarily_unavailable"
            )
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    from gateway.smart.picker import picker_page

    assert config.directory is not None
    return picker_page(config.directory, pending, req.payload.data)


async def resume(
    server: SmartServer, request: Request, params: dict[str, Any]
) -> tuple[SmartRequest, Any]:
    """The waiting authorization request, validated again (the registry may have changed)."""
    req = smart_request(request, {str(k): str(v) for k, v in params.items()})
    grant = await server.run(server.get_consent_grant, req)
    return req, grant


def _server(request: Request) -> SmartServer | None:
    server = getattr(getattr(request.app.state, "gateway", None), "smart", None)
    return server if isinstance(server, SmartServer) else None


def valid_nhs(value: str | None) -> str | None:
    digits = nhs_number.normalise(value or "")
    return digits if digits.isascii() and nhs_number.is_valid(digits) else None


@router.get("/auth/oidc/callback")
async def oidc_callback(request: Request) -> Response:
    server = _server(request)
    if server is None or server.config.upstream is None:
        return oauth_json(404, "not_found", "This gateway has no upstream sign-in.")
    upstream = server.config.upstream
    event = SecurityEvent(endpoint="login")
    current_event.set(event)
    state = request.query_params.get("state") or ""
    params = await server.store.peek("pending", state) if state else None
    if params is None or "identity" in params:
        return await finish(request, event, oauth_json(400, "invalid_request", _EXPIRED))
    try:
        req, grant = await resume(server, request, params)
    except OAuth2Error as err:
        return await finish(request, event, render(err()))
    if await server.store.redeem("pending", state) is None:
        return await finish(request, event, oauth_json(400, "invalid_request", _EXPIRED))
    if "error" in request.query_params or "code" not in request.query_params:
        return await finish(
            request, event, deny(grant, req, "The identity provider did not sign the person in.")
        )
    try:
        ident = await upstream.identity(
            request.query_params["code"], state, server.config.endpoint("oidc/callback")
        )
    except UpstreamError as exc:
        return await finish(request, event, deny(grant, req, str(exc)))
    except httpx.HTTPError:
        return await finish(
            request,
            event,
            deny(grant, req, "The identity provider cannot be reached.", "temporarily_unavailable"),
        )
    if ident.nhs_number is not None:
        nhs = valid_nhs(ident.nhs_number)
        if nhs is None:
            return await finish(request, event, deny(grant, req, "The NHS number is not valid."))
        grantee = Grantee(
            kind="patient",
            sub=nhs,
            name=ident.name,
            patient=nhs,
            proofing_level=ident.proofing_level,
            purpose="PATRQT",
        )
        return await finish(
            request, event, await complete_authorization(server, req, grant, grantee, event)
        )
    wants_patient = "launch/patient" in (req.payload.scope or "").split()
    if ident.selected is not None and not wants_patient:
        grantee = _staff(ident, ident.selected, None)
        return await finish(
            request, event, await complete_authorization(server, req, grant, grantee, event)
        )
    choice = await server.store.put(
        "pending", {"params": params, "identity": asdict(ident)}, PENDING_TTL
    )
    return choose_page(choice, ident, wants_patient)


def _staff(ident: UpstreamIdentity, role: StaffRole, patient: str | None) -> Grantee:
    return Grantee(
        kind="user",
        sub=ident.sub,
        name=ident.name,
        role=role.role,
        org=role.org,
        purpose="TREAT",
        patient=patient,
    )


def choose_page(choice: str, ident: UpstreamIdentity, wants_patient: bool) -> Response:
    roles = "".join(
        f'<p><label><input type="radio" name="role" value="{html.escape(r.role_id)}"'
        f"{' checked' if r == ident.selected or i == 0 else ''}> "
        f"{html.escape(r.role)} at {html.escape(r.org)}</label></p>"
        for i, r in enumerate(ident.roles)
    )
    patient = (
        '<p><label for="patient">Patient NHS number</label> '
        '<input name="patient" id="patient" inputmode="numeric"></p>'
        if wants_patient
        else ""
    )
    body = (
        "<h1>Choose how you are working</h1>\n"
        '<form method="post" action="choose">\n'
        f'<input type="hidden" name="pending" value="{html.escape(choice)}">\n'
        f"<fieldset><legend>Your role</legend>{roles}</fieldset>\n{patient}\n"
        '<p><button type="submit">Continue</button></p>\n</form>'
    )
    return page(body, "Choose your role")


@router.post("/auth/login/choose")
async def choose(request: Request) -> Response:
    server = _server(request)
    if server is None:
        return oauth_json(404, "not_found", "This gateway runs no SMART authorization server.")
    event = SecurityEvent(endpoint="login")
    current_event.set(event)
    form = await read_form(request)
    if isinstance(form, JSONResponse):
        return await finish(request, event, form)
    stored = await server.store.redeem("pending", form.get("pending", ""))
    if stored is None or "identity" not in stored:
        return await finish(request, event, oauth_json(400, "invalid_request", _EXPIRED))
    data = stored["identity"]
    ident = UpstreamIdentity(
        sub=data["sub"],
        name=data.get("name"),
        roles=tuple(StaffRole(**r) for r in data.get("roles", ())),
    )
    try:
        req, grant = await resume(server, request, stored["params"])
    except OAuth2Error as err:
        return await finish(request, event, render(err()))
    role = next((r for r in ident.roles if r.role_id == form.get("role")), None)
    if role is None:
        return await finish(
            request, event, deny(grant, req, "The role chosen is not one the identity holds.")
        )
    patient = None
    if "launch/patient" in (req.payload.scope or "").split():
        patient = valid_nhs(form.get("patient"))
        if patient is None:
            return await finish(
                request, event, deny(grant, req, "The patient NHS number is not valid.")
            )
    grantee = _staff(ident, role, patient)
    return await finish(
        request, event, await complete_authorization(server, req, grant, grantee, event)
    )

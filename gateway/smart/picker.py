"""The demo's identity picker: standalone launch without an identity provider.

A plain server-rendered form (no script, no CDN, a strict Content-Security-Policy): the
person says who they are — staff (a role the policy names, an organisation of the demo
population) or a person of the population for their own record (with an NHS login proofing
level). With ``launch/patient`` in the scope, staff also pick the patient. Only the demo
has it: a production gateway logs people in through ``CAREGW_OIDC_ISSUER``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from adapters import nhs_number
from gateway.audit import SecurityEvent
from gateway.smart.context import current_event
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
from gateway.smart.tokens import Grantee

CSP = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
PROOFING_LEVELS = ("P9", "P5", "P0")


@dataclass(frozen=True)
class DemoDirectory:
    """Who can be picked: roles (code → name), organisations (ODS → name), people."""

    roles: Mapping[str, str]
    organisations: Mapping[str, str]
    people: Sequence[tuple[str, str]]  # (NHS number, what the scenario shows)


def _options(items: Sequence[tuple[str, str]], name: str) -> str:
    rows = "".join(
        f'<option value="{html.escape(v)}">{html.escape(label)}</option>' for v, label in items
    )
    return f'<select name="{name}" id="{name}">{rows}</select>'


def picker_page(directory: DemoDirectory, pending: str, params: Mapping[str, str]) -> Response:
    scopes = (params.get("scope") or "").split()
    roles = [(code, f"{code} {name}") for code, name in directory.roles.items()]
    orgs = [(ods, f"{ods} {name}") for ods, name in directory.organisations.items()]
    people = [(nhs, f"{nhs} {what}") for nhs, what in directory.people]
    patient_row = (
        f'<p><label for="patient">Patient</label> {_options(people, "patient")}</p>'
        if "launch/patient" in scopes
        else ""
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>caregateway demo sign-in</title></head>
<body><main>
<h1>Sign in to {html.escape(params.get("client_id", ""))} (demo)</h1>
<p>Demo identities only: this page stands in for NHS CIS2 and NHS login.</p>
<form method="post" action="login">
<input type="hidden" name="pending" value="{html.escape(pending)}">
<fieldset><legend>Staff</legend>
<p><label for="sub">User id</label> <input name="sub" id="sub" value="demo-user-0001"></p>
<p><label for="name">Name</label> <input name="name" id="name" value="Demo User"></p>
<p><label for="role">Role</label> {_options(roles, "role")}</p>
<p><label for="org">Organisation</label> {_options(orgs, "org")}</p>
{patient_row}
<p><button type="submit" name="as" value="staff">Continue as staff</button></p>
</fieldset>
<fieldset><legend>A person, for their own record</legend>
<p><label for="person">Person</label> {_options(people, "person")}</p>
<p><label for="proofing">NHS login proofing level</label>
{_options([(p, p) for p in PROOFING_LEVELS], "proofing")}</p>
<p><button type="submit" name="as" value="person">Continue as this person</button></p>
</fieldset>
</form>
</main></body></html>"""
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
        },
    )


def _valid_nhs(value: str | None) -> str | None:
    digits = nhs_number.normalise(value or "")
    return digits if digits.isascii() and nhs_number.is_valid(digits) else None


@router.post("/auth/login")
async def login(request: Request) -> Response:
    state = getattr(request.app.state, "gateway", None)
    server = getattr(state, "smart", None)
    if not isinstance(server, SmartServer) or server.config.directory is None:
        return oauth_json(404, "not_found", "This gateway has no demo sign-in page.")
    directory = server.config.directory
    event = SecurityEvent(endpoint="login")
    current_event.set(event)
    form = await read_form(request)
    if isinstance(form, JSONResponse):
        return await finish(request, event, form)
    params = await server.store.redeem("pending", form.get("pending", ""))
    if params is None:
        return await finish(
            request,
            event,
            oauth_json(400, "invalid_request", "The sign-in has expired or was already used."),
        )
    req = smart_request(request, {str(k): str(v) for k, v in params.items()})
    grant = await server.run(server.get_consent_grant, req)
    grantee: Grantee
    if form.get("as") == "person":
        nhs = _valid_nhs(form.get("person"))
        level = form.get("proofing")
        if nhs is None or level not in PROOFING_LEVELS:
            return await finish(request, event, _redirect(grant, req, "Pick a person and level."))
        grantee = Grantee(
            kind="patient", sub=nhs, patient=nhs, proofing_level=level, purpose="PATRQT"
        )
    else:
        role, org = form.get("role", ""), form.get("org", "")
        if role not in directory.roles or org not in directory.organisations:
            return await finish(request, event, _redirect(grant, req, "Pick a role and an org."))
        patient = None
        if "launch/patient" in (req.payload.scope or "").split():
            patient = _valid_nhs(form.get("patient"))
            if patient is None:
                return await finish(request, event, _redirect(grant, req, "Pick the patient."))
        grantee = Grantee(
            kind="user",
            sub=(form.get("sub") or "demo-user-0001").strip()[:64],
            name=(form.get("name") or "").strip()[:128] or None,
            role=role,
            org=org,
            purpose="TREAT",
            patient=patient,
        )
    return await finish(
        request, event, await complete_authorization(server, req, grant, grantee, event)
    )


def _redirect(grant: object, req: object, description: str) -> Response:
    from gateway.smart.routes import redirect_error

    return redirect_error(grant, req, description)  # type: ignore[arg-type]


__all__ = ["DemoDirectory", "picker_page", "render"]

"""EHR launch: a clinician's own system creates a launch context, the app redeems it.

``POST /auth/launch`` (a backend client's token with ``system/launch.c``) or
``caregateway launch`` stores a context — who the user is (``sub``, ``name``, RBAC ``role``,
ODS ``org``), the patient (NHS number, optional) and the purpose of use — under an opaque id
that lives 5 minutes and is redeemed once (:mod:`gateway.smart.store`). The app then sends
that id as ``launch=`` to ``/auth/authorize``; because the EHR vouches for the user, the
answer is straight away a ``302`` with the code, no login page.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import JSONResponse, Response

from adapters import nhs_number
from gateway.audit import SecurityEvent
from gateway.auth import PURPOSES_OF_USE, reduce_role
from gateway.smart.context import SmartRequest
from gateway.smart.server import SmartServer
from gateway.smart.store import LAUNCH_TTL, SmartStore
from gateway.smart.tokens import Grantee

LAUNCH_SCOPE = "system/launch.c"
_FIELDS = {"sub", "name", "role", "org", "patient", "purpose_of_use"}


class LaunchError(ValueError):
    """The launch context asked for is not usable; the message says why."""


def check_context(body: Any) -> dict[str, Any]:
    """Validate a launch context (the JSON body of ``POST /auth/launch``)."""
    if not isinstance(body, dict):
        raise LaunchError("The body must be a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise LaunchError(f"Unknown field(s): {', '.join(unknown)}.")
    for name in ("sub", "role", "org"):
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise LaunchError(f"{name} is required.")
    role = reduce_role(body["role"])
    if role is None:
        raise LaunchError("role is not a usable RBAC or local role code.")
    patient: str | None = None
    if body.get("patient") is not None:
        digits = nhs_number.normalise(str(body["patient"]))
        if not (digits.isascii() and nhs_number.is_valid(digits)):
            raise LaunchError("patient is not a valid NHS number.")
        patient = digits
    purpose = body.get("purpose_of_use") or "TREAT"
    if purpose not in PURPOSES_OF_USE:
        raise LaunchError("purpose_of_use is not an HL7 v3 PurposeOfUse code.")
    display = body.get("name")
    if display is not None and not isinstance(display, str):
        raise LaunchError("name must be a string.")
    return {
        "sub": body["sub"].strip(),
        "name": display,
        "role": role,
        "org": body["org"].strip(),
        "patient": patient,
        "purpose": purpose,
    }


async def store_context(store: SmartStore, context: dict[str, Any], created_by: str) -> str:
    return await store.put("launch", {**context, "created_by": created_by}, LAUNCH_TTL)


def note_context(event: SecurityEvent, context: dict[str, Any]) -> None:
    event.user_sub, event.user_name = context["sub"], context.get("name")
    event.user_role, event.user_org = context["role"], context["org"]
    event.patient, event.purpose = context.get("patient"), context.get("purpose")


def _bearer_error(status: int, error: str, description: str) -> JSONResponse:
    challenge = f'Bearer error="{error}", error_description="{description}"'
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
    )


async def create_from_request(
    request: Request, server: SmartServer, event: SecurityEvent
) -> Response:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return _bearer_error(401, "invalid_token", "A backend services access token is required.")
    claims = server.decode_own(header[7:].strip())
    if claims is None or claims.get("client_kind") != "system":
        return _bearer_error(401, "invalid_token", "The access token is not a valid system token.")
    event.client_id = claims.get("client_id")
    if await server.store.is_revoked(str(claims.get("jti", ""))):
        return _bearer_error(401, "invalid_token", "The access token has been revoked.")
    if LAUNCH_SCOPE not in str(claims.get("scope", "")).split():
        return _bearer_error(403, "insufficient_scope", f"Creating a launch needs {LAUNCH_SCOPE}.")
    try:
        context = check_context(orjson.loads(await request.body()))
    except orjson.JSONDecodeError:
        return _bearer_error(400, "invalid_request", "The body is not JSON.")
    except LaunchError as exc:
        return _bearer_error(400, "invalid_request", str(exc))
    launch = await store_context(server.store, context, str(claims.get("client_id")))
    note_context(event, context)
    event.kind = "launch"
    return JSONResponse({"launch": launch}, status_code=201, headers={"Cache-Control": "no-store"})


async def ehr_authorize(
    server: SmartServer, req: SmartRequest, grant: Any, launch: str, event: SecurityEvent
) -> Response:
    """Authorization with ``launch=``: redeem the context, then issue the code."""
    from gateway.smart.routes import complete_authorization, redirect_error

    context = await server.store.peek("launch", launch)
    if context is None:
        state, stored = await server.store.state_of("launch", launch)
        if stored is not None:
            note_context(event, stored)  # whose launch was replayed, for the audit event
        why = {"used": "has already been used", "expired": "has expired (5 minutes)"}
        return redirect_error(grant, req, f"The launch context {why.get(state, 'is not known')}.")
    grantee = Grantee(
        kind="user",
        sub=context["sub"],
        name=context.get("name"),
        role=context["role"],
        org=context["org"],
        purpose=context.get("purpose"),
        patient=context.get("patient"),
    )
    if grantee.role not in server.policy.roles:
        return await complete_authorization(server, req, grant, grantee, event)  # access_denied
    if await server.store.redeem("launch", launch) is None:
        return redirect_error(grant, req, "The launch context has already been used.")
    return await complete_authorization(server, req, grant, grantee, event)

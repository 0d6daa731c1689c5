"""Standalone launch: the person logs in (today: the demo's identity picker).

The authorization request is kept in ``smart_pending`` (10 minutes) under an unguessable id
while the person logs in; the picker's form brings the id back (once), and the request is
completed for the person who logged in. An upstream OpenID Connect provider (CIS2, NHS
login) will plug in here the same way: its callback brings the id back as ``state``.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import AccessDeniedError
from fastapi import Request
from starlette.responses import Response

from gateway.smart.routes import render
from gateway.smart.server import SmartRequest, SmartServer
from gateway.smart.store import PENDING_TTL


async def begin_login(
    request: Request, server: SmartServer, req: SmartRequest, grant: Any
) -> Response:
    directory = server.config.directory
    if directory is None:
        err = AccessDeniedError(
            "Standalone launch needs an identity provider; this gateway has none.",
            redirect_uri=grant.redirect_uri,
            state=req.payload.state,
        )
        response: Response = render(err())
        return response
    pending = await server.store.put("pending", dict(req.payload.data), PENDING_TTL)
    from gateway.smart.picker import picker_page

    return picker_page(directory, pending, req.payload.data)

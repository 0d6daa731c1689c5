"""The middleware that takes a caller's ``traceparent`` for the request (see
:mod:`adapters.trace_context`): pure ASGI, one header lookup per request."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters import trace_context


class TraceContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"traceparent"), None)
        trace = trace_context.parse(header.decode("latin-1")) if header else None
        if trace is None:
            await self.app(scope, receive, send)
            return
        token = trace_context.set_current(trace)
        try:
            await self.app(scope, receive, send)
        finally:
            trace_context.reset(token)

"""The gateway's one error boundary: a pure ASGI middleware around the whole application.

For every HTTP request it

1. assigns the request id (the caller's ``X-Request-ID`` when sane) and binds it for logs;
2. refuses requests over the size limits (:class:`~gateway.limits.Limits`) before the
   application sees them: ``414`` path and query, ``431`` a header value or the break-glass
   reason, ``413`` a declared body; and counts the body as the application reads it
   (``413`` once past the limit, chunked bodies too: reading stops there);
3. opens the request's :class:`~gateway.audit.note.AuditNote` (``/fhir`` except the two
   documents any client reads before it has a token: ``metadata`` and SMART discovery);
4. runs the application, and turns every failure into a FHIR ``OperationOutcome``:
   :class:`~gateway.errors.GatewayError` as itself, ``SourceFault`` and an unreachable database
   as ``503``, FastAPI's validation errors as ``400``, Starlette's ``HTTPException`` (``404``,
   ``405`` with its ``Allow`` header) as its status, anything else as ``500``;
5. commits the AuditEvent with the status about to be sent (outcome ``8`` for 5xx, ``4`` for
   4xx) *before* the response starts, and answers ``503`` instead if it cannot;
6. adds ``X-Request-ID`` to every answer and writes one access log line (route template,
   status, latency; never the raw path or query).

Nothing escapes it, so the ASGI server never sees an exception: a failed request is a normal
response with a body, and keep-alive connections stay open. What is logged about a failure is
its class and where it was raised (and a database error's SQLSTATE), never its message:
driver messages carry SQL parameters and row values.

FastAPI handles some exceptions itself, inside the routes (``HTTPException``,
``RequestValidationError``); :func:`reraise` is registered for those in
:func:`gateway.app.create_app`, so they reach this boundary too.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from typing import Any, Final

import structlog
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters import nhs_number
from adapters.resilience import SourceFault
from gateway.audit import note as audit_trail
from gateway.db import database_unavailable, describe_db_error
from gateway.deps import request_id_from
from gateway.errors import (
    BadRequest,
    GatewayError,
    ServiceUnavailable,
    TooLarge,
    URITooLong,
)
from gateway.fhir.responses import FHIRResponse, outcome
from gateway.limits import Limits
from gateway.logging import log_access
from gateway.state import GatewayState

log = structlog.get_logger("caregateway.access")

DRAIN_S: Final = 2.0  # seconds spent dropping the rest of an over-long body, at most
DRAIN_FACTOR: Final = 16  # ... and at most this many times the body limit


def reraise(_request: Request, exc: Exception) -> Any:
    """An exception handler that hands the exception on to :class:`ErrorBoundary`."""
    raise exc


# Public documents with no patient data, read before a client has a token: no audit event
# (and no 503 when the audit store is down).
UNAUDITED = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})
UNAUDITED_PREFIXES = ("/fhir/StructureDefinition/", "/fhir/CodeSystem/")


class _BodyTooLarge(Exception):
    """Raised into the application by the counting ``receive`` past the body limit."""


class ErrorBoundary:
    """See the module docstring. ``limits`` default to :class:`Limits` ()."""

    def __init__(self, app: ASGIApp, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, receive, send, self.limits)
        structlog.contextvars.bind_contextvars(request_id=exchange.request_id)
        started = time.perf_counter()
        try:
            await exchange.run(self.app)
        finally:
            route = scope.get("route")
            log_access(
                log,
                method=scope.get("method"),
                route=getattr(route, "path", "unmatched"),
                status=exchange.status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
                request_id=exchange.request_id,
            )
            structlog.contextvars.unbind_contextvars("request_id")


class _Exchange:
    """One request through the boundary: its id, note, body count and answer."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limits: Limits) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.limits = limits
        given = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)
        self.request_id = request_id_from(given.decode("latin-1") if given is not None else None)
        scope.setdefault("state", {})["request_id"] = self.request_id
        path = str(scope.get("path", ""))
        self.audited = (
            path.startswith("/fhir/")
            and path not in UNAUDITED
            and not path.startswith(UNAUDITED_PREFIXES)
        )
        self.note: audit_trail.AuditNote | None = None
        self.status = 500
        self.body_read = 0
        self.body_over = False
        self.body_done = False  # the last body message has been received
        self.started = False  # a response start has gone to the server
        self.replaced = False  # the application's answer was replaced: drop its messages

    async def run(self, app: ASGIApp) -> None:
        self.note = audit_trail.open_note() if self.audited else None
        refusal = self.limits.refuse(self.scope)
        if refusal is not None:
            # A declared over-long body is refused before it is read; it is still drained
            # (bounded) so that the client, which is still sending, can read its 413.
            self.body_over = "body-too-large" in refusal.reasons
            await self.fail(refusal)
            return
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise  # cancellation, KeyboardInterrupt: the server's business
            await self.fail(exc)
            return
        if not self.started:
            await self.fail(RuntimeError("the application returned no response"))

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.body_read += len(message.get("body", b""))
            self.body_done = not message.get("more_body", False)
            if self.body_read > self.limits.max_body_bytes:
                self.body_over = True
                raise _BodyTooLarge()
        return message

    async def send(self, message: Message) -> None:
        if self.replaced:
            return
        if message["type"] != "http.response.start":
            await self._send(message)
            return
        if self.started:  # pragma: no cover - an application bug; the server will refuse it
            await self._send(message)
            return
        if self.body_over:
            # Whatever the application made of a body cut at the limit, the answer is 413.
            self.replaced = True
            await self.fail(self.limits.body_too_large())
            return
        status = int(message["status"])
        failure = await self.commit_audit(status)
        if failure is not None:
            self.replaced = True
            await self.respond(failure)
            return
        self.status = status
        self.started = True
        headers = [*message.get("headers", ()), (b"x-request-id", self.request_id.encode())]
        await self._send({**message, "headers": headers})

    async def fail(self, exc: Exception) -> None:
        """Answer ``exc`` as an OperationOutcome (audited first), unless one is under way."""
        if self.started:
            # The answer has begun; it cannot become an OperationOutcome any more.
            _log_failure(exc, after_start=True)
            return
        if self.body_over or isinstance(exc, _BodyTooLarge):
            self.body_over = True
            if not isinstance(exc, TooLarge):
                exc = self.limits.body_too_large()
            await self._drain()
        error = as_gateway_error(exc)
        note = self.note
        if note is not None and error.reasons and not note.reasons:
            note.reasons = error.reasons
        response = FHIRResponse(
            error.to_operation_outcome(), status_code=error.status, headers=error.headers
        )
        failure = await self.commit_audit(error.status)
        await self.respond(failure or response)

    async def _drain(self) -> None:
        """Read and drop what follows of an over-long body, at most :data:`DRAIN_FACTOR`
        times the limit and for at most :data:`DRAIN_S`: a client that sent too much (a
        10 MB upload against a 1 MiB limit drains in milliseconds on a LAN) then reads its
        413, where closing on unread bytes would reset the connection under it. A client
        still sending after that (an endless chunked body) gets the 413 and a closed
        connection."""
        budget = DRAIN_FACTOR * self.limits.max_body_bytes
        try:
            async with asyncio.timeout(DRAIN_S):
                while budget > 0 and not self.body_done:
                    message = await self._receive()
                    if message["type"] != "http.request":
                        return
                    budget -= len(message.get("body", b""))
                    self.body_done = not message.get("more_body", False)
        except TimeoutError:
            return

    async def respond(self, response: FHIRResponse) -> None:
        self.started = True
        self.status = response.status_code
        headers = [*response.raw_headers, (b"x-request-id", self.request_id.encode())]
        await self._send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await self._send({"type": "http.response.body", "body": response.body})

    async def commit_audit(self, status: int) -> FHIRResponse | None:
        """Commit this request's AuditEvent with ``status``; the 503 to send if we cannot."""
        note, self.note = self.note, None  # one event per request, whatever happens next
        if note is None:
            return None
        app = self.scope.get("app")
        state: GatewayState | None = getattr(getattr(app, "state", None), "gateway", None)
        if state is None or state.audit is None:
            return None
        scope = self.scope
        path = str(scope.get("path", ""))
        last = path.rsplit("/", 1)[-1]
        if last.startswith("$"):
            note.subtype, note.operation = "operation", last[1:]
        if note.patient_nhs is None and status != URITooLong.status:
            # Refused before the route read the NHS number (no token, bad token): the event
            # still names whose record was asked for, when the request says so validly.
            note.patient_nhs = requested_patient(Request(scope))
        client = scope.get("client")
        event = audit_trail.prepare_event(
            note,
            status=status,
            method=str(scope.get("method", "")),
            query=scope.get("query_string", b"").decode("latin-1"),
            request_id=self.request_id,
            client_address=client[0] if client else None,
            base_url=state.base_url,
        )
        try:
            await state.audit.append(event)
        except Exception as exc:  # AuditUnavailable, or an event the store could not take
            field = getattr(exc, "field", None)  # AuditEventRejected: what did not fit
            extra = {"field": field} if isinstance(field, str) else {}
            log.error("audit_unavailable", **describe_db_error(exc), **extra)
            err = ServiceUnavailable(
                "The access could not be recorded in the audit trail, so no data is released."
            )
            return FHIRResponse(err.to_operation_outcome(), status_code=err.status)
        return None


_SUBJECT_PARAMS = ("patient", "subject", "patient.identifier")


def requested_patient(request: Request) -> str | None:
    """The valid NHS number in the request's path (``{nhs}``) or subject parameter, if any."""
    candidates = [str(request.scope.get("path_params", {}).get("nhs") or "")]
    for name in _SUBJECT_PARAMS:
        value = request.query_params.get(name) or ""
        candidates.append(value.rpartition("|")[2].removeprefix("Patient/"))
    for candidate in candidates:
        if len(candidate) > 16:
            continue
        digits = nhs_number.normalise(candidate)
        if digits.isascii() and nhs_number.is_valid(digits):
            return digits
    return None


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _all_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_all_unavailable(e) for e in exc.exceptions)
    return database_unavailable(exc)


def as_gateway_error(raised: BaseException) -> GatewayError:
    """The :class:`GatewayError` a failure is answered with (see the module docstring)."""
    exc = _leaf(raised)
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, SourceFault):
        return ServiceUnavailable("A source system needed for this request did not answer.")
    if isinstance(exc, RequestValidationError):
        return BadRequest(
            "The request is not valid: "
            + "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                for e in exc.errors()
            )
        )
    if isinstance(exc, StarletteHTTPException):
        return _http_error(exc)
    if _all_unavailable(exc):
        log.error("database_unavailable", **describe_db_error(exc), where=_where(exc))
        return ServiceUnavailable(
            "The gateway's database cannot be used just now, so nothing was released or "
            "changed. Try again shortly."
        )
    _log_failure(exc, after_start=False)
    return GatewayError("Internal error; it has been logged.")


class _HTTPError(GatewayError):
    """Starlette's ``HTTPException`` as a GatewayError (status and headers kept)."""

    def __init__(self, status: int, code: str, text: str, headers: dict[str, str]) -> None:
        super().__init__(text, headers=headers)
        self.status = status
        self.code = code

    def to_operation_outcome(self) -> dict[str, Any]:
        return outcome(self.code, "error", self.message)


_HTTP_CODES: Final = {
    400: ("invalid", None),
    404: ("not-found", "No such endpoint."),
    405: ("not-supported", "Method not allowed."),
    413: ("too-long", None),
    415: ("not-supported", None),
}


def _http_error(exc: StarletteHTTPException) -> GatewayError:
    code, text = _HTTP_CODES.get(exc.status_code, ("processing", None))
    status = exc.status_code if 400 <= exc.status_code < 600 else 500
    return _HTTPError(status, code, text or str(exc.detail), dict(exc.headers or {}))


_OWN_CODE: Final = ("/gateway/", "/adapters/", "/consent/")


def _where(exc: BaseException) -> list[str]:
    """Where ``exc`` was raised, as ``file:line function`` frames with no text: the
    gateway's own frames (innermost six) and the innermost frame of all."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if any(part in f.filename for part in _OWN_CODE)][-6:]
    if frames and (not own or own[-1] is not frames[-1]):
        own.append(frames[-1])
    return [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}" for f in own]


def _log_failure(exc: BaseException, *, after_start: bool) -> None:
    log.error(
        "unhandled_error",
        error=type(exc).__name__,
        where=_where(exc),
        after_response_start=after_start,
    )

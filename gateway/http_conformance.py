"""HTTP as FHIR clients expect it, for every ``/fhir`` route at once (ASGI middleware).

:class:`Negotiation` runs inside the error boundary (so what it refuses is an audited
OperationOutcome like any other refusal):

* ``HEAD`` is answered wherever ``GET`` is: the ``GET`` runs (decided and audited the
  same), and only its headers go out;
* ``Accept`` naming only formats we do not serve (``application/fhir+xml``, or FHIR JSON of
  another ``fhirVersion``) is ``406``, never JSON under a ``200``; a body declared as XML is
  ``415`` (:data:`XML_TYPES`);
* a ``GET`` whose ``If-None-Match`` names the answer's ``ETag`` gets ``304`` with no body
  (FHIR ``http.html#cread``; the ETag is weak, from the version or the merged content,
  :class:`gateway.fhir.responses.FHIRResponse`). The read was decided and is audited with
  status ``304``: the caller already holds what it would have been sent.

:func:`cors_options` set up the outermost layer, Starlette's CORS middleware: a browser
app on an allowed origin (``CAREGW_CORS_ORIGINS``) gets its preflight answered (before any
token check, as the browser sends none) and reads every answer, refusals included. No
origin is allowed by default; the demo allows its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypedDict

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import NotAcceptable
from gateway.routes.searching import UnsupportedMediaType

SERVED: Final = frozenset(
    {"application/fhir+json", "application/json", "*/*", "application/*", "text/csv"}
)
XML_TYPES: Final = frozenset({"application/fhir+xml", "application/xml", "text/xml"})
FHIR_VERSIONS: Final = frozenset({"4.0", "4.0.1"})
# What a browser app sends and must be able to read (FHIR and SMART clients use these).
CORS_REQUEST_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Accept",
    "Prefer",
    "If-Match",
    "If-None-Match",
    "If-None-Exist",
    "X-Purpose-Of-Use",
    "X-Break-Glass-Reason",
    "X-Request-ID",
)
CORS_EXPOSED: Final = (
    "ETag",
    "Last-Modified",
    "Location",
    "Content-Location",
    "X-Request-ID",
    "X-Incomplete-Sources",
    "WWW-Authenticate",
)
CORS_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "OPTIONS")


def _acceptable(accept: str) -> bool:
    """Whether ``Accept`` allows an answer we can give (no header: anything goes)."""
    if not accept.strip():
        return True
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        options = dict(p.split("=", 1) for p in params if "=" in p)
        if options.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        version = options.get("fhirVersion", options.get("fhirversion"))
        if media in SERVED and (version is None or version.strip('"') in FHIR_VERSIONS):
            return True
    return False


def _etag_values(header: str) -> set[str]:
    """``If-None-Match`` values compared weakly (``W/"1"`` matches ``"1"``)."""
    return {v.strip().removeprefix("W/") for v in header.split(",") if v.strip()}


def _not_modified(start: Message, wanted: str) -> Message | None:
    """The ``304`` start message for ``start`` when ``If-None-Match`` names its ETag."""
    etag = Headers(raw=start.get("headers", [])).get("etag")
    if start["status"] != 200 or not etag:
        return None
    if wanted.strip() != "*" and etag.removeprefix("W/") not in _etag_values(wanted):
        return None
    keep = {b"etag", b"last-modified", b"cache-control", b"vary"}
    return {
        **start,
        "status": 304,
        "headers": [(k, v) for k, v in start.get("headers", []) if k.lower() in keep],
    }


class Negotiation:
    """See the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/fhir"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = str(scope.get("method", ""))
        if not _acceptable(headers.get("accept", "")):
            raise NotAcceptable(
                "This server answers in FHIR R4 JSON only (application/fhir+json; "
                "fhirVersion=4.0); it cannot answer in the format Accept asks for."
            )
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if method in ("POST", "PUT") and content_type in XML_TYPES:
            raise UnsupportedMediaType(
                "This server takes FHIR JSON bodies only, not XML: send Content-Type: "
                "application/fhir+json."
            )
        head = method == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        wanted = headers.get("if-none-match") if method in ("GET", "HEAD") else None
        if not head and not wanted:
            await self._routed(scope, receive, send)
            return
        drop_body = head
        ended = False

        async def answer(message: Message) -> None:
            nonlocal drop_body, ended
            if message["type"] == "http.response.start" and wanted:
                message = _not_modified(message, wanted) or message
                drop_body = drop_body or message["status"] == 304
            if message["type"] == "http.response.body" and drop_body:
                if ended:
                    return
                ended = True
                message = {**message, "body": b"", "more_body": False}
            await send(message)

        await self._routed(scope, receive, answer)

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with ``HEAD`` (and ``OPTIONS`` where CORS is on) in every ``405``'s
        ``Allow`` beside the ``GET`` it stands for."""
        try:
            await self.app(scope, receive, send)
        except StarletteHTTPException as exc:
            allow = (exc.headers or {}).get("Allow")
            if exc.status_code == 405 and allow is not None and "GET" in allow.split(", "):
                headers = {**(exc.headers or {}), "Allow": f"{allow}, HEAD"}
                raise StarletteHTTPException(405, exc.detail, headers=headers) from exc
            raise


class CorsOptions(TypedDict):
    allow_origins: list[str]
    allow_methods: list[str]
    allow_headers: list[str]
    expose_headers: list[str]
    max_age: int


def cors_options(origins: Sequence[str]) -> CorsOptions:
    """Starlette's CORS middleware set for FHIR clients, for ``origins`` (``*``: any)."""
    return {
        "allow_origins": list(origins),
        "allow_methods": list(CORS_METHODS),
        "allow_headers": list(CORS_REQUEST_HEADERS),
        "expose_headers": list(CORS_EXPOSED),
        "max_age": 600,
    }


def parse_origins(raw: str | None) -> tuple[str, ...]:
    """``CAREGW_CORS_ORIGINS``: comma-separated origins (``scheme://host[:port]``) or ``*``."""
    if not raw:
        return ()
    return tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())

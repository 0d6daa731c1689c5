"""Structured logging (structlog): JSON outside a terminal, and redaction of personal data.

Logs are for operators, not for IG review (that is the audit trail), so they must never carry
NHS numbers, names, addresses, dates of birth or tokens. Two defences:

* by key: values of keys such as ``nhs_number``, ``name``, ``token``, ``authorization`` are
  replaced with ``"[redacted]"`` wherever they appear;
* by shape: any ten-digit run (spaced or not), any bearer/JWT-looking string and any ISO date
  in any string value is masked, so a careless ``log.info("...", detail=str(exc))`` is safe too.

The fields the gateway itself fills with values of a known shape — :data:`SAFE_KEYS`:
``request_id``, ``route`` (the route *template*, e.g. ``/fhir/Patient/{nhs}``), ``method``,
``status``, ``latency_ms`` and structlog's own ``level``/``timestamp`` — are left exactly as
they are. A request id is how an operator finds a log line's AuditEvent: masking the ten-digit
runs that one UUID in a hundred or so contains would break that link for no gain.

``tests/gateway/test_logging.py`` drives the demo end to end and scans the captured output.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

import structlog

REDACTED = "[redacted]"
_SENSITIVE_KEYS = frozenset(
    {
        "nhs",
        "nhs_number",
        "nhsnumber",
        "name",
        "family",
        "given",
        "address",
        "postcode",
        "birthdate",
        "birth_date",
        "dob",
        "token",
        "access_token",
        "authorization",
        "password",
        "api_key",
        "secret",
        "telecom",
        "phone",
        "email",
    }
)
SAFE_KEYS = frozenset(
    {"request_id", "route", "method", "status", "latency_ms", "level", "timestamp"}
)
_PATTERNS = (
    re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)"),  # NHS numbers in any layout
    re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),  # JWTs
    re.compile(r"(?i)bearer\s+\S+"),
    re.compile(r"(?<!\d)(?:19|20)\d{2}-\d{2}-\d{2}(?![\d:T])"),  # bare dates (birth dates)
)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for pattern in _PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if str(k).lower() in _SENSITIVE_KEYS else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask sensitive keys and sensitive-looking values."""
    for key in list(event_dict):
        if key in SAFE_KEYS and isinstance(event_dict[key], str | int | float):
            continue
        if key.lower() in _SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class LineLogger:
    """structlog's last step for the gateway's own lines: one rendered line written (and
    flushed) straight to the stream, as the stdlib handler would write it, without building
    a stdlib ``LogRecord``, looking up the caller and formatting it again: the access line is
    written for every request. Lines from other libraries' stdlib loggers (uvicorn, httpx)
    still go through the handler, with the same processors."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        self._stream.write(message + "\n")
        self._stream.flush()

    log = debug = info = warn = warning = error = err = critical = exception = fatal = msg


def configure_logging(fmt: str = "auto", level: int = logging.INFO, stream: Any = None) -> None:
    """Set up structlog and route stdlib logging (uvicorn, httpx) through the same redaction."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors = [*shared, renderer]
    global _access
    _access = _AccessLine(processors, stream) if use_json and level <= logging.INFO else None
    structlog.configure(
        processors=processors,
        logger_factory=lambda *_args: LineLogger(stream),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True


class _AccessLine:
    """The processors' JSON access line, rendered directly (see :func:`log_access`)."""

    __slots__ = ("processors", "stream")

    def __init__(self, processors: list[Any], stream: Any) -> None:
        self.processors = processors
        self.stream = stream


_access: _AccessLine | None = None


def _json(value: object) -> str | None:
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if type(value) is int:
        return int.__repr__(value)  # what json.dumps writes for an int
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)  # ... and for a finite float
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return json.dumps(value)
    return None


def log_access(
    logger: Any, *, method: object, route: object, status: object, latency_ms: object,
    request_id: str,
) -> None:  # fmt: skip
    """The access line of one request: ``logger.info("request", ...)``, with ``request_id``
    bound in the request's context.

    It is written for every request, so while the configuration is still the one
    :func:`configure_logging` made for JSON at INFO, the line is rendered here directly: the
    very text the processors would write (the request's context holds only its id; every
    field is one :data:`SAFE_KEYS` leaves as it is, and "request" has nothing to redact),
    without building the event dict six times over. Any other configuration (a console, a
    test's capture) gets the line through structlog.
    """
    access = _access
    if access is not None and structlog.get_config()["processors"] is access.processors:
        parts = (_json(method), _json(route), _json(status), _json(latency_ms))
        if None not in parts:
            stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            access.stream.write(
                f'{{"method": {parts[0]}, "route": {parts[1]}, "status": {parts[2]}, '
                f'"latency_ms": {parts[3]}, "event": "request", '
                f'"request_id": {encode_basestring_ascii(request_id)}, "level": "info", '
                f'"timestamp": "{stamp}"}}\n'
            )
            access.stream.flush()
            return
    logger.info("request", method=method, route=route, status=status, latency_ms=latency_ms)

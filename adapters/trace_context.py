"""W3C Trace Context pass-through: a caller's ``traceparent`` goes on to the sources.

The gateway does not record spans itself (no tracing SDK, nothing exported); it takes part
in a caller's trace the cheap way the W3C recommendation allows: the trace id and flags are
kept and each call to a source carries a new parent id, so the source's spans join the
caller's trace. A malformed header is ignored (the recommendation says to restart the
trace; with nothing recorded here, sending none is the same). ``tracestate`` is not passed.

The value is held in a context variable, set by the gateway's middleware
(:class:`gateway.ops.tracing.TraceContextMiddleware`) for the request, and read by
:class:`adapters.http_source.BoundedClient` for every exchange.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from typing import Final

_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE: Final = "0" * 32
_ZERO_PARENT: Final = "0" * 16

_current: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "caregateway_trace", default=None
)


def parse(header: str | None) -> tuple[str, str] | None:
    """(trace id, flags) of a valid version-00 ``traceparent``, else None."""
    if not header:
        return None
    match = _TRACEPARENT.fullmatch(header.strip())
    if match is None or match.group(1) == _ZERO_TRACE or match.group(2) == _ZERO_PARENT:
        return None
    return match.group(1), match.group(3)


def set_current(trace: tuple[str, str] | None) -> contextvars.Token[tuple[str, str] | None]:
    return _current.set(trace)


def reset(token: contextvars.Token[tuple[str, str] | None]) -> None:
    _current.reset(token)


def outgoing() -> str | None:
    """The ``traceparent`` for a call to a source now: the caller's trace, a new parent id."""
    trace = _current.get()
    if trace is None:
        return None
    return f"00-{trace[0]}-{secrets.token_hex(8)}-{trace[1]}"

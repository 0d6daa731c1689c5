"""Size limits on one request, applied by the error boundary before the application reads it.

Documented in ``docs/reliability.md`` ("Limits"); the defaults and their ``CAREGW_MAX_*``
settings are in the README. Beyond a limit the answer is ``413`` (body), ``414`` (path and
query) or ``431`` (a header value, or the break-glass reason), each an audited
OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from starlette.types import Scope

from gateway.errors import HeaderTooLarge, TooLarge, URITooLong
from gateway.settings import Settings

MiB: Final = 1024 * 1024
KiB: Final = 1024
BREAK_GLASS_HEADER: Final = b"x-break-glass-reason"


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied to every request before the application reads it.

    Settings: ``CAREGW_MAX_BODY_BYTES``, ``CAREGW_MAX_HEADER_BYTES``,
    ``CAREGW_MAX_URI_BYTES``, ``CAREGW_MAX_BREAK_GLASS_REASON_CHARS``. A route may enforce a
    smaller body limit of its own; none can raise this one.
    """

    max_body_bytes: int = 1 * MiB
    max_header_bytes: int = 8 * KiB
    max_uri_bytes: int = 8 * KiB
    max_break_glass_reason_chars: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_uri_bytes=settings.max_uri_bytes,
            max_break_glass_reason_chars=settings.max_break_glass_reason_chars,
        )

    def refuse(self, scope: Scope) -> TooLarge | None:
        """The error for a request whose head is over a limit, or None."""
        path = scope.get("raw_path") or str(scope.get("path", "")).encode("utf-8")
        if len(path) + len(scope.get("query_string", b"")) > self.max_uri_bytes:
            return URITooLong(
                f"The request's path and query are longer than {self.max_uri_bytes} bytes.",
                reasons=["uri-too-long"],
            )
        declared: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and declared is None:
                declared = value.decode("latin-1")
            if name == BREAK_GLASS_HEADER and len(value) > self.max_break_glass_reason_chars:
                return HeaderTooLarge(
                    "The X-Break-Glass-Reason header is longer than "
                    f"{self.max_break_glass_reason_chars} characters; state the reason briefly.",
                    reasons=["header-too-large"],
                    expression=["X-Break-Glass-Reason"],
                )
            if len(value) > self.max_header_bytes:
                header = name.decode("latin-1")[:64]
                return HeaderTooLarge(
                    f"The {header} header is longer than {self.max_header_bytes} bytes.",
                    reasons=["header-too-large"],
                    expression=[header],
                )
        if declared is not None and declared.strip().isascii() and declared.strip().isdigit():
            if int(declared.strip()) > self.max_body_bytes:
                return self.body_too_large()
        return None

    def body_too_large(self) -> TooLarge:
        return TooLarge(
            f"The request body is larger than {self.max_body_bytes} bytes.",
            reasons=["body-too-large"],
            headers={"Connection": "close"},  # the rest of the body is never read
        )

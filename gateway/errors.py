"""The gateway's one exception tree; each maps to an HTTP status and an OperationOutcome.

    GatewayError                      500 exception
    ├── BadRequest                    400 invalid / value   (bad parameter, bad NHS number)
    │   └── UnprocessableEntity       422 business-rule
    ├── Unauthorized                  401 login             (+ WWW-Authenticate: Bearer)
    ├── Forbidden                     403 forbidden         (reason codes in details.coding)
    ├── NotFound                      404 not-found
    ├── Conflict                      409 conflict
    ├── TooLarge                      413 too-long          (request body over the limit)
    │   ├── URITooLong                414 too-long          (path and query over the limit)
    │   └── HeaderTooLarge            431 too-long          (one header value over the limit)
    └── ServiceUnavailable            503 transient         (no source answered, database or
                                                             audit store down)

Routes never catch these: the error boundary (:mod:`gateway.boundary`) renders them, and
everything else that escapes a route. Messages are shown to callers, so they never contain
identifiers, names or tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vocabulary import REASON_SYSTEM as REASON_SYSTEM  # re-exported


class GatewayError(Exception):
    status: int = 500
    code: str = "exception"
    severity: str = "error"

    def __init__(
        self,
        message: str,
        *,
        reasons: Sequence[str] = (),
        expression: Sequence[str] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reasons = tuple(reasons)
        self.expression = tuple(expression)
        self.headers = headers or {}

    def to_operation_outcome(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.message,
        }
        if self.reasons:
            issue["details"] = {
                "coding": [{"system": REASON_SYSTEM, "code": r} for r in self.reasons],
                "text": ", ".join(self.reasons),
            }
        if self.expression:
            issue["expression"] = list(self.expression)
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class BadRequest(GatewayError):
    status = 400
    code = "invalid"


class UnprocessableEntity(BadRequest):
    status = 422
    code = "business-rule"


class Unauthorized(GatewayError):
    status = 401
    code = "login"

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        super().__init__(message, **kw)


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    code = "not-found"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class TooLarge(GatewayError):
    """413: the request is bigger than the gateway accepts (see ``docs/reliability.md``)."""

    status = 413
    code = "too-long"


class URITooLong(TooLarge):
    status = 414


class HeaderTooLarge(TooLarge):
    status = 431


class ServiceUnavailable(GatewayError):
    status = 503
    code = "transient"

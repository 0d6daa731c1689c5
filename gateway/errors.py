"""The gateway's one exception tree; each maps to an HTTP status and an OperationOutcome.

    GatewayError                      500 exception
    ├── BadRequest                    400 invalid / value   (bad parameter, bad NHS number)
    │   └── UnprocessableEntity       422 business-rule     (a well-formed body that breaks a rule)
    │       └── TooCostly             422 too-costly        (a body too deep or with too many items)
    ├── Unauthorized                  401 login             (+ WWW-Authenticate: Bearer)
    │   ├── InvalidToken              401                   (gateway.auth: no usable token)
    │   └── ClaimTooLong              401                   (gateway.auth: a claim over its column)
    ├── Forbidden                     403 forbidden         (reason codes in details.coding)
    ├── NotFound                      404 not-found
    ├── MethodNotAllowed              405 not-supported     (a source's plan is not ours)
    ├── NotAcceptable                 406 not-supported     (a format we do not serve)
    ├── Conflict                      409 conflict
    ├── VersionConflict               412 conflict          (If-Match is not the current version;
    │   └── PlanVersionConflict                              + ETag of the current one)
    ├── TooLarge                      413 too-long          (request body over the boundary's limit)
    │   ├── URITooLong                414 too-long          (path and query over the limit)
    │   └── HeaderTooLarge            431 too-long          (one header value over the limit)
    ├── ResourceTooLarge              413 too-long          (a Consent or CarePlan over its limit)
    ├── UnsupportedMediaType          415 not-supported     (a body that is not FHIR JSON)
    ├── PreconditionRequired          428 required          (an update without If-Match)
    ├── TooManyRequests               429 throttled         (+ Retry-After; gateway.ops rate limits)
    └── ServiceUnavailable            503 transient         (no source answered, database down)
        └── AuditUnavailable          503                   (the event could not be made durable:
            └── AuditEventRejected                           release no data)

Routes never catch these: the error boundary (:mod:`gateway.boundary`) renders them, and
translates once what is not ours (FastAPI's ``RequestValidationError``, Starlette's
``HTTPException``, a source fault, a database that cannot be reached; anything else is a
logged 500). Errors that never reach a caller stay where they are raised (``ConfigurationError``
at start-up, ``CacheError`` inside the cache, ``ArchiveError`` in the audit CLI). Messages are
shown to callers, so they never contain identifiers, names or tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vocabulary import REASON_SYSTEM as REASON_SYSTEM  # re-exported

if TYPE_CHECKING:
    from gateway.ops.ratelimit import RateLimit

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])*")  # with indexers: item[0]


def fhirpath(name: str) -> str:
    """``name`` (an element path or a request parameter) as a FHIRPath expression: a part
    that is not a plain identifier is delimited (``agent-org`` → ```agent-org```)."""
    if name.startswith("("):  # a placeholder for a name not fit to repeat, not a path
        return name
    return ".".join(
        p if _IDENTIFIER.fullmatch(p) else f"`{p.replace('`', '')}`" for p in name.split(".")
    )


class GatewayError(Exception):
    """500 ``exception``: what went wrong is ours. Every subclass names its HTTP status and its
    ``issue.code`` once, in its class line (``class NotFound(GatewayError, status=404,
    code="not-found")``); a subclass that names neither keeps its parent's."""

    status: int = 500
    code: str = "exception"
    severity: str = "error"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None) -> None:
        super().__init_subclass__()
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

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
            issue["expression"] = [fhirpath(e) for e in self.expression]
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class BadRequest(GatewayError, status=400, code="invalid"):
    """A parameter, header or body the gateway cannot use (a bad NHS number, an unknown
    search parameter); ``expression`` names where."""


class UnprocessableEntity(BadRequest, status=422, code="business-rule"):
    """A well-formed body that breaks a rule (a directive the rules refuse, a plan status
    that may not follow the current one)."""


class Unauthorized(GatewayError, status=401, code="login"):
    """No usable identity; answered with ``WWW-Authenticate: Bearer`` unless told otherwise."""

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        super().__init__(message, **kw)


class Forbidden(GatewayError, status=403, code="forbidden"):
    """The caller is known and may not do this; the reason codes go in ``details.coding``."""


class TooCostly(UnprocessableEntity, code="too-costly"):
    """A body too deep or with too many items to check at all (still 422)."""


class NotFound(GatewayError, status=404, code="not-found"):
    """Nothing by this id or at this path (never saying whether a person exists elsewhere)."""


class MethodNotAllowed(GatewayError, status=405, code="not-supported"):
    """An interaction the resource does not allow here, e.g. writing a source system's plan;
    ``Allow`` says what is."""


class NotAcceptable(GatewayError, status=406, code="not-supported"):
    """A ``_format`` or ``Accept`` the gateway does not serve."""


class Conflict(GatewayError, status=409, code="conflict"):
    """A write that lost to a concurrent one and could not be retried."""


class VersionConflict(GatewayError, status=412, code="conflict"):
    """``412``: the caller's ``If-Match`` version is no longer the resource's current version."""

    resource_type = "Consent"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f'The {self.resource_type} is at version {current} (ETag W/"{current}"), not '
            f"version {expected} as If-Match said: it was changed meanwhile. Read it again, "
            f'apply the change to that version and send If-Match: W/"{current}".',
            headers={"ETag": f'W/"{current}"'},
        )
        self.expected = expected
        self.current = current


class PlanVersionConflict(VersionConflict):
    """``412`` for a joint CarePlan (``gateway.joint.store``)."""

    resource_type = "CarePlan"


class TooLarge(GatewayError, status=413, code="too-long"):
    """413: the request is bigger than the gateway accepts (see ``docs/reliability.md``)."""


class URITooLong(TooLarge, status=414):
    """The path and query together are over the boundary's limit."""


class HeaderTooLarge(TooLarge, status=431):
    """One header value is over the boundary's limit."""


class ResourceTooLarge(GatewayError, status=413, code="too-long"):
    """413: a Consent or CarePlan body over its own type's limit, found while reading it.

    Not a :class:`TooLarge`: that one is the boundary's own body limit, which it answers by
    draining the rest of the body first."""


class UnsupportedMediaType(GatewayError, status=415, code="not-supported"):
    """A body that is not declared FHIR JSON (or JSON)."""


class PreconditionRequired(GatewayError, status=428, code="required"):
    """A change that must name the version it changes (``If-Match``) and did not."""


class TooManyRequests(GatewayError, status=429, code="throttled"):
    """429: the caller has used its allowance; ``Retry-After`` says when to come back."""

    def __init__(self, retry_after_s: int, limit: RateLimit) -> None:
        super().__init__(
            f"Too many requests: the limit is {limit} per user or system client. "
            f"Try again in {retry_after_s} s.",
            reasons=["rate-limited"],
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


class ServiceUnavailable(GatewayError, status=503, code="transient"):
    """Something the answer depends on did not answer (no source, the database); worth a
    retry shortly."""


class AuditUnavailable(ServiceUnavailable):
    """The audit store could not commit the event; the request must fail with 503."""

    def __init__(
        self, message: str = "The audit trail is unavailable; nothing was released."
    ) -> None:
        super().__init__(message)


class AuditEventRejected(AuditUnavailable):
    """An event that its row could not hold (a value longer than its column, or too big).

    Refused alone, in its caller's task, before it joins a group commit; ``field`` names
    what did not fit (never its value)."""

    def __init__(self, field: str) -> None:
        super().__init__(
            "The access could not be recorded in the audit trail, so no data is released."
        )
        self.field = field

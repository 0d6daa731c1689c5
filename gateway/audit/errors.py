"""Audit trail errors.

ServiceUnavailable (gateway.errors, 503)
└── AuditUnavailable      the event could not be made durable: release no data
    └── AuditEventRejected    the event would not fit its row; refused before it is queued
"""

from __future__ import annotations

from gateway.errors import ServiceUnavailable


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

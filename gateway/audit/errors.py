"""Audit trail errors.

ServiceUnavailable (gateway.errors, 503)
└── AuditUnavailable      the event could not be made durable: release no data
"""

from __future__ import annotations

from gateway.errors import ServiceUnavailable


class AuditUnavailable(ServiceUnavailable):
    """The audit store could not commit the event; the request must fail with 503."""

    def __init__(
        self, message: str = "The audit trail is unavailable; nothing was released."
    ) -> None:
        super().__init__(message)

"""What fits: the widths of the audit trail's indexed columns, and clipping to them.

The store indexes some fields in columns of fixed width (PostgreSQL enforces them: one value
too long would fail the insert, and with it every event in the same group commit). Events
the gateway builds are clipped to these widths here, visibly (TRUNCATED ends the value);
the store refuses any other event that would not fit (gateway.audit.store.check_fits).
"""

from __future__ import annotations

from typing import Final

SUB_MAX: Final = 255  # audit_event.agent_sub
ORG_MAX: Final = 32  # audit_event.agent_org
PURPOSE_MAX: Final = 32  # audit_event.purpose
NHS_NUMBER_LEN: Final = 10  # audit_event.patient
TEXT_MAX: Final = 1000  # free text: user name, break-glass reason
QUERY_MAX: Final = 8192  # a search's query string, before base64
CODE_MAX: Final = 64  # roles, reason codes, resource types, operations, request ids
TRUNCATED: Final = "...[truncated]"


def clip(value: str | None, limit: int) -> str | None:
    """``value`` cut to at most ``limit`` characters, ending in :data:`TRUNCATED` if cut."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - len(TRUNCATED)] + TRUNCATED

"""The audit trail: one FHIR AuditEvent per request, durable before data leaves, hash-chained.

- :mod:`gateway.audit.events` — :class:`AuditRecord` (what the HTTP layer knows) and
  :func:`build_audit_event` (the BALP-shaped AuditEvent dict);
- :mod:`gateway.audit.store` — :class:`AuditStore`: group-commit ``append``, ``verify``,
  ``search``;
- :mod:`gateway.audit.cli` — ``caregateway audit verify``.
"""

from __future__ import annotations

from gateway.audit.errors import AuditUnavailable
from gateway.audit.events import AuditRecord, build_audit_event
from gateway.audit.store import AuditStore, VerifyResult

__all__ = ["AuditRecord", "AuditStore", "AuditUnavailable", "VerifyResult", "build_audit_event"]

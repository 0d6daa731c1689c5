"""Audit trail errors, re-exported from the one exception tree (:mod:`gateway.errors`).

ServiceUnavailable (503)
└── AuditUnavailable      the event could not be made durable: release no data
    └── AuditEventRejected    the event would not fit its row; refused before it is queued
"""

from __future__ import annotations

from gateway.errors import AuditEventRejected as AuditEventRejected
from gateway.errors import AuditUnavailable as AuditUnavailable

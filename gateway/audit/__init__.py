"""The audit trail: one FHIR AuditEvent per request, durable before data leaves, hash-chained.

Everything about the trail lives in this package; the rest of the gateway uses only the
names below (``gateway/routes/audit.py`` and ``patient_log.py`` are the HTTP side, thin).

======================  ==================================================================
the note a request      :mod:`.note`: the request's :class:`~.note.AuditNote` in a context
builds                  variable, filled in by the gate, the decider and the routes
                        (``from gateway.audit import note as audit_trail``), then
                        :func:`~.note.build_event`; :mod:`.security` the same for ``/auth``
BALP event building     :mod:`.events` (:class:`AuditRecord`, :func:`build_audit_event`),
                        :mod:`.codes` (code systems, extension URLs), :mod:`.withdrawn`
                        (an event whose caller gave up)
reading an event        :mod:`.fields`: patient, user, purpose, break-glass, decision effect
                        and reason codes (as data: the reason extensions)
the store and its       :mod:`.store` (:class:`AuditStore`: append, verify, search),
chain                   :mod:`.rows` (tables, stored bytes, links), :mod:`.writer` (group
                        commit), :mod:`.commit_failures` (retry, split or fail),
                        :mod:`.partitions` (PostgreSQL months)
IG reviews              :mod:`.reviews` (``audit_review``, the break-glass queue)
monitoring rules        :mod:`.monitoring` (the six privacy rules → ``DetectedIssue``)
reports                 :mod:`.report` (the access report as CSV)
archive                 :mod:`.archive` (export, archive, checkpoints), :mod:`.archive_files`
                        (the files and their offline checks), :mod:`.monthly` (a partition)
CLI                     :mod:`.cli` (``caregateway audit verify|export|archive|partitions``)
======================  ==================================================================
"""

from __future__ import annotations

from gateway.audit import fields, note
from gateway.audit.cli import archive_main, partitions_main, verify_main
from gateway.audit.codes import (
    ACT_REASON_SYSTEM,
    AGENT_TYPE_SYSTEM,
    BREAK_GLASS_CODE,
    GATEWAY_NAME,
    SECURITY_ROLE_TYPE_SYSTEM,
    USER_SYSTEM,
)
from gateway.audit.errors import AuditEventRejected, AuditUnavailable
from gateway.audit.events import AuditRecord, build_audit_event
from gateway.audit.monitoring import (
    MonitoringConfig,
    PersonFacts,
    alert_resource,
    gather_facts,
    is_record_access,
    run_rules,
)
from gateway.audit.partitions import ensure_current, is_audit_partition
from gateway.audit.report import CSV_COLUMNS, access_report_csv
from gateway.audit.reviews import ReviewStore, parse_review, review_parameters
from gateway.audit.rows import audit_checkpoint, audit_event
from gateway.audit.security import SecurityEvent, build_security_event
from gateway.audit.store import AuditFilters, AuditStore, VerifyResult

__all__ = [
    "ACT_REASON_SYSTEM",
    "AGENT_TYPE_SYSTEM",
    "BREAK_GLASS_CODE",
    "CSV_COLUMNS",
    "GATEWAY_NAME",
    "SECURITY_ROLE_TYPE_SYSTEM",
    "USER_SYSTEM",
    "AuditEventRejected",
    "AuditFilters",
    "AuditRecord",
    "AuditStore",
    "AuditUnavailable",
    "MonitoringConfig",
    "PersonFacts",
    "ReviewStore",
    "SecurityEvent",
    "VerifyResult",
    "access_report_csv",
    "alert_resource",
    "archive_main",
    "audit_checkpoint",
    "audit_event",
    "build_audit_event",
    "build_security_event",
    "ensure_current",
    "fields",
    "gather_facts",
    "is_audit_partition",
    "is_record_access",
    "note",
    "parse_review",
    "partitions_main",
    "review_parameters",
    "run_rules",
    "verify_main",
]

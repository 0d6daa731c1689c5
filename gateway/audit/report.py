"""The access report (a subject access request) as CSV: one row per AuditEvent.

``GET /fhir/Patient/{nhs}/$access-report?_format=text/csv`` answers
:func:`access_report_csv` of the person's events. Rows follow :data:`CSV_COLUMNS`; the
decision column is the decision's effect and reason codes, read as data from the event
(:mod:`gateway.audit.fields`), or its ``outcomeDesc`` when it carries neither. A cell a
spreadsheet would run as a formula is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.audit.fields import (
    decision_effect,
    event_agent_org,
    event_agent_sub,
    event_break_glass,
    event_purpose,
    reasons,
    request_id,
    subtype,
    user_display,
    user_role,
)

CSV_COLUMNS: Final = (
    "recorded",
    "user",
    "user display",
    "role",
    "organisation",
    "purpose",
    "action",
    "outcome",
    "decision/reasons",
    "break-glass",
    "request id",
)
_OUTCOME_WORDS: Final = {"0": "permitted", "4": "refused", "8": "failed", "12": "failed"}


def _cell(value: str) -> str:
    """Spreadsheet-safe: a value that a spreadsheet would run as a formula is quoted."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_row(event: Mapping[str, Any]) -> list[str]:
    """One access-report row (the columns of :data:`CSV_COLUMNS`)."""
    decision = "; ".join(p for p in (decision_effect(event) or "", ", ".join(reasons(event))) if p)
    outcome = str(event.get("outcome", ""))
    values = [
        str(event.get("recorded", "")),
        event_agent_sub(event) or "",
        user_display(event) or "",
        user_role(event) or "",
        event_agent_org(event) or "",
        event_purpose(event) or "",
        subtype(event) or "",
        _OUTCOME_WORDS.get(outcome, outcome),
        decision or str(event.get("outcomeDesc", "")),
        "yes" if event_break_glass(event) else "no",
        request_id(event) or "",
    ]
    return [_cell(v) for v in values]


def access_report_csv(events: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for event in events:
        writer.writerow(csv_row(event))
    return out.getvalue()

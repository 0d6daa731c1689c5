"""One AuditEvent per FHIR request, committed before any byte of the answer leaves.

How it fits the request path:

* the error boundary (:mod:`gateway.boundary`) opens an :class:`AuditNote` for every
  ``/fhir`` request (except ``metadata``) and puts it in a context variable;
* the gate, the NHS number parser and :class:`~gateway.records.access.RecordAccess` fill it in as
  they learn things (who, why, which person, what the decision was);
* when the route has produced its answer (or any failure has been mapped to one), the
  boundary turns the note into a BALP-shaped AuditEvent with the status about to be sent and
  appends it to the store, which commits it durably (group commit). Only then does the
  response start. If the store cannot take the event, the answer is replaced by ``503``: no
  audit, no data.

Refusals (4xx) and failures (5xx, outcome ``8``) produce an event too, with whatever the
note knew by then. A search's query string is stored without secrets (:func:`clean_query`).
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import unquote_plus

from gateway.audit.events import AuditRecord, build_audit_event
from gateway.audit.rows import Prepared
from gateway.audit.templates import EventTemplates
from gateway.caller import NOBODY, Caller
from vocabulary import AuditSubtype as Interaction

_SUBTYPES: dict[str, Interaction] = {
    "read": "read",
    "search": "search-type",
    "create": "create",
    "update": "update",
    "delete": "update",
}


@dataclass
class AuditNote:
    subtype: Interaction | None = None
    operation: str | None = None
    resource_type: str | None = None
    caller: Caller | None = None  # the gate's verified Principal (gateway.caller)
    purpose: str | None = None
    patient_nhs: str | None = None
    effect: str | None = None
    reasons: tuple[str, ...] = ()
    break_glass: bool = False
    break_glass_reason: str | None = None
    resource_ids: tuple[str, ...] = ()


_current: contextvars.ContextVar[AuditNote | None] = contextvars.ContextVar(
    "caregateway_audit_note", default=None
)


def open_note() -> AuditNote:
    note = AuditNote()
    _current.set(note)
    return note


def current() -> AuditNote | None:
    """The note of the request being handled, or None outside an audited request."""
    return _current.get()


def note_interaction(resource_type: str, interaction: str) -> None:
    note = current()
    if note is not None:
        note.resource_type = resource_type
        note.subtype = _SUBTYPES.get(interaction, "read")


def note_operation(name: str) -> None:
    note = current()
    if note is not None:
        note.subtype = "operation"
        note.operation = name


def note_patient(nhs_number: str) -> None:
    note = current()
    if note is not None:
        note.patient_nhs = nhs_number


def note_resources(references: tuple[str, ...]) -> None:
    """What the request read or changed, as references (``Consent/{id}/_history/{v}``)."""
    note = current()
    if note is not None:
        note.resource_ids = references


def note_decision(
    effect: str, reasons: tuple[str, ...], break_glass: bool, reason_text: str | None
) -> None:
    note = current()
    if note is not None:
        note.effect = effect
        note.reasons = reasons
        note.break_glass = break_glass
        note.break_glass_reason = reason_text if break_glass else None


# Query parameters whose value is a credential: never stored, whatever route they came on
# (OAuth 2.0 / OIDC / SMART names, and the usual spellings of keys and passwords).
SECRET_PARAMS: Final = frozenset(
    {
        "access_token",
        "id_token",
        "refresh_token",
        "token",
        "code",
        "code_verifier",
        "client_secret",
        "client_assertion",
        "assertion",
        "password",
        "passwd",
        "pwd",
        "secret",
        "api_key",
        "apikey",
        "key",
        "authorization",
        "auth",
        "session",
        "sig",
        "signature",
    }
)
REDACTED_VALUE: Final = "redacted"
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]+")


def clean_query(query: str) -> str:
    """``query`` with the value of every credential parameter replaced by ``redacted``.

    Names are compared decoded and case-blind (``Access%5FToken`` is ``access_token``); a
    value that looks like a JWT is replaced whatever its parameter is called. Every other
    parameter is kept exactly as sent, in order, so the stored query still says what was
    asked.
    """
    if not query:
        return query
    kept: list[str] = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        decoded_name = unquote_plus(name).strip().lower()
        if decoded_name in SECRET_PARAMS or _JWT_SHAPE.search(unquote_plus(value)):
            kept.append(f"{name}={REDACTED_VALUE}")
        else:
            kept.append(part if sep else name)
    return "&".join(kept)


def outcome_for(status: int) -> Literal["0", "4", "8"]:
    if status < 400:
        return "0"
    if status < 500:
        return "4"
    return "8"


def build_event(
    note: AuditNote,
    *,
    status: int,
    method: str,
    query: str,
    request_id: str,
    client_address: str | None,
    base_url: str,
    refusal: tuple[str, ...] = (),
    event_id: str | None = None,
    recorded: datetime | None = None,
) -> dict[str, Any]:
    """The AuditEvent for one finished request (a new id and the time now, unless given)."""
    subtype: Interaction = note.subtype or ("read" if method == "GET" else "create")
    who: Caller = note.caller or NOBODY
    record = AuditRecord(
        subtype=subtype,
        action=AuditRecord.action_for(subtype),
        outcome=outcome_for(status),
        recorded=recorded or datetime.now(UTC),
        status=status,  # outcomeDesc is written from it, the effect and the reasons
        user_sub=who.sub,
        user_name=who.name,
        user_role=who.role,
        user_org=who.org,
        purpose=note.purpose,
        client_id=who.client_id,
        client_address=client_address,
        patient_nhs=note.patient_nhs,
        query=clean_query(query) if subtype == "search-type" and query else None,
        request_id=request_id,
        decision_effect=note.effect,
        reasons=note.reasons or refusal,
        break_glass=note.break_glass,
        break_glass_reason=note.break_glass_reason,
        resource_type=note.resource_type,
        resource_ids=note.resource_ids,
        operation=note.operation,
        **({"event_id": event_id} if event_id else {}),
    )
    return build_audit_event(record, base_url)


TEMPLATES: Final = EventTemplates()
"""The process's remembered AuditEvent templates (:mod:`gateway.audit.templates`)."""


def prepare_event(
    note: AuditNote,
    *,
    status: int,
    method: str,
    query: str,
    request_id: str,
    client_address: str | None,
    base_url: str,
    refusal: tuple[str, ...] = (),
    event_id: str | None = None,
    recorded: datetime | None = None,
) -> Prepared:
    """What :func:`build_event` would build, ready to append: the same stored bytes, from a
    template remembered by everything in the event but its id, time and request id."""
    who: Caller = note.caller or NOBODY
    key = (
        note.subtype,
        note.operation,
        note.resource_type,
        note.resource_ids,
        note.purpose,
        note.patient_nhs,
        note.effect,
        note.reasons or refusal,
        note.break_glass,
        note.break_glass_reason,
        who.sub,
        who.name,
        who.role,
        who.org,
        who.client_id,
        status,
        method,
        query,
        client_address,
        base_url,
    )

    def build(event_id: str, recorded: datetime, request_id: str) -> dict[str, Any]:
        return build_event(
            note,
            status=status,
            method=method,
            query=query,
            request_id=request_id,
            client_address=client_address,
            base_url=base_url,
            refusal=refusal,
            event_id=event_id,
            recorded=recorded,
        )

    return TEMPLATES.prepared(key, build, request_id, event_id=event_id, recorded=recorded)

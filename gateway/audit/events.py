"""What the HTTP layer knows about a request (:class:`AuditRecord`) and the FHIR R4 AuditEvent
built from it (:func:`build_audit_event`), after IHE BALP ``PatientRead`` / ``PatientQuery``.

The shape is fixed by ``specs/behaviour.md`` (section "Audit events"):

- ``type`` ``audit-event-type#rest``; ``subtype`` a ``restful-interaction`` code;
- ``agent[]``: the user (``who.identifier`` = token ``sub``, ``role`` = RBAC code,
  ``purposeOfUse``, ``requestor`` true), the user's organisation (ODS code), the client
  (with its network address) and the gateway;
- ``entity[]``: the patient (NHS number), the query of a search (base64), the request id
  (``type.code`` = ``XrequestId``) and the resources the answer touched;
- break-glass: ``meta.security`` ``v3-ActReason#BTG`` and the stated reason, both in an
  extension on the user agent and in ``outcomeDesc``.

The event is a plain dict, built without pydantic (this runs once per request); the tests
validate it with the R4B model. The dict is what the store hashes: build it once, never
round-trip it through a model.

    rec = AuditRecord(subtype="read", action="R", outcome="0", recorded=now, ...)
    event = build_audit_event(rec, "https://gw.example/fhir")
    await store.append(event)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from adapters.ukcore import NHS_NUMBER_SYSTEM, ODS_ORGANISATION_SYSTEM, PROFILE_AUDITEVENT
from gateway.audit.codes import (
    ACT_REASON_SYSTEM,
    AGENT_TYPE_SYSTEM,
    AUDIT_EVENT_TYPE_SYSTEM,
    BALP_ENTITY_TYPE_SYSTEM,
    BREAK_GLASS_CODE,
    CLIENT_SYSTEM,
    DICOM_SYSTEM,
    ENTITY_TYPE_SYSTEM,
    EXT_BREAK_GLASS_REASON,
    EXT_DECISION_EFFECT,
    EXT_DECISION_REASON,
    GATEWAY_NAME,
    LOCAL_ROLE_SYSTEM,
    OBJECT_ROLE_SYSTEM,
    RBAC_ROLE_SYSTEM,
    REASON_SYSTEM,
    RESTFUL_INTERACTION_SYSTEM,
    SECURITY_ROLE_TYPE_SYSTEM,
    SOURCE_TYPE_SYSTEM,
    USER_SYSTEM,
)
from gateway.audit.widths import (
    CODE_MAX,
    NHS_NUMBER_LEN,
    ORG_MAX,
    PURPOSE_MAX,
    QUERY_MAX,
    SUB_MAX,
    TEXT_MAX,
    clip,
)
from gateway.audit.withdrawn import WITHDRAWN_DESC as WITHDRAWN_DESC  # re-exported
from gateway.audit.withdrawn import WITHDRAWN_STATUS as WITHDRAWN_STATUS  # re-exported
from gateway.audit.withdrawn import withdrawn as withdrawn  # re-exported
from gateway.ids import random_uuid
from vocabulary import AuditSubtype as Interaction

Action = Literal["C", "R", "U", "D", "E"]
Outcome = Literal["0", "4", "8", "12"]

_SUBTYPE_ACTION: Final[dict[str, Action]] = {
    "read": "R",
    "vread": "R",
    "search-type": "E",
    "operation": "E",
    "create": "C",
    "update": "U",
    "delete": "D",
}
_OUTCOME_TEXT: Final[dict[str, str]] = {
    "0": "success",
    "4": "refused",
    "8": "gateway failure",
    "12": "gateway failure",
}


# The text fields of an AuditRecord and the width each is stored in (clipped to it).
_WIDTHS: Final = (
    ("user_sub", SUB_MAX),
    ("user_issuer", TEXT_MAX),
    ("user_name", TEXT_MAX),
    ("user_role", CODE_MAX),
    ("user_org", ORG_MAX),
    ("purpose", PURPOSE_MAX),
    ("client_id", SUB_MAX),
    ("client_address", CODE_MAX),
    ("query", QUERY_MAX),
    ("request_id", CODE_MAX),
    ("break_glass_reason", TEXT_MAX),
    ("resource_type", CODE_MAX),
    ("operation", CODE_MAX),
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One request as the HTTP layer saw it; everything :func:`build_audit_event` needs.

    ``outcome`` is ``"0"`` when the request was permitted (also when filtered), ``"4"`` when it
    was refused or malformed, ``"8"`` when the gateway failed. ``query`` is the raw query string
    of a search (stored base64, as BALP asks). ``resource_ids`` are logical ids of type
    ``resource_type`` (or ``"Type/id"`` references) the answer touched. ``status`` is the
    HTTP status the caller got, for a request of the FHIR API: ``outcomeDesc`` is then
    written from it, the decision effect and the reasons (:func:`describe_outcome`), which
    stay data of their own in the event (its decision extensions).
    """

    subtype: Interaction
    action: Action
    outcome: Outcome
    recorded: datetime
    outcome_desc: str | None = None
    status: int | None = None
    user_sub: str | None = None
    user_issuer: str | None = None
    user_name: str | None = None
    user_role: str | None = None
    user_org: str | None = None
    purpose: str | None = None
    client_id: str | None = None
    client_address: str | None = None
    patient_nhs: str | None = None
    query: str | None = None
    request_id: str | None = None
    decision_effect: str | None = None
    reasons: tuple[str, ...] = ()
    break_glass: bool = False
    break_glass_reason: str | None = None
    resource_type: str | None = None
    resource_ids: tuple[str, ...] = ()
    operation: str | None = None
    event_id: str = field(default_factory=lambda: random_uuid())

    def __post_init__(self) -> None:
        if self.recorded.tzinfo is None:
            raise ValueError("AuditRecord.recorded must be timezone-aware")
        if self.subtype not in _SUBTYPE_ACTION:
            raise ValueError(f"unknown interaction {self.subtype!r}")
        if self.outcome not in _OUTCOME_TEXT:
            raise ValueError(f"unknown outcome {self.outcome!r}")

    @staticmethod
    def action_for(subtype: Interaction) -> Action:
        """The BALP action code that goes with a restful interaction (read -> R, search -> E)."""
        return _SUBTYPE_ACTION[subtype]

    def fits(self) -> bool:
        """Whether every field is within the widths above already (:meth:`fitted` would
        change nothing but ``outcomeDesc``): the usual case, checked without a copy."""
        patient = self.patient_nhs
        reasons = self.reasons
        return (
            (patient is None or len(patient) == NHS_NUMBER_LEN)
            and len(reasons) <= 32
            and all(r and len(r) <= CODE_MAX for r in reasons)
            and all(
                (value := getattr(self, name)) is None or len(value) <= limit
                for name, limit in _WIDTHS
            )
        )

    def fitted(self) -> AuditRecord:
        """This record with every field within the widths above (long values clipped)."""
        patient = self.patient_nhs
        if patient is not None and len(patient) != NHS_NUMBER_LEN:
            patient = None  # never a valid NHS number; the caller validated what it knew
        clipped: dict[str, Any] = {n: clip(getattr(self, n), limit) for n, limit in _WIDTHS}
        return replace(
            self,
            outcome_desc=clip(
                self.outcome_desc if self.status is None else http_summary(self), TEXT_MAX
            ),
            patient_nhs=patient,
            reasons=tuple(r for r in (clip(r, CODE_MAX) for r in self.reasons[:32]) if r),
            **clipped,
        )


def format_instant(value: datetime) -> str:
    """A FHIR ``instant`` in UTC with milliseconds: ``2026-11-23T11:12:06.123+00:00``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _role_system(role: str) -> str:
    # National RBAC job roles look like R8000; anything else is a local role (LA-SW).
    return RBAC_ROLE_SYSTEM if role[:1] == "R" and role[1:].isdigit() else LOCAL_ROLE_SYSTEM


def http_summary(rec: AuditRecord) -> str:
    """``HTTP 403; decision deny; reasons a, b``: what a request of the FHIR API came to."""
    parts = [f"HTTP {rec.status}"]
    if rec.decision_effect:
        parts.append(f"decision {rec.decision_effect}")
    if rec.reasons:
        parts.append("reasons " + ", ".join(rec.reasons))
    return "; ".join(parts)


def describe_outcome(rec: AuditRecord) -> str:
    """``outcomeDesc``: the decision effect and reason codes (and break-glass, if used)."""
    return _describe(rec, rec.outcome_desc)


def _describe(rec: AuditRecord, outcome_desc: str | None) -> str:
    parts: list[str] = []
    if outcome_desc:
        parts.append(outcome_desc)
    else:
        effect = rec.decision_effect or _OUTCOME_TEXT[rec.outcome]
        parts.append(f"{effect}: {', '.join(rec.reasons)}" if rec.reasons else effect)
    if rec.break_glass:
        parts.append(f"break-glass: {rec.break_glass_reason or 'no reason stated'}")
    return "; ".join(parts)


def _user_agent(rec: AuditRecord) -> dict[str, Any]:
    who: dict[str, Any] = {}
    if rec.user_sub:
        ident = {"system": rec.user_issuer or USER_SYSTEM, "value": rec.user_sub}
        who["identifier"] = ident
    if rec.user_name:
        who["display"] = rec.user_name
    agent: dict[str, Any] = {
        "type": _concept(SECURITY_ROLE_TYPE_SYSTEM, "humanuser", "human user"),
        "requestor": True,
    }
    if rec.user_role:
        agent["role"] = [_concept(_role_system(rec.user_role), rec.user_role)]
    if who:
        agent["who"] = who
    if rec.purpose:
        agent["purposeOfUse"] = [_concept(ACT_REASON_SYSTEM, rec.purpose)]
    if rec.break_glass:
        agent["extension"] = [
            {
                "url": EXT_BREAK_GLASS_REASON,
                "valueString": rec.break_glass_reason or "no reason stated",
            }
        ]
    return agent


def _agents(rec: AuditRecord, gateway_base_url: str) -> list[dict[str, Any]]:
    agents = [_user_agent(rec)]
    if rec.user_org:
        agents.append(
            {
                "type": _concept(AGENT_TYPE_SYSTEM, "user-organisation", "user's organisation"),
                "who": {"identifier": {"system": ODS_ORGANISATION_SYSTEM, "value": rec.user_org}},
                "requestor": False,
            }
        )
    if rec.client_id or rec.client_address:
        client: dict[str, Any] = {
            "type": _concept(DICOM_SYSTEM, "110153", "Source Role ID"),
            "requestor": False,
        }
        if rec.client_id:
            client["who"] = {"identifier": {"system": CLIENT_SYSTEM, "value": rec.client_id}}
        if rec.client_address:
            client["network"] = {"address": rec.client_address, "type": "2"}
        agents.append(client)
    agents.append(
        {
            "type": _concept(DICOM_SYSTEM, "110152", "Destination Role ID"),
            "who": {"display": GATEWAY_NAME, "identifier": {"value": gateway_base_url}},
            "requestor": False,
            "network": {"address": gateway_base_url, "type": "5"},
        }
    )
    return agents


def _resource_reference(resource_type: str | None, rid: str) -> str:
    return rid if "/" in rid or not resource_type else f"{resource_type}/{rid}"


def _entities(rec: AuditRecord) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if rec.patient_nhs:
        entities.append(
            {
                "what": {
                    "reference": f"Patient/{rec.patient_nhs}",
                    "identifier": {"system": NHS_NUMBER_SYSTEM, "value": rec.patient_nhs},
                },
                "type": _coding(ENTITY_TYPE_SYSTEM, "1", "Person"),
                "role": _coding(OBJECT_ROLE_SYSTEM, "1", "Patient"),
            }
        )
    if rec.query is not None:
        query = base64.b64encode(rec.query.encode("utf-8")).decode("ascii")
        query_entity: dict[str, Any] = {
            "type": _coding(ENTITY_TYPE_SYSTEM, "2", "System Object"),
            "role": _coding(OBJECT_ROLE_SYSTEM, "24", "Query"),
            "query": query,
        }
        if rec.resource_type:
            query_entity["description"] = rec.resource_type
        entities.append(query_entity)
    for rid in rec.resource_ids:
        entities.append(
            {
                "what": {"reference": _resource_reference(rec.resource_type, rid)},
                "type": _coding(ENTITY_TYPE_SYSTEM, "2", "System Object"),
                "role": _coding(OBJECT_ROLE_SYSTEM, "4", "Domain Resource"),
            }
        )
    if rec.request_id:
        entities.append(
            {
                "what": {"identifier": {"value": rec.request_id}},
                "type": _coding(BALP_ENTITY_TYPE_SYSTEM, "XrequestId", "X-Request-Id"),
            }
        )
    return entities


def _decision_extensions(rec: AuditRecord) -> list[dict[str, Any]]:
    extensions: list[dict[str, Any]] = []
    if rec.decision_effect:
        extensions.append({"url": EXT_DECISION_EFFECT, "valueCode": rec.decision_effect})
    extensions.extend(
        {"url": EXT_DECISION_REASON, "valueCoding": _coding(REASON_SYSTEM, reason)}
        for reason in rec.reasons
    )
    return extensions


def build_audit_event(rec: AuditRecord, gateway_base_url: str) -> dict[str, Any]:
    """The FHIR R4 ``AuditEvent`` (a plain dict) for one request, shaped as behaviour.md says.

    Values longer than their stored width are clipped first (:meth:`AuditRecord.fitted`;
    a record that fits already is used as it is, with only its ``outcomeDesc`` written).
    """
    if rec.fits():
        desc = clip(rec.outcome_desc if rec.status is None else http_summary(rec), TEXT_MAX)
    else:
        rec = rec.fitted()
        desc = rec.outcome_desc
    base = gateway_base_url.rstrip("/")
    meta: dict[str, Any] = {"profile": [PROFILE_AUDITEVENT]}
    if rec.break_glass:
        meta["security"] = [_coding(ACT_REASON_SYSTEM, BREAK_GLASS_CODE, "break the glass")]
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": rec.event_id,
        "meta": meta,
    }
    extensions = _decision_extensions(rec)
    if extensions:
        event["extension"] = extensions
    event["type"] = _coding(AUDIT_EVENT_TYPE_SYSTEM, "rest", "Restful Operation")
    event["subtype"] = [_coding(RESTFUL_INTERACTION_SYSTEM, rec.subtype, rec.subtype)]
    event["action"] = rec.action
    event["recorded"] = format_instant(rec.recorded)
    event["outcome"] = rec.outcome
    event["outcomeDesc"] = _describe(rec, desc)
    if rec.purpose:
        event["purposeOfEvent"] = [_concept(ACT_REASON_SYSTEM, rec.purpose)]
    event["agent"] = _agents(rec, base)
    event["source"] = {
        "site": GATEWAY_NAME,
        "observer": {"display": GATEWAY_NAME, "identifier": {"value": base}},
        "type": [_coding(SOURCE_TYPE_SYSTEM, "4", "Application Server")],
    }
    entities = _entities(rec)
    if entities:
        event["entity"] = entities
    return event

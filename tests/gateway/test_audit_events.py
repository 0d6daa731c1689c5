"""The AuditEvent shape (behaviour.md, "Audit events"; IHE BALP), checked with the R4B model."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from adapters.ukcore import NHS_NUMBER_SYSTEM, ODS_ORGANISATION_SYSTEM, PROFILE_AUDITEVENT
from gateway.audit.codes import (
    ACT_REASON_SYSTEM,
    BALP_ENTITY_TYPE_SYSTEM,
    EXT_BREAK_GLASS_REASON,
    EXT_DECISION_REASON,
    RBAC_ROLE_SYSTEM,
)
from gateway.audit.events import AuditRecord, build_audit_event

BASE = "http://127.0.0.1:8080/fhir"
NHS = "9990000018"
T0 = datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)


def make_record(**overrides: Any) -> AuditRecord:
    """A permitted read of one person's record by a GP (override any field)."""
    fields: dict[str, Any] = {
        "subtype": "read",
        "action": "R",
        "outcome": "0",
        "recorded": T0,
        "user_sub": "gp-1",
        "user_issuer": "urn:caregateway:demo-issuer",
        "user_name": "Dr Ada Jones",
        "user_role": "R8000",
        "user_org": "F81001",
        "purpose": "TREAT",
        "client_id": "epr-1",
        "client_address": "127.0.0.1",
        "patient_nhs": NHS,
        "request_id": "req-0001",
        "decision_effect": "permit",
        "resource_type": "Patient",
        "resource_ids": (NHS,),
    }
    fields.update(overrides)
    return AuditRecord(**fields)


def validated(event: dict[str, Any]) -> AuditEvent:
    """Validate against the R4B model (same element tree as R4), from JSON bytes."""
    return AuditEvent.model_validate_json(orjson.dumps(event))


def agent_of(event: dict[str, Any], type_code: str) -> dict[str, Any]:
    for agent in event["agent"]:
        if agent["type"]["coding"][0]["code"] == type_code:
            return dict(agent)
    raise AssertionError(f"no agent of type {type_code}")


def test_read_event_shape_validates_and_carries_balp_fields() -> None:
    event = build_audit_event(make_record(), BASE)
    model = validated(event)
    assert model.id == event["id"]
    assert event["meta"]["profile"] == [PROFILE_AUDITEVENT]
    assert "security" not in event["meta"]
    assert event["type"]["code"] == "rest"
    assert event["subtype"][0] == {
        "system": "http://hl7.org/fhir/restful-interaction",
        "code": "read",
        "display": "read",
    }
    assert event["action"] == "R"
    assert event["outcome"] == "0"
    assert event["recorded"] == "2026-11-23T10:00:00.123+00:00"
    assert event["outcomeDesc"] == "permit"

    user = agent_of(event, "humanuser")
    assert user["requestor"] is True
    assert user["who"]["identifier"] == {"system": "urn:caregateway:demo-issuer", "value": "gp-1"}
    assert user["who"]["display"] == "Dr Ada Jones"
    assert user["role"][0]["coding"][0] == {"system": RBAC_ROLE_SYSTEM, "code": "R8000"}
    assert user["purposeOfUse"][0]["coding"][0] == {"system": ACT_REASON_SYSTEM, "code": "TREAT"}
    org = agent_of(event, "user-organisation")
    assert org["who"]["identifier"] == {"system": ODS_ORGANISATION_SYSTEM, "value": "F81001"}
    assert org["requestor"] is False
    client = agent_of(event, "110153")
    assert client["who"]["identifier"]["value"] == "epr-1"
    assert client["network"] == {"address": "127.0.0.1", "type": "2"}
    gateway = agent_of(event, "110152")
    assert gateway["network"]["address"] == BASE
    assert [a["requestor"] for a in event["agent"]].count(True) == 1

    patient = event["entity"][0]
    assert patient["what"]["identifier"] == {"system": NHS_NUMBER_SYSTEM, "value": NHS}
    assert patient["role"]["code"] == "1"
    request = event["entity"][-1]
    assert request["type"] == {
        "system": BALP_ENTITY_TYPE_SYSTEM,
        "code": "XrequestId",
        "display": "X-Request-Id",
    }
    assert request["what"]["identifier"]["value"] == "req-0001"
    assert not any("query" in e for e in event["entity"])


def test_search_event_has_base64_query_and_touched_resources() -> None:
    query = f"patient={NHS}&status=active&_count=10"
    rec = make_record(
        subtype="search-type",
        action="E",
        query=query,
        resource_type="CarePlan",
        resource_ids=("sc-plan-1", "CarePlan/cm-plan-2"),
        decision_effect="permit-filtered",
        reasons=("withheld-by-label",),
    )
    event = build_audit_event(rec, BASE)
    validated(event)
    assert event["subtype"][0]["code"] == "search-type"
    assert event["action"] == "E"
    (query_entity,) = [e for e in event["entity"] if "query" in e]
    assert base64.b64decode(query_entity["query"]).decode() == query
    assert query_entity["role"]["code"] == "24"
    refs = [e["what"]["reference"] for e in event["entity"] if e.get("role", {}).get("code") == "4"]
    assert refs == ["CarePlan/sc-plan-1", "CarePlan/cm-plan-2"]
    assert event["outcomeDesc"] == "permit-filtered: withheld-by-label"


def test_refusal_event_carries_decision_reasons() -> None:
    rec = make_record(
        outcome="4",
        decision_effect="deny",
        reasons=("no-legitimate-relationship", "patient-objected"),
        resource_ids=(),
    )
    event = build_audit_event(rec, BASE)
    validated(event)
    assert event["outcome"] == "4"
    assert event["outcomeDesc"] == "deny: no-legitimate-relationship, patient-objected"
    codes = [
        x["valueCoding"]["code"] for x in event["extension"] if x["url"] == EXT_DECISION_REASON
    ]
    assert codes == ["no-legitimate-relationship", "patient-objected"]


def test_token_failure_event_has_no_user_but_is_valid() -> None:
    """A 401 knows no user or patient: the event still says who asked from where."""
    rec = AuditRecord(
        subtype="read",
        action="R",
        outcome="4",
        recorded=T0,
        outcome_desc="invalid token",
        client_address="127.0.0.1",
        request_id="req-401",
    )
    event = build_audit_event(rec, BASE)
    validated(event)
    user = agent_of(event, "humanuser")
    assert "who" not in user
    assert event["outcomeDesc"] == "invalid token"
    assert [e["type"]["code"] for e in event["entity"]] == ["XrequestId"]


def test_break_glass_is_labelled_with_reason() -> None:
    rec = make_record(
        purpose="ETREAT",
        decision_effect="permit",
        reasons=("break-glass",),
        break_glass=True,
        break_glass_reason="unconscious in ED, no relationship recorded",
    )
    event = build_audit_event(rec, BASE)
    validated(event)
    assert event["meta"]["security"] == [
        {"system": ACT_REASON_SYSTEM, "code": "BTG", "display": "break the glass"}
    ]
    user = agent_of(event, "humanuser")
    assert user["extension"] == [
        {
            "url": EXT_BREAK_GLASS_REASON,
            "valueString": "unconscious in ED, no relationship recorded",
        }
    ]
    assert "break-glass: unconscious in ED" in event["outcomeDesc"]
    assert user["purposeOfUse"][0]["coding"][0]["code"] == "ETREAT"


def test_local_role_gets_local_system_and_recorded_is_utc() -> None:
    bst = datetime(2026, 7, 1, 12, 0, tzinfo=UTC) + timedelta(hours=1)
    rec = make_record(user_role="LA-SW", recorded=bst.astimezone())
    event = build_audit_event(rec, BASE)
    assert agent_of(event, "humanuser")["role"][0]["coding"][0]["system"] == "urn:caregateway:role"
    assert event["recorded"].endswith("+00:00")


def test_record_rejects_naive_time_and_unknown_codes() -> None:
    with pytest.raises(ValueError):
        make_record(recorded=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        make_record(subtype="history")
    with pytest.raises(ValueError):
        make_record(outcome="1")
    assert AuditRecord.action_for("search-type") == "E"
    assert dataclasses.is_dataclass(make_record())


def test_each_record_gets_its_own_event_id() -> None:
    a, b = build_audit_event(make_record(), BASE), build_audit_event(make_record(), BASE)
    assert a["id"] != b["id"]

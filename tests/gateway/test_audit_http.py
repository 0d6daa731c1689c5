"""Every FHIR request that touches patient data, or is refused, leaves exactly one AuditEvent,
committed before the answer — read back from the store after real HTTP requests."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from adapters.validation import validate_resource
from simulators.population import SCENARIOS
from tests.gateway.harness import Gateway

BTG = ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "BTG")


def _nhs(key: str) -> str:
    number = SCENARIOS[key].nhs_number
    assert number is not None
    return number


async def _events_for(gw: Gateway, request_id: str) -> list[dict[str, Any]]:
    """Events whose request-id entity (``type.code`` XrequestId) is ``request_id``."""
    events = await gw.audit.search(count=500)
    return [
        e
        for e in events
        for ent in e.get("entity", ())
        if ent.get("type", {}).get("code") == "XrequestId"
        and ent.get("what", {}).get("identifier", {}).get("value") == request_id
    ]


async def _one_event(gw: Gateway, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    rid = f"t-{uuid.uuid4()}"
    headers = {**kw.pop("headers", gw.headers()), "X-Request-ID": rid}
    resp = await gw.client.get(f"{gw.base_url}{path}", headers=headers, **kw)
    events = await _events_for(gw, rid)
    assert len(events) == 1, f"expected one audit event for {path}, found {len(events)}"
    validate_resource(events[0])
    return resp.status_code, events[0]


def _user_agent(event: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in event["agent"] if a.get("requestor"))


def _patient_values(event: dict[str, Any]) -> set[str]:
    return {
        str(e.get("what", {}).get("identifier", {}).get("value"))
        for e in event.get("entity", ())
        if "what" in e
    }


async def test_read_is_audited_with_user_purpose_and_patient(gw: Gateway) -> None:
    number = _nhs("both")
    status, event = await _one_event(gw, f"/Patient/{number}")
    assert status == 200
    assert event["outcome"] == "0"
    assert event["subtype"][0]["code"] == "read"
    user = _user_agent(event)
    assert user["who"]["identifier"]["value"] == "test-user-0001"
    assert user["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert number in _patient_values(event)
    assert (
        "https://fhir.hl7.org.uk/StructureDefinition/UKCore-AuditEvent" in event["meta"]["profile"]
    )


async def test_search_and_everything_are_audited(gw: Gateway) -> None:
    number = _nhs("both")
    status, event = await _one_event(gw, "/CarePlan", params={"patient": number})
    assert status == 200 and event["subtype"][0]["code"] == "search-type"
    assert number in _patient_values(event)
    status, event = await _one_event(gw, f"/Patient/{number}/$everything")
    assert status == 200 and event["subtype"][0]["code"] == "operation"


async def test_refusals_are_audited(gw: Gateway) -> None:
    number = _nhs("both")
    status, event = await _one_event(
        gw, f"/Patient/{number}", headers={"Authorization": "Bearer junk"}
    )
    assert status == 401 and event["outcome"] == "4"
    status, event = await _one_event(gw, f"/Patient/{number}", headers=gw.headers(purpose=None))
    assert status == 403 and event["outcome"] == "4"
    assert "purpose-missing" in event.get("outcomeDesc", "")
    status, event = await _one_event(gw, "/Patient/9990000019")
    assert status == 400 and event["outcome"] == "4"
    status, event = await _one_event(gw, f"/Patient/{number}", headers=gw.headers(org="F81004"))
    assert status == 403 and "no-legitimate-relationship" in event.get("outcomeDesc", "")
    assert number in _patient_values(event)


async def test_break_glass_is_marked(gw: Gateway) -> None:
    number = _nhs("both")
    headers = {
        **gw.headers(org="F81004", purpose=None),
        "X-Purpose-Of-Use": "ETREAT",
        "X-Break-Glass-Reason": "Unconscious in A&E, no records available",
    }
    status, event = await _one_event(gw, f"/Patient/{number}", headers=headers)
    assert status == 200
    labels = {(s["system"], s["code"]) for s in event["meta"].get("security", ())}
    assert BTG in labels


async def test_metadata_is_not_audited(gw: Gateway) -> None:
    before = len(await gw.audit.search(count=1000))
    await gw.client.get(f"{gw.base_url}/metadata")
    assert len(await gw.audit.search(count=1000)) == before


async def test_trail_verifies(gw: Gateway) -> None:
    result = await gw.audit.verify()
    assert result.ok


# --- one table: each kind of request, its one event, and what the event says --------------


def _org_agent(event: dict[str, Any]) -> str | None:
    for agent in event["agent"]:
        if agent["type"]["coding"][0]["code"] == "user-organisation":
            return str(agent["who"]["identifier"]["value"])
    return None


def _query_entity(event: dict[str, Any]) -> str | None:
    import base64

    for entity in event.get("entity", ()):
        if "query" in entity:
            return base64.b64decode(entity["query"]).decode("utf-8")
    return None


CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # (case, path or path template, request options, what the one event must say)
    (
        "read",
        "/Patient/{both}",
        {},
        {"status": 200, "subtype": "read", "outcome": "0", "desc": "permit"},
    ),
    (
        "search",
        "/CarePlan",
        {"params": {"patient": "{both}"}},
        {"status": 200, "subtype": "search-type", "outcome": "0", "query": "patient={both}"},
    ),
    (
        "everything",
        "/Patient/{both}/$everything",
        {},
        {"status": 200, "subtype": "operation", "outcome": "0", "desc": "permit"},
    ),
    (
        "filtered",
        "/Patient/{mental_health_r}/$everything",
        {"headers": {"role": "R8008", "org": "RWX"}},
        {"status": 200, "subtype": "operation", "outcome": "0", "role": "R8008", "org": "RWX"},
    ),
    (
        "no relationship",
        "/Patient/{both}",
        {"headers": {"org": "F81004"}},
        {"status": 403, "outcome": "4", "desc": "no-legitimate-relationship", "org": "F81004"},
    ),
    (
        "objection",
        "/Patient/{restricted}",
        {"headers": {"org": "F81004"}},
        {"status": 403, "outcome": "4", "org": "F81004"},
    ),
    (
        "bad NHS number",
        "/Patient/9990000019",
        {},
        {"status": 400, "outcome": "4", "patient": None},
    ),
    (
        "missing purpose",
        "/Patient/{both}",
        {"headers": {"purpose": None}},
        {"status": 403, "outcome": "4", "desc": "purpose-missing", "purpose": None},
    ),
    (
        "expired token",
        "/Patient/{both}",
        {"headers": {"ttl_s": -120}},
        {"status": 401, "outcome": "4", "user": None},
    ),
    (
        "garbage token",
        "/Patient/{both}",
        {"raw_auth": "Bearer not.a.jwt"},
        {"status": 401, "outcome": "4", "user": None},
    ),
    (
        "no token",
        "/Patient/{both}",
        {"raw_auth": None},
        {"status": 401, "outcome": "4", "user": None},
    ),
]


def _fill(text: str) -> str:
    return text.format(**{k: s.nhs_number for k, s in SCENARIOS.items() if s.nhs_number})


@pytest.mark.parametrize(("case", "path", "options", "want"), CASES, ids=[c[0] for c in CASES])
async def test_each_request_kind_leaves_one_event_that_says_what_happened(
    gw: Gateway, case: str, path: str, options: dict[str, Any], want: dict[str, Any]
) -> None:
    if "raw_auth" in options:
        headers = {} if options["raw_auth"] is None else {"Authorization": options["raw_auth"]}
    else:
        headers = gw.headers(**options.get("headers", {}))
    params = {k: _fill(v) for k, v in options.get("params", {}).items()}
    status, event = await _one_event(gw, _fill(path), headers=headers, params=params)

    assert status == want["status"], case
    assert event["outcome"] == want["outcome"]
    if "subtype" in want:
        assert event["subtype"][0]["code"] == want["subtype"]
    if "desc" in want:
        assert want["desc"] in event["outcomeDesc"]
    user = _user_agent(event)
    if want.get("user", "test-user-0001") is None:
        assert "identifier" not in user.get("who", {})  # an unverified token names nobody
    else:
        assert user["who"]["identifier"]["value"] == "test-user-0001"
        assert user["role"][0]["coding"][0]["code"] == want.get("role", "R8000")
        assert _org_agent(event) == want.get("org", "F81001")
        purposes = [p["coding"][0]["code"] for p in user.get("purposeOfUse", ())]
        assert purposes == ([] if want.get("purpose", "TREAT") is None else ["TREAT"])
    patient = want.get("patient", _fill(path.split("/")[2]) if "{" in path else None)
    if "params" in options:
        patient = _fill(options["params"]["patient"])
    if patient is None:
        assert not any(e.get("role", {}).get("code") == "1" for e in event.get("entity", ()))
    else:
        assert patient in _patient_values(event)
    if "query" in want:
        assert _query_entity(event) == _fill(want["query"])

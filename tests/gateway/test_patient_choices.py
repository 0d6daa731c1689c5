"""The person's own choices and "who has looked at my record" (issue 14), over real HTTP.

Each test has a gateway of its own (its own database: directives, audit trail), so what
one records reaches no other.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from gateway.routes.patient_log import person_view
from simulators.runner import RunningSources
from tests.gateway.harness import Gateway, assert_fhir
from tests.gateway.patient_support import (
    ODS_SYSTEM,
    as_person,
    entries,
    naming,
    nhs,
    objection,
    patient_gateway,
    post_json,
    refused,
    staff,
)

ME = nhs("both")  # GP F81001; social care LA883 and community RWX hold them
GP = "F81001"
OTHER = nhs("social_only")


@pytest_asyncio.fixture(loop_scope="session")
async def gw(running_sources: RunningSources) -> AsyncIterator[Gateway]:
    async with patient_gateway(running_sources) as gateway:
        yield gateway


def _gp(gw: Gateway, **kw: Any) -> dict[str, str]:
    return staff(gw, "R8000", GP, name="Dr Alice Example", sub="cis2-uuid-alice", **kw)


# --- the person's own directives ---------------------------------------------------------


async def test_an_objection_the_person_records_stops_the_clinicians_next_request(
    gw: Gateway,
) -> None:
    before = await gw.get(f"/Patient/{ME}/$everything", headers=_gp(gw))
    assert before.status_code == 200

    me = as_person(gw, ME)
    created = await post_json(gw, "/Consent", objection(ME), me)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["performer"] == [
        {
            "reference": f"Patient/{ME}",
            "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": ME},
        }
    ]
    assert "organization" not in stored  # the person acts for no organisation
    assert created.headers["location"].endswith(f"/Consent/{stored['id']}/_history/1")

    refused(await gw.get(f"/Patient/{ME}/$everything", headers=_gp(gw)), "patient-objected")
    refused(await gw.get(f"/CarePlan?patient={ME}", headers=_gp(gw)), "patient-objected")
    # ... which does not stop the person seeing their own record
    assert (await gw.get(f"/Patient/{ME}", headers=me)).status_code == 200
    # ... nor emergency access (break-glass), which is flagged for review
    emergency = await gw.get(
        f"/Patient/{ME}/$everything",
        headers=staff(gw, "R8000", "RAT", purpose="ETREAT", reason="Unconscious in A&E"),
    )
    assert emergency.status_code == 200

    withdrawn = {**stored, "status": "inactive"}
    for key in ("meta", "dateTime", "performer"):
        withdrawn.pop(key)
    changed = await post_json(gw, f"/Consent/{stored['id']}", withdrawn, me, "PUT")
    assert changed.status_code == 200, changed.text
    assert changed.json()["meta"]["versionId"] == "2"
    after = await gw.get(f"/Patient/{ME}/$everything", headers=_gp(gw))
    assert after.status_code == 200

    history = assert_fhir(await gw.get(f"/Consent/{stored['id']}/_history", headers=me))
    assert [e["resource"]["status"] for e in history["entry"]] == ["inactive", "active"]


async def test_the_person_refuses_a_recipient_and_withholds_a_source(gw: Gateway) -> None:
    me = as_person(gw, ME)
    refuse = await post_json(gw, "/Consent", naming(ME, "IRCP", GP), me)
    assert refuse.status_code == 201, refuse.text
    refused(
        await gw.get(f"/CarePlan?patient={ME}", headers=_gp(gw)), "recipient-refused-by-patient"
    )
    # the person sees the directive refusing their GP; the GP may not
    mine = assert_fhir(await gw.get(f"/Consent?patient={ME}", headers=me))
    assert {r["id"] for r in entries(mine)} == {refuse.json()["id"]}
    refused(
        await gw.get(f"/Consent/{refuse.json()['id']}", headers=_gp(gw)),
        "recipient-refused-by-patient",
    )

    withhold = await post_json(gw, "/Consent", naming(ME, "CST", "RWX"), me)
    assert withhold.status_code == 201, withhold.text
    worker = staff(gw, "LA-SW", "LA883")
    plans = assert_fhir(await gw.get(f"/CarePlan?patient={ME}", headers=worker))
    sources = {r["id"].split(".")[0] for r in entries(plans) if r["resourceType"] == "CarePlan"}
    assert sources == {"socialcare"}  # the community trust's plans are not shared
    # the person still sees everything of their own, both sources
    own = assert_fhir(await gw.get(f"/CarePlan?patient={ME}", headers=me))
    assert {r["id"].split(".")[0] for r in entries(own)} == {"socialcare", "community"}


async def test_a_body_naming_someone_else_as_performer_is_refused(gw: Gateway) -> None:
    body = {
        **objection(ME),
        "performer": [{"identifier": {"system": "urn:caregateway:user", "value": "dr-x"}}],
    }
    resp = await post_json(gw, "/Consent", body, as_person(gw, ME))
    assert resp.status_code == 422, resp.text
    assert resp.json()["issue"][0]["expression"] == ["Consent.performer"]
    assert (
        assert_fhir(await gw.get(f"/Consent?patient={ME}", headers=as_person(gw, ME)))["total"] == 0
    )


async def test_changing_a_choice_needs_the_update_scope(gw: Gateway) -> None:
    me = as_person(gw, ME)
    created = (await post_json(gw, "/Consent", objection(ME), me)).json()
    read_only = as_person(gw, ME, scope="patient/*.rs patient/Consent.crs")
    body = {**objection(ME), "id": created["id"], "status": "inactive"}
    refused(
        await post_json(gw, f"/Consent/{created['id']}", body, read_only, "PUT"),
        "scope-insufficient",
    )


# --- who has looked at my record ---------------------------------------------------------


async def _review(gw: Gateway, event_id: str, note: str) -> None:
    ig = staff(
        gw, "R0001", "X26", purpose="HOPERAT", scopes=("user/AuditEvent.rs", "user/AuditEvent.c")
    )
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "outcome", "valueCode": "appropriate"},
            {"name": "note", "valueString": note},
        ],
    }
    resp = await post_json(gw, f"/AuditEvent/{event_id}/$review", body, ig)
    assert resp.status_code == 200, resp.text


async def test_the_access_log_shows_the_clinicians_access_and_no_ig_note(gw: Gateway) -> None:
    seen = await gw.get(f"/Patient/{ME}/$everything", headers=_gp(gw))
    assert seen.status_code == 200
    emergency = await gw.get(
        f"/CarePlan?patient={ME}&status=active",
        headers=staff(
            gw, "R8001", "RAT", purpose="ETREAT", reason="Collapsed at home, neighbour Jean called"
        ),
    )
    assert emergency.status_code == 200
    await gw.get(f"/Patient/{OTHER}", headers=_gp(gw))  # someone else's record
    await gw.get(f"/Patient/{ME}", headers=as_person(gw, ME))  # the person's own read
    trail = await gw.audit.search(patient=ME, count=50)
    glass = next(e for e in trail if e.get("meta", {}).get("security"))
    await _review(gw, glass["id"], "NOTE-IG-7731 spoke to ward manager")

    resp = await gw.get(f"/AuditEvent?patient={ME}", headers=as_person(gw, ME))
    log = assert_fhir(resp)
    events = entries(log)
    assert log["total"] == len(events) == 2  # the two accesses by staff, nothing else
    text = resp.text
    for secret in (
        "NOTE-IG-7731",  # IG review note
        "Dr Alice Example",  # staff name: not shown by default
        "cis2-uuid-alice",  # staff user id
        "neighbour Jean",  # break-glass reason text
        OTHER,  # someone else's record
        "status=active",  # the query
        "c3RhdHVz",  # ... nor base64 of it
    ):
        assert secret not in text, secret
    assert "network" not in json.dumps(events)  # no network address of anyone
    assert all(e["entity"][0]["what"]["identifier"]["value"] == ME for e in events)

    emergency_view, gp_view = events  # newest first
    org = next(a for a in gp_view["agent"] if not a["requestor"])["who"]["identifier"]
    assert org == {"system": ODS_SYSTEM, "value": GP}
    user = next(a for a in gp_view["agent"] if a["requestor"])
    assert user["role"][0]["coding"][0]["code"] == "R8000"
    assert user["role"][0]["coding"][0]["display"] == "Clinical Practitioner"
    assert user["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert "who" not in user
    assert gp_view["recorded"] <= emergency_view["recorded"]
    assert gp_view["outcome"] == "0" and "meta" not in gp_view
    assert emergency_view["meta"]["security"][0]["code"] == "BTG"
    emergency_org = next(a for a in emergency_view["agent"] if not a["requestor"])
    assert emergency_org["who"]["identifier"]["value"] == "RAT"
    for view in events:
        assert set(view) <= {
            "resourceType", "id", "meta", "type", "subtype", "action", "recorded", "outcome",
            "purposeOfEvent", "agent", "source", "entity",
        }  # fmt: skip
        assert "outcomeDesc" not in view and "extension" not in json.dumps(view)


async def test_the_access_log_needs_p9_and_names_the_patient(gw: Gateway) -> None:
    refused(
        await gw.get(f"/AuditEvent?patient={ME}", headers=as_person(gw, ME, "P5")),
        "identity-proofing-insufficient",
    )
    missing = await gw.get("/AuditEvent", headers=as_person(gw, ME))
    assert missing.status_code == 400 and missing.json()["issue"][0]["expression"] == ["patient"]
    probe = await gw.get(
        f"/AuditEvent?patient={ME}&agent=cis2-uuid-alice", headers=as_person(gw, ME)
    )
    assert probe.status_code == 400


def test_staff_names_are_shown_only_when_the_policy_says_so() -> None:
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": "e1",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "recorded": "2026-11-30T10:00:00.000+00:00",
        "outcome": "0",
        "agent": [
            {
                "requestor": True,
                "who": {"display": "Dr Alice Example", "identifier": {"value": "alice"}},
                "role": [{"coding": [{"system": "x", "code": "R8000"}]}],
            },
            {"requestor": False, "who": {"identifier": {"system": ODS_SYSTEM, "value": GP}}},
        ],
        "entity": [
            {"what": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": ME}}}
        ],
    }
    names: dict[str, dict[str, str]] = {
        "role_names": {},
        "org_names": {GP: "Tilbury Health Centre"},
    }
    shown = person_view(event, staff_names=True, **names)
    hidden = person_view(event, staff_names=False, **names)
    assert shown is not None and hidden is not None
    assert shown["agent"][0]["who"] == {"display": "Dr Alice Example"}  # never the id
    assert "who" not in hidden["agent"][0]
    assert hidden["agent"][1]["who"]["display"] == "Tilbury Health Centre"
    no_org = {**event, "agent": event["agent"][:1]}  # the person's own request
    assert person_view(no_org, staff_names=True, **names) is None


def test_the_persons_own_reads_are_not_staff_access_for_the_privacy_rules() -> None:
    from gateway.audit import is_record_access

    def event(purpose: str) -> dict[str, Any]:
        return {
            "agent": [
                {"requestor": True, "purposeOfUse": [{"coding": [{"code": purpose}]}]},
            ],
            "entity": [
                {
                    "what": {
                        "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": ME}
                    }
                }
            ],
        }

    assert is_record_access(event("TREAT"))
    assert not is_record_access(event("PATRQT"))  # out-of-hours, volume, surname: not them
    assert is_record_access(event("PATRQT"), own=True)  # the deceased rule still looks
    assert not is_record_access(event("HOPERAT"), own=True)

"""Joint care plans through the real gateway and the real source simulators (issue 15).

Every test runs on an SQLite file and on PostgreSQL: the answers depend on what the store
keeps (versions, the conditional update) and what the audit trail commits.

The person is the ``both`` scenario person: GP practice F81001, known to the council
(LA883, social care) and the community trust. The GP writes a plan naming the council's
social worker as lead professional; the social worker reads it beside the council's own
plans and adds to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from simulators.population import COUNCIL_ODS
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome
from tests.gateway.joint_gateways import joint_gateway  # noqa: F401  (fixture)
from tests.gateway.joint_support import (
    ADMIN,
    GP,
    GP_ORG,
    IG,
    NHS,
    ODS,
    SOCIAL_WORKER,
    SYSTEM,
    JointClient,
    activity,
    audit_of,
    changed,
    entity_refs,
    patient_of,
    plan_body,
    subtype_of,
)

PART = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


@pytest.fixture(scope="module")
def joint(joint_gateway: Gateway) -> JointClient:  # noqa: F811
    return JointClient(joint_gateway)


def refusal_of(org: str) -> dict[str, Any]:
    """The person's directive: do not let ``org`` see my record (IRCP deny)."""
    actor = {
        "role": {"coding": [{"system": PART, "code": "IRCP"}]},
        "reference": {"identifier": {"system": ODS, "value": org}},
    }
    return _consent({"type": "permit", "provision": [{"type": "deny", "actor": [actor]}]})


def withholding(org: str) -> dict[str, Any]:
    """The person's directive: do not share what ``org`` holds (CST deny)."""
    actor = {
        "role": {"coding": [{"system": PART, "code": "CST"}]},
        "reference": {"identifier": {"system": ODS, "value": org}},
    }
    return _consent({"type": "permit", "provision": [{"type": "deny", "actor": [actor]}]})


def _consent(provision: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                   "code": "OPTIN"}]},
        "provision": provision,
    }  # fmt: skip


async def record_directive(joint: JointClient, body: dict[str, Any]) -> str:
    resp = await joint.gw.client.post(
        f"{joint.gw.base_url}/Consent",
        json=body,
        headers=joint.headers(GP, **{"Content-Type": "application/fhir+json"}),
    )
    return str(assert_fhir(resp, 201)["id"])


async def withdraw(joint: JointClient, consent_id: str) -> None:
    current = assert_fhir(await joint.get(f"/Consent/{consent_id}"))
    resp = await joint.gw.client.put(
        f"{joint.gw.base_url}/Consent/{consent_id}",
        json={**current, "status": "inactive"},
        headers=joint.headers(GP, **{"Content-Type": "application/fhir+json"}),
    )
    assert_fhir(resp, 200)


@asynccontextmanager
async def directive_in_force(joint: JointClient, body: dict[str, Any]) -> AsyncIterator[str]:
    """The person's directive ``body``, recorded for the block and withdrawn after it."""
    consent_id = await record_directive(joint, body)
    try:
        yield consent_id
    finally:
        await withdraw(joint, consent_id)


def ids(bundle: dict[str, Any], rtype: str = "CarePlan") -> list[str]:
    return [
        e["resource"]["id"]
        for e in bundle.get("entry", ())
        if e["resource"]["resourceType"] == rtype
    ]


async def test_gp_creates_social_worker_adds_stale_gp_update_refused(joint: JointClient) -> None:
    gw = joint.gw
    # The GP creates a plan naming the council's social worker as lead professional.
    created = await joint.post(plan_body())
    plan = assert_fhir(created, 201)
    pid = plan["id"]
    assert pid.startswith("joint.") and created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"] == f"{gw.base_url}/CarePlan/{pid}/_history/1"
    assert plan["meta"]["versionId"] == "1"
    assert plan["meta"]["source"] == "urn:caregateway:source:joint"
    assert plan["meta"]["tag"] == [{"system": "urn:caregateway:care-domain", "code": "health"}]
    assert plan["author"]["identifier"] == {"system": ODS, "value": GP_ORG}
    assert {"system": ODS, "value": GP_ORG} in [c["identifier"] for c in plan["contributor"]]
    assert plan["subject"] == {"reference": f"Patient/{NHS}"}
    event = await audit_of(gw, created)
    assert subtype_of(event) == "create" and event["outcome"] == "0"
    assert patient_of(event) == NHS
    assert f"CarePlan/{pid}/_history/1" in entity_refs(event)

    # The social worker sees it beside the council's own plans.
    found = assert_fhir(await joint.get("/CarePlan", SOCIAL_WORKER, patient=NHS))
    sources = {e["resource"]["meta"]["source"] for e in found["entry"]
               if e["resource"]["resourceType"] == "CarePlan"}  # fmt: skip
    assert pid in ids(found)
    assert {"urn:caregateway:source:joint", "urn:caregateway:source:socialcare"} <= sources
    read = await joint.get(f"/CarePlan/{pid}", SOCIAL_WORKER)
    assert assert_fhir(read) == plan and read.headers["ETag"] == 'W/"1"'

    # ... and adds an activity, with If-Match: version 2.
    body = changed(plan, activity=[*plan["activity"], activity("Carer's assessment", COUNCIL_ODS)])
    second = await joint.put(pid, body, SOCIAL_WORKER, if_match='W/"1"')
    v2 = assert_fhir(second, 200)
    assert second.headers["ETag"] == 'W/"2"' and v2["meta"]["versionId"] == "2"
    assert [a["detail"]["description"] for a in v2["activity"]] == ["Step 0", "Carer's assessment"]
    assert v2["author"] == plan["author"]  # the custodian stays the GP practice
    orgs = [c["identifier"]["value"] for c in v2["contributor"] if c["identifier"]["system"] == ODS]
    assert orgs == [GP_ORG, COUNCIL_ODS]
    event = await audit_of(gw, second)
    assert subtype_of(event) == "update" and event["outcome"] == "0"
    assert f"CarePlan/{pid}/_history/2" in entity_refs(event)

    # The GP, still holding version 1, is told it is stale and what is current.
    stale = await joint.put(pid, changed(plan, title="Changed meanwhile"), GP, if_match='W/"1"')
    assert_outcome(stale, 412, "conflict")
    assert stale.headers["ETag"] == 'W/"2"'
    event = await audit_of(gw, stale)
    assert event["outcome"] == "4" and f"CarePlan/{pid}/_history/2" in entity_refs(event)

    # Every version is kept, each as it was stored; the current one is version 2.
    history = assert_fhir(await joint.get(f"/CarePlan/{pid}/_history", SOCIAL_WORKER))
    assert history["type"] == "history"
    assert [e["resource"] for e in history["entry"]] == [v2, plan]
    assert assert_fhir(await joint.get(f"/CarePlan/{pid}/_history/1")) == plan
    assert_outcome(await joint.get(f"/CarePlan/{pid}/_history/3"), 404, "not-found")
    assert assert_fhir(await joint.get(f"/CarePlan/{pid}", GP)) == v2

    # Provenance per version: who wrote it, and whose plan it is.
    everything = assert_fhir(await joint.get(f"/Patient/{NHS}/$everything", SOCIAL_WORKER))
    provenance = {
        e["resource"]["target"][0]["reference"]: e["resource"]["agent"]
        for e in everything["entry"]
        if e["resource"]["resourceType"] == "Provenance"
        and e["resource"]["meta"]["source"] == "urn:caregateway:source:joint"
    }
    who = {ref: [a["who"]["identifier"]["value"] for a in agents]
           for ref, agents in provenance.items()}  # fmt: skip
    assert who[f"CarePlan/{pid}/_history/1"] == [GP_ORG, GP_ORG]
    assert who[f"CarePlan/{pid}/_history/2"] == [COUNCIL_ODS, GP_ORG]


async def test_refuse_recipient_directive_hides_the_plan_from_that_organisation(
    joint: JointClient,
) -> None:
    plan = assert_fhir(await joint.post(plan_body()), 201)
    async with directive_in_force(joint, refusal_of(COUNCIL_ODS)):
        search = await joint.get("/CarePlan", SOCIAL_WORKER, patient=NHS)
        body = assert_outcome(search, 403, "forbidden")
        assert "recipient-refused-by-patient" in body["issue"][0]["details"]["text"]
        assert plan["title"] not in search.text
        direct = await joint.get(f"/CarePlan/{plan['id']}", SOCIAL_WORKER)
        assert_outcome(direct, 403, "forbidden")
        event = await audit_of(joint.gw, direct)
        assert event["outcome"] == "4" and patient_of(event) == NHS
        history = await joint.get(f"/CarePlan/{plan['id']}/_history", SOCIAL_WORKER)
        assert_outcome(history, 403, "forbidden") and plan["title"] not in history.text
        event = await audit_of(joint.gw, history)
        assert event["outcome"] == "4" and patient_of(event) == NHS
        # Nor may the refused organisation change it; the GP still reads and writes it.
        refused = await joint.put(plan["id"], plan, SOCIAL_WORKER, if_match='W/"1"')
        assert_outcome(refused, 403, "forbidden")
        assert "recipient-refused-by-patient" in refused.text
        assert plan["id"] in ids(assert_fhir(await joint.get("/CarePlan", GP, patient=NHS)))
        assert_fhir(await joint.put(plan["id"], plan, GP, if_match='W/"1"'), 200)
    assert plan["id"] in ids(assert_fhir(await joint.get("/CarePlan", SOCIAL_WORKER, patient=NHS)))


async def test_the_author_is_the_custodian_a_withheld_author_hides_its_plans(
    joint: JointClient,
) -> None:
    plan = assert_fhir(await joint.post(plan_body()), 201)
    async with directive_in_force(joint, withholding(GP_ORG)):
        found = assert_fhir(await joint.get("/CarePlan", SOCIAL_WORKER, patient=NHS))
        shown = ids(found)
        assert plan["id"] not in shown
        assert any(i.startswith("socialcare.") for i in shown)  # the council's own plans stay
        outcomes = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "outcome"]
        assert any(o["issue"][0]["code"] == "suppressed" for o in outcomes)
        assert_outcome(await joint.get(f"/CarePlan/{plan['id']}", SOCIAL_WORKER), 403, "forbidden")
        # The GP practice still sees what it wrote.
        assert plan["id"] in ids(assert_fhir(await joint.get("/CarePlan", GP, patient=NHS)))


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        (ADMIN, "role-not-permitted"),
        (SYSTEM, "role-not-permitted"),
        ({**IG, "scopes": ("user/*.cruds",)}, "role-not-permitted"),
        ({**GP, "purpose": "ETREAT"}, "purpose-not-permitted"),
        ({**GP, "org": "Y99999", "sub": "stranger"}, "no-legitimate-relationship"),
    ],
    ids=["admin", "system-client", "ig-role", "break-glass", "no-relationship"],
)
async def test_who_may_not_write_is_refused_and_audited(
    joint: JointClient, who: dict[str, Any], reason: str
) -> None:
    emergency = who.get("purpose") == "ETREAT"
    headers = {"X-Break-Glass-Reason": "Collapsed at home"} if emergency else {}
    created = await joint.post(plan_body(), who, **headers)
    body = assert_outcome(created, 403, "forbidden")
    assert [c["code"] for c in body["issue"][0]["details"]["coding"]] == [reason]
    event = await audit_of(joint.gw, created)
    assert subtype_of(event) == "create" and event["outcome"] == "4"
    assert reason in event["outcomeDesc"]
    plan = assert_fhir(await joint.post(plan_body()), 201)
    updated = await joint.put(plan["id"], plan, who, if_match='W/"1"')
    assert_outcome(updated, 403, "forbidden")
    event = await audit_of(joint.gw, updated)
    assert subtype_of(event) == "update" and event["outcome"] == "4"
    assert reason in event["outcomeDesc"]
    current = assert_fhir(await joint.get(f"/CarePlan/{plan['id']}"))
    assert current == plan  # nothing was written


async def test_source_plans_stay_read_only(joint: JointClient) -> None:
    found = assert_fhir(await joint.get("/CarePlan", GP, patient=NHS))
    council = next(i for i in ids(found) if i.startswith("socialcare."))
    plan = next(e["resource"] for e in found["entry"] if e["resource"]["id"] == council)
    put = await joint.put(council, plan, GP, if_match='W/"1"')
    body = assert_outcome(put, 405, "not-supported")
    assert "socialcare" in body["issue"][0]["diagnostics"]
    assert COUNCIL_ODS in body["issue"][0]["diagnostics"]
    deleted = await joint.delete(f"/CarePlan/{council}")
    assert COUNCIL_ODS in assert_outcome(deleted, 405, "not-supported")["issue"][0]["diagnostics"]
    event = await audit_of(joint.gw, deleted)
    assert event["outcome"] == "4"
    ours = assert_fhir(await joint.post(plan_body()), 201)
    assert_outcome(await joint.delete(f"/CarePlan/{ours['id']}"), 405, "not-supported")

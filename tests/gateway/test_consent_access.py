"""Who may read and change a person's consent directives, over real HTTP (issue 9, 1 and 2).

Every test runs twice: on an SQLite file and on PostgreSQL (``postgres_url``), because the
answers depend on what the store keeps (versions) and what the audit trail commits. The
gateway is the one of ``test_consent_api`` (consent policy as decider, real simulators).

The person is the ``both`` scenario person: GP practice F81001, known to the council
(social care) and the community trust. ``Y99999`` has nothing to do with them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.embedded import free_port
from gateway.policy.store import BreakGlassGrantRow, ConsentDirectiveRow, ConsentVersionRow
from simulators.population import COMMUNITY_ODS, COUNCIL_ODS
from simulators.runner import RunningSources, source_configs
from tests.consent.factories import PART, consent_body
from tests.gateway.consent_support import delete_rows
from tests.gateway.harness import assert_fhir, assert_outcome
from tests.gateway.test_consent_api import (
    GP_ORG,
    NHS_BOTH,
    NHS_COMMUNITY,
    ConsentGateway,
    consent_gateway,
    objection,
    reason_codes,
    serving,
)

UNRELATED = "Y99999"
IG: dict[str, Any] = {"role": "R0001", "purpose": "HOPERAT", "org": "X26"}
STRANGER: dict[str, Any] = {"role": "R8000", "org": UNRELATED, "sub": "stranger-0001"}
READER = {"scopes": ("user/*.rs",)}


gw = consent_gateway("consent-access", "sqlite", "postgresql")


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def empty_tables(gw: ConsentGateway) -> AsyncIterator[None]:
    yield
    await delete_rows(gw.engine, ConsentDirectiveRow, ConsentVersionRow, BreakGlassGrantRow)


# --- helpers -----------------------------------------------------------------------------


def refusing(ods: str, number: str = NHS_BOTH) -> dict[str, Any]:
    actor = {
        "role": {"coding": [{"system": PART, "code": "IRCP"}]},
        "reference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                     "value": ods}},
    }  # fmt: skip
    provision = {"type": "permit", "provision": [{"type": "deny", "actor": [actor]}]}
    return consent_body(number, "OPTIN", provision)


async def everything(gw: ConsentGateway, **who: Any) -> httpx.Response:
    return await gw.get(f"/Patient/{NHS_BOTH}/$everything", **{**READER, **who})


async def withdraw(
    gw: ConsentGateway, stored: dict[str, Any], rid: str | None = None, **who: Any
) -> httpx.Response:
    return await gw.put(stored["id"], {**stored, "status": "inactive"}, request_id=rid, **who)


def denied(resp: httpx.Response, reason: str) -> dict[str, Any]:
    oo = assert_outcome(resp, 403, "forbidden")
    assert reason_codes(oo) == [reason], oo
    assert oo["issue"][0]["details"]["coding"][0]["system"] == "urn:caregateway:decision-reason"
    return oo


def entity_refs(event: dict[str, Any]) -> list[str]:
    whats = [e.get("what", {}) for e in event.get("entity", ())]
    return [w["reference"] for w in whats if "reference" in w]


def event_patient(event: dict[str, Any]) -> str | None:
    for entity in event.get("entity", ()):
        ident = entity.get("what", {}).get("identifier", {})
        if ident.get("system") == "https://fhir.nhs.uk/Id/nhs-number":
            value: str = ident["value"]
            return value
    return None


async def one_event(gw: ConsentGateway, rid: str) -> dict[str, Any]:
    events = await gw.audit_events(rid)
    assert len(events) == 1, events
    return events[0]


# --- finding 1: an unrelated organisation -----------------------------------------------


async def test_an_unrelated_clinician_can_neither_read_withdraw_nor_create(
    gw: ConsentGateway,
) -> None:
    stored = assert_fhir(await gw.post(objection(), **IG), 201)
    cid = stored["id"]
    denied(await everything(gw), "patient-objected")

    for path in (
        f"/Consent/{cid}",
        f"/Consent/{cid}/_history/1",
        f"/Consent/{cid}/_history",
        f"/Consent?patient={NHS_BOTH}",
    ):
        oo = denied(await gw.get(path, **STRANGER), "no-legitimate-relationship")
        assert NHS_BOTH not in json.dumps(oo) and cid not in json.dumps(oo)
    denied(await withdraw(gw, stored, **STRANGER), "no-legitimate-relationship")
    denied(await gw.post(objection(), **STRANGER), "no-legitimate-relationship")
    # Emergency access is for the record, never for its rules.
    glass = {**STRANGER, "purpose": "ETREAT"}
    denied(await withdraw(gw, stored, **glass), "no-legitimate-relationship")

    # Nothing changed: the objection is in force, the GP is still refused, nothing was added.
    assert assert_fhir(await gw.get(f"/Consent/{cid}", **IG), 200) == stored
    denied(await everything(gw), "patient-objected")
    search = assert_fhir(await gw.get("/Consent", params={"patient": NHS_BOTH}, **IG), 200)
    assert [e["resource"]["id"] for e in search["entry"]] == [cid]


@pytest.mark.parametrize("org", [GP_ORG, COUNCIL_ODS, COMMUNITY_ODS])
async def test_organisations_in_the_persons_care_may_read_and_withdraw(
    gw: ConsentGateway, org: str
) -> None:
    who = {"role": "LA-SW" if org == COUNCIL_ODS else "R8000", "org": org}
    stored = assert_fhir(await gw.post(objection(), **who), 201)
    assert assert_fhir(await gw.get(f"/Consent/{stored['id']}", **who), 200) == stored
    assert assert_fhir(await withdraw(gw, stored, **who), 200)["status"] == "inactive"
    assert_fhir(await everything(gw), 200)


async def test_ig_roles_under_hoperat_need_no_relationship(gw: ConsentGateway) -> None:
    for role in ("R0001", "R5105"):
        ig = {**IG, "role": role}
        stored = assert_fhir(await gw.post(objection(NHS_COMMUNITY), **ig), 201)
        assert assert_fhir(await gw.get(f"/Consent/{stored['id']}", **ig), 200) == stored
        assert assert_fhir(await withdraw(gw, stored, **ig), 200)["meta"]["versionId"] == "2"
    # Not under another purpose: the policy lets them use HOPERAT only.
    oo = assert_outcome(await gw.post(objection(), **{**IG, "purpose": "TREAT"}), 403, "forbidden")
    assert reason_codes(oo) == ["purpose-not-permitted"]


# --- finding 1: the organisation a directive refuses -------------------------------------


async def test_the_refused_organisation_cannot_read_or_withdraw_its_refusal(
    gw: ConsentGateway,
) -> None:
    refusal = assert_fhir(await gw.post(refusing(GP_ORG), **IG), 201)
    other = assert_fhir(await gw.post(objection(status="inactive"), **IG), 201)
    cid = refusal["id"]
    denied(await everything(gw), "recipient-refused-by-patient")

    gp_ig = {**IG, "org": GP_ORG}  # even the practice's own Privacy Officer
    for who in ({}, gp_ig):
        for path in (f"/Consent/{cid}", f"/Consent/{cid}/_history/1", f"/Consent/{cid}/_history"):
            denied(await gw.get(path, **who), "recipient-refused-by-patient")
        denied(await withdraw(gw, refusal, **who), "recipient-refused-by-patient")

    # A search leaves the refusal out, neither returned nor counted, and says so.
    bundle = assert_fhir(await gw.get("/Consent", params={"patient": NHS_BOTH}), 200)
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert [e["resource"]["id"] for e in matches] == [other["id"]] and bundle["total"] == 1
    (oo,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert oo["issue"][0]["code"] == "suppressed"
    assert reason_codes(oo) == ["recipient-refused-by-patient"]
    assert cid not in json.dumps(bundle)

    # Still in force; everyone else in the person's care still reads it.
    denied(await everything(gw), "recipient-refused-by-patient")
    trust = {"role": "R8001", "org": COMMUNITY_ODS}
    assert assert_fhir(await gw.get(f"/Consent/{cid}", **trust), 200) == refusal


async def test_a_refused_organisation_recording_its_own_refusal_cannot_read_it_back(
    gw: ConsentGateway,
) -> None:
    stored = assert_fhir(await gw.post(refusing(GP_ORG)), 201)  # told by the person, written down
    denied(await gw.get(f"/Consent/{stored['id']}"), "recipient-refused-by-patient")
    denied(await withdraw(gw, stored), "recipient-refused-by-patient")
    denied(await everything(gw), "recipient-refused-by-patient")


async def test_a_directive_that_refused_an_organisation_once_is_never_shown_it_in_history(
    gw: ConsentGateway,
) -> None:
    refusal = assert_fhir(await gw.post(refusing(COMMUNITY_ODS), **IG), 201)
    changed = assert_fhir(await gw.put(refusal["id"], refusing(UNRELATED), **IG), 200)
    trust = {"role": "R8001", "org": COMMUNITY_ODS}
    assert assert_fhir(await gw.get(f"/Consent/{refusal['id']}", **trust), 200) == changed
    denied(
        await gw.get(f"/Consent/{refusal['id']}/_history/1", **trust),
        "recipient-refused-by-patient",
    )
    denied(
        await gw.get(f"/Consent/{refusal['id']}/_history", **trust), "recipient-refused-by-patient"
    )


# --- finding 9 for this API: an outage is not a refusal ----------------------------------


async def test_no_relationship_where_a_source_did_not_answer_is_503(
    gw: ConsentGateway, running_sources: RunningSources, tmp_path: Path
) -> None:
    """With the community source down, a caller the council does not know of may still be
    known to the community trust: that is an outage (503 naming the source, audited as a
    failure), never ``no-legitimate-relationship``. A caller the council knows is decided."""
    configs = [
        replace(c, base_url=f"http://127.0.0.1:{free_port()}/fhir", timeout_s=0.5)
        if c.name == "community"
        else c
        for c in source_configs(running_sources)
    ]
    async with serving(configs, tmp_path / "gateway.db", NHS_BOTH) as half:
        rid = f"outage-{uuid.uuid4()}"
        resp = await half.client.get(
            f"{half.base_url}/Consent",
            params={"patient": NHS_BOTH},
            headers={**half.headers(**STRANGER), "X-Request-ID": rid},
        )
        oo = assert_outcome(resp, 503, "transient")
        assert "community" in oo["issue"][0]["diagnostics"]
        assert "details" not in oo["issue"][0]  # no reason codes: not a decision
        event = await one_event(half, rid)
        assert event["outcome"] == "8" and "deny" not in event["outcomeDesc"]
        assert event_patient(event) == NHS_BOTH

        # The council names the GP practice: decided, whatever the community source does.
        bundle = assert_fhir(await half.get("/Consent", params={"patient": NHS_BOTH}), 200)
        assert bundle["total"] == 0
        # IG work needs no source at all.
        assert_fhir(await half.post(objection(), **IG), 201)


# --- finding 2: audited naming the person and the directive's version -------------------


async def test_a_withdrawal_is_in_the_persons_access_report_with_the_directive_version(
    gw: ConsentGateway,
) -> None:
    stored = assert_fhir(await gw.post(objection()), 201)
    cid = stored["id"]
    rid = f"withdraw-{uuid.uuid4()}"
    assert assert_fhir(await withdraw(gw, stored, rid), 200)["meta"]["versionId"] == "2"
    refused_rid = f"refused-{uuid.uuid4()}"
    denied(await withdraw(gw, stored, refused_rid, **STRANGER), "no-legitimate-relationship")

    report = assert_fhir(await gw.get(f"/Patient/{NHS_BOTH}/$access-report", **IG), 200)
    events = {
        e["resource"]["id"]: e["resource"]
        for e in report["entry"]
        if e["resource"]["resourceType"] == "AuditEvent"
    }

    def by_request(request_id: str) -> dict[str, Any]:
        (found,) = [
            ev for ev in events.values()
            if any(x.get("what", {}).get("identifier", {}).get("value") == request_id
                   for x in ev.get("entity", ()))
        ]  # fmt: skip
        return found

    withdrawal = by_request(rid)
    assert withdrawal["subtype"][0]["code"] == "update" and withdrawal["outcome"] == "0"
    assert event_patient(withdrawal) == NHS_BOTH
    assert f"Consent/{cid}/_history/2" in entity_refs(withdrawal)
    assert withdrawal["agent"][0]["who"]["identifier"]["value"] == "consent-user-0001"

    refused = by_request(refused_rid)
    assert refused["outcome"] == "4" and event_patient(refused) == NHS_BOTH
    assert f"Consent/{cid}/_history/2" in entity_refs(refused)  # the version it tried to change
    assert "no-legitimate-relationship" in refused["outcomeDesc"]


async def test_every_create_read_and_refused_attempt_names_the_person(gw: ConsentGateway) -> None:
    rid = f"create-{uuid.uuid4()}"
    resp = await gw.client.post(
        f"{gw.base_url}/Consent",
        json=objection(),
        headers={**gw.headers(), "Content-Type": "application/fhir+json", "X-Request-ID": rid},
    )
    stored = assert_fhir(resp, 201)
    event = await one_event(gw, rid)
    assert event["subtype"][0]["code"] == "create" and event_patient(event) == NHS_BOTH
    assert entity_refs(event) == [f"Patient/{NHS_BOTH}", f"Consent/{stored['id']}/_history/1"]

    async def post(body: Any, **who: Any) -> dict[str, Any]:
        request_id = f"post-{uuid.uuid4()}"
        await gw.client.post(
            f"{gw.base_url}/Consent",
            json=body,
            headers={**gw.headers(**who), "Content-Type": "application/fhir+json",
                     "X-Request-ID": request_id},
        )  # fmt: skip
        return await one_event(gw, request_id)

    refused = await post(objection(), **STRANGER)  # the person comes from the body
    assert refused["outcome"] == "4" and event_patient(refused) == NHS_BOTH
    assert "no-legitimate-relationship" in refused["outcomeDesc"]
    broken = await post(objection(provision=None))  # 422: still names the person
    assert broken["outcome"] == "4" and event_patient(broken) == NHS_BOTH

    rid = f"read-{uuid.uuid4()}"
    await gw.client.get(
        f"{gw.base_url}/Consent/{stored['id']}", headers={**gw.headers(), "X-Request-ID": rid}
    )
    event = await one_event(gw, rid)
    assert event_patient(event) == NHS_BOTH
    assert f"Consent/{stored['id']}/_history/1" in entity_refs(event)


# --- finding 2: every version kept ------------------------------------------------------


async def test_every_version_is_kept_and_the_history_is_newest_first(gw: ConsentGateway) -> None:
    v1 = assert_fhir(await gw.post(objection()), 201)
    cid = v1["id"]
    v2 = assert_fhir(await withdraw(gw, v1), 200)
    v3 = assert_fhir(await gw.put(cid, {**v2, "status": "active"}, if_match='W/"2"'), 200)
    for version, expected in (("1", v1), ("2", v2), ("3", v3)):
        resp = await gw.get(f"/Consent/{cid}/_history/{version}")
        assert assert_fhir(resp, 200) == expected
        assert resp.headers["etag"] == f'W/"{version}"'
    for missing in ("4", "0", "01", "x", "1" * 20):
        assert_outcome(await gw.get(f"/Consent/{cid}/_history/{missing}"), 404, "not-found")

    history = assert_fhir(await gw.get(f"/Consent/{cid}/_history"), 200)
    assert history["type"] == "history" and history["total"] == 3
    assert [e["resource"] for e in history["entry"]] == [v3, v2, v1]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "PUT", "POST"]
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert history["entry"][0]["fullUrl"] == f"{gw.base_url}/Consent/{cid}"
    assert_outcome(await gw.get(f"/Consent/{uuid.uuid4()}/_history"), 404, "not-found")

    # A refused change keeps nothing: no version 4.
    denied(await withdraw(gw, v3, **STRANGER), "no-legitimate-relationship")
    history = assert_fhir(await gw.get(f"/Consent/{cid}/_history"), 200)
    assert history["total"] == 3

"""The person themself at the FHIR API (issue 14): their own record only, by every route;
``P5`` sees no care data; what is withheld from them (``NOPAT``, restricted safeguarding)
never reaches them and nothing says it exists.

Everything goes over real HTTP to a real gateway (SMART authorization server on, packaged
default policy) in front of the real simulators. Patient tokens are made by the SMART
server's own claims function and key (:func:`patient_token`); one test gets its token
through the demo sign-in itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from simulators.runner import RunningSources
from tests.gateway.harness import Gateway, assert_fhir
from tests.gateway.patient_support import (
    ACT_CODE,
    NHS_SYSTEM,
    UNKNOWN,
    as_person,
    entries,
    nhs,
    objection,
    outcome_entries,
    patient_gateway,
    post_json,
    refused,
    staff,
)
from tests.smart.support import (
    code_of,
    person_login,
    redeem,
)

ME = nhs("both")
OTHER = nhs("social_only")
NOPAT = nhs("nopat")
SAFEGUARDING = nhs("safeguarding")
NOPAT_PLAN = "community.C900013.cp-900012"
NOPAT_NURSING_PLAN = "community.C900013.cp-900013"
NOPAT_SOCIAL_PLAN = "socialcare.P900013.SP-900015"
OTHER_PLAN = "socialcare.P900002.SP-900003"  # social_only's care plan
SAFEGUARDING_PLAN = "socialcare.P900009.SP-900010"
SAFEGUARDING_NORMAL_PLAN = "socialcare.P900009.SP-900011"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gw(running_sources: RunningSources) -> AsyncIterator[Gateway]:
    async with patient_gateway(running_sources) as gateway:
        yield gateway


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def others_directive(gw: Gateway) -> str:
    """A directive about the other person, recorded by a Privacy Officer."""
    ig = staff(gw, "R0001", "X26", purpose="HOPERAT")
    resp = await post_json(gw, "/Consent", objection(OTHER), ig)
    assert resp.status_code == 201, resp.text
    cid: str = resp.json()["id"]
    return cid


def _other_routes(base: str) -> list[tuple[str, str]]:
    """(method, path) for every way to name another person's record."""
    ident = f"{NHS_SYSTEM}|{OTHER}"
    return [
        ("GET", f"/Patient/{OTHER}"),
        ("GET", f"/Patient?identifier={ident}"),
        ("GET", f"/Patient?identifier={OTHER}"),
        ("GET", f"/CarePlan?patient={OTHER}"),
        ("GET", f"/CarePlan?patient=Patient/{OTHER}"),
        ("GET", f"/CarePlan?patient={base}/Patient/{OTHER}"),
        ("GET", f"/CarePlan?subject={OTHER}"),
        ("GET", f"/CarePlan?subject=Patient/{OTHER}"),
        ("GET", f"/CarePlan?subject={base}/Patient/{OTHER}"),
        ("GET", f"/CarePlan?patient.identifier={ident}"),
        ("GET", f"/CarePlan?patient.identifier={OTHER}"),
        ("GET", f"/Patient/{OTHER}/$everything"),
        ("GET", f"/Patient/{OTHER}/$access-check"),
        ("GET", f"/CarePlan/{OTHER_PLAN}"),
        ("GET", f"/AuditEvent?patient={OTHER}"),
        ("GET", f"/AuditEvent?patient=Patient/{OTHER}"),
        ("GET", f"/AuditEvent?patient={ident}"),
        ("GET", f"/AuditEvent?patient={base}/Patient/{OTHER}"),
        ("GET", f"/Consent?patient={OTHER}"),
        ("GET", f"/Consent?patient=Patient/{OTHER}"),
        ("GET", f"/Consent?patient={base}/Patient/{OTHER}"),
        ("GET", f"/Consent?patient.identifier={ident}"),
        ("GET", f"/Patient/{UNKNOWN}"),  # nobody holds it: still 403, never 404
        ("GET", f"/CarePlan?patient={UNKNOWN}"),
    ]


@pytest.mark.parametrize("index", range(len(_other_routes("x"))))
async def test_a_patient_token_reaches_nobody_else_by_any_route(gw: Gateway, index: int) -> None:
    method, path = _other_routes(gw.base_url)[index]
    resp = await gw.client.request(method, f"{gw.base_url}{path}", headers=as_person(gw, ME))
    body = refused(resp, "not-own-record")
    assert "Ashcombe" not in resp.text  # the other person's surname
    assert len(body["issue"]) == 1 and body["issue"][0]["severity"] == "error"


async def test_the_same_routes_answer_for_the_person_themself(gw: Gateway) -> None:
    """The refusals above are about whose record, not about the route: each answers 200
    with the person's own NHS number in its place."""
    mine = {
        path.replace(OTHER, ME)
        for _, path in _other_routes(gw.base_url)
        if UNKNOWN not in path and "/CarePlan/" not in path
    }
    for path in sorted(mine):
        resp = await gw.client.get(f"{gw.base_url}{path}", headers=as_person(gw, ME))
        assert resp.status_code == 200, (path, resp.text)
    plan = await gw.get("/CarePlan/socialcare.P900001.SP-900001", headers=as_person(gw, ME))
    assert ME in json.dumps(assert_fhir(plan)["subject"])


async def test_other_peoples_directives_are_refused_by_id_history_and_change(
    gw: Gateway, others_directive: str
) -> None:
    me = as_person(gw, ME)
    for path in (
        f"/Consent/{others_directive}",
        f"/Consent/{others_directive}/_history",
        f"/Consent/{others_directive}/_history/1",
    ):
        refused(await gw.get(path, headers=me), "not-own-record")
    withdrawn = {**objection(OTHER), "id": others_directive, "status": "inactive"}
    refused(
        await post_json(gw, f"/Consent/{others_directive}", withdrawn, me, "PUT"), "not-own-record"
    )
    refused(await post_json(gw, "/Consent", objection(OTHER), me), "not-own-record")
    # for a number nobody holds the answer is the same: no 422 "unknown NHS number"
    refused(await post_json(gw, "/Consent", objection(UNKNOWN), me), "not-own-record")
    # the directive is unchanged
    ig = staff(gw, "R0001", "X26", purpose="HOPERAT")
    current = assert_fhir(await gw.get(f"/Consent/{others_directive}", headers=ig))
    assert current["status"] == "active" and current["meta"]["versionId"] == "1"


async def test_refusals_of_another_record_are_audited(gw: Gateway) -> None:
    resp = await gw.get(f"/Patient/{OTHER}/$everything", headers=as_person(gw, ME))
    refused(resp, "not-own-record")
    request_id = resp.headers["x-request-id"]
    events = await gw.audit.search(patient=OTHER, count=200)
    event = next(
        e
        for e in events
        if any(
            x.get("what", {}).get("identifier", {}).get("value") == request_id for x in e["entity"]
        )
    )
    assert event["outcome"] == "4"
    assert "not-own-record" in event["outcomeDesc"]
    user = next(a for a in event["agent"] if a.get("requestor"))
    assert user["who"]["identifier"]["value"] == ME
    assert user["purposeOfUse"][0]["coding"][0]["code"] == "PATRQT"


async def test_ig_operations_are_not_for_the_person(gw: Gateway) -> None:
    me = as_person(gw, ME)
    for path in (f"/Patient/{ME}/$access-report", "/$break-glass-queue", "/$privacy-alerts"):
        refused(await gw.get(path, headers=me), "role-not-permitted")


async def test_staff_scopes_in_a_patient_token_grant_nothing(gw: Gateway) -> None:
    resp = await gw.get(f"/Patient/{ME}", headers=as_person(gw, ME, scope="user/*.rs"))
    refused(resp, "scope-insufficient")


# --- identity proofing -------------------------------------------------------------------


async def test_p5_sees_that_a_record_exists_and_no_care_data(gw: Gateway) -> None:
    p5 = as_person(gw, ME, "P5")
    for path in (
        f"/Patient/{ME}",
        f"/Patient/{ME}/$everything",
        f"/CarePlan?patient={ME}",
        "/CarePlan/socialcare.P900001.SP-900001",
        f"/AuditEvent?patient={ME}",
    ):
        resp = await gw.get(path, headers=p5)
        refused(resp, "identity-proofing-insufficient")
        assert "Thurlow" not in resp.text and "CarePlan/" not in resp.text
    # ... where nobody holds a record, the answer says so (404): a P5 person learns which
    unknown = await gw.get(f"/Patient/{UNKNOWN}", headers=as_person(gw, UNKNOWN, "P5"))
    assert unknown.status_code == 404, unknown.text
    # their own directives they do see
    search = assert_fhir(await gw.get(f"/Consent?patient={ME}", headers=p5))
    assert search["resourceType"] == "Bundle" and search["type"] == "searchset"
    # changing them needs P9 (it changes who sees their record)
    refused(await post_json(gw, "/Consent", objection(ME), p5), "identity-proofing-insufficient")
    p0 = as_person(gw, ME, "P0")
    refused(await gw.get(f"/Consent?patient={ME}", headers=p0), "identity-proofing-insufficient")


# --- what is withheld from the person, unannounced ---------------------------------------


def _no_trace_of(text: str, *ids: str) -> None:
    for rid in ids:
        assert rid not in text
    for word in ("suppressed", "withheld", "NOPAT", "restricted"):
        assert word not in text, word


async def test_a_nopat_plan_never_reaches_the_person_and_nothing_says_it_exists(
    gw: Gateway,
) -> None:
    me = as_person(gw, NOPAT)
    every = await gw.get(f"/Patient/{NOPAT}/$everything", headers=me)
    bundle = assert_fhir(every)
    _no_trace_of(every.text, NOPAT_PLAN, "cp-900012")
    plans = {r["id"] for r in entries(bundle) if r["resourceType"] == "CarePlan"}
    assert plans == {NOPAT_NURSING_PLAN, NOPAT_SOCIAL_PLAN}
    assert not outcome_entries(bundle)
    assert bundle["total"] == len(bundle["entry"])
    for prov in (r for r in entries(bundle) if r["resourceType"] == "Provenance"):
        assert all("cp-900012" not in t["reference"] for t in prov["target"])

    search = await gw.get(f"/CarePlan?patient={NOPAT}", headers=me)
    found = assert_fhir(search)
    _no_trace_of(search.text, NOPAT_PLAN)
    assert found["total"] == 2 and {r["id"] for r in entries(found)} == plans
    assert not outcome_entries(found)
    mh = await gw.get(f"/CarePlan?patient={NOPAT}&category=718347000", headers=me)
    assert assert_fhir(mh)["total"] == 0 and "entry" not in mh.json()

    # a direct read is the same 404 as an id that never existed
    hidden = await gw.get(f"/CarePlan/{NOPAT_PLAN}", headers=me)
    never = await gw.get("/CarePlan/community.C900013.cp-999999", headers=me)
    assert hidden.status_code == never.status_code == 404
    assert hidden.json()["issue"] == never.json()["issue"]

    check = assert_fhir(await gw.get(f"/Patient/{NOPAT}/$access-check", headers=me))
    assert [p["valueCode"] for p in check["parameter"] if p["name"] == "effect"] == ["permit"]
    assert not [p for p in check["parameter"] if p["name"] == "reason"]
    _no_trace_of(json.dumps(check))


async def test_staff_still_see_the_nopat_plan_and_the_audit_trail_records_the_withholding(
    gw: Gateway,
) -> None:
    clinician = staff(gw, "R8000", "F81002")  # the person's GP practice (Purfleet)
    bundle = assert_fhir(await gw.get(f"/CarePlan?patient={NOPAT}", headers=clinician))
    plan = next(r for r in entries(bundle) if r["id"] == NOPAT_PLAN)
    assert {"system": ACT_CODE, "code": "NOPAT"}.items() <= next(
        s for s in plan["meta"]["security"] if s["code"] == "NOPAT"
    ).items()

    resp = await gw.get(f"/CarePlan?patient={NOPAT}", headers=as_person(gw, NOPAT))
    request_id = resp.headers["x-request-id"]
    events = await gw.audit.search(patient=NOPAT, count=200)
    event = next(e for e in events if request_id in json.dumps(e["entity"]))
    assert event["outcome"] == "0"
    assert "permit-filtered" in event["outcomeDesc"]
    assert "withheld-from-patient" in event["outcomeDesc"]


async def test_restricted_safeguarding_records_are_withheld_from_the_person_unannounced(
    gw: Gateway,
) -> None:
    resp = await gw.get(f"/CarePlan?patient={SAFEGUARDING}", headers=as_person(gw, SAFEGUARDING))
    bundle = assert_fhir(resp)
    ids = {r["id"] for r in entries(bundle)}
    assert SAFEGUARDING_PLAN not in ids
    assert SAFEGUARDING_NORMAL_PLAN in ids and "community.C900009.cp-900007" in ids
    assert bundle["total"] == len(ids) == 2
    assert not outcome_entries(bundle)
    _no_trace_of(resp.text, SAFEGUARDING_PLAN, "SP-900010")
    # a social worker, who may see restricted social care records, still sees it
    worker = staff(gw, "LA-SW", "LA883")
    theirs = assert_fhir(await gw.get(f"/CarePlan?patient={SAFEGUARDING}", headers=worker))
    assert SAFEGUARDING_PLAN in {r["id"] for r in entries(theirs)}


async def test_the_person_sees_their_own_restricted_mental_health_plan(gw: Gateway) -> None:
    """R protects the person from other people's eyes, not from their own."""
    number = nhs("mental_health_r")
    bundle = assert_fhir(await gw.get(f"/CarePlan?patient={number}", headers=as_person(gw, number)))
    assert "community.C900010.cp-900008" in {r["id"] for r in entries(bundle)}


# --- through the demo sign-in ------------------------------------------------------------


async def _signed_in(gw: Gateway, person: str, level: str) -> str:
    login = await person_login(gw, person, level, "openid fhirUser patient/*.rs")
    token: str = (await redeem(gw, code_of(login.answer), login.verifier)).json()["access_token"]
    return token


async def test_a_token_from_the_demo_sign_in_reads_only_its_own_record(gw: Gateway) -> None:
    token = await _signed_in(gw, ME, "P9")
    headers: dict[str, Any] = {"Authorization": f"Bearer {token}"}
    own = assert_fhir(await gw.get(f"/Patient/{ME}", headers=headers))
    assert own["id"] == ME
    refused(await gw.get(f"/Patient/{OTHER}", headers=headers), "not-own-record")

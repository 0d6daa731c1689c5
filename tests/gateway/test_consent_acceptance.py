"""Acceptance tests for consent directives and the Caldicott access policy (issue 3).

Everything here goes over real HTTP: a real gateway (uvicorn on loopback, consent policy on,
the packaged default policy) in front of the real social care and community simulators
serving the seeded synthetic population. Assertions are on the FHIR JSON the caller gets.

Tests that record Consents or break-glass grants use a fresh gateway of their own (each has
its own SQLite database), so nothing they store reaches another test. Read-only tests share
the session ``gateway``.

The scenario people (``simulators/population.py``) and where they are registered:

================  ============  =====================================================
both              Tilbury       GP F81001; plans in social care (LA883) and community (RWX)
mental_health_r   Grays         GP F81003; community mental health plan labelled R
restricted        Grays         GP F81003; council record restricted: all of it labelled R
safeguarding      Corringham    GP F81004; a restricted safeguarding plan beside a normal one
================  ============  =====================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from consent import load_policy
from gateway.cache import RecordCache, build_record_cache
from simulators.population import COMMUNITY_ODS, COUNCIL_ODS, PRACTICES
from simulators.runner import RunningSources, source_configs
from tests.consent.factories import consent_body
from tests.gateway.audit_support import own_gateway
from tests.gateway.harness import Gateway, running_gateway
from tests.gateway.patient_support import reason_codes
from tests.support.people import nhs
from tests.support.tokens import staff_headers

FHIR_JSON = "application/fhir+json"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SOCIAL_CARE_PERSON_ID = "urn:caregateway:source:socialcare:person-id"
COMMUNITY_PERSON_ID = "urn:caregateway:source:community:person-id"
SOCIAL_CARE_SOURCE = "urn:caregateway:source:socialcare"
COMMUNITY_SOURCE = "urn:caregateway:source:community"
RECORDER_SCOPES = ("user/*.cruds",)


NHS_BOTH = nhs("both")
NHS_MENTAL_HEALTH = nhs("mental_health_r")
NHS_RESTRICTED = nhs("restricted")
NHS_SAFEGUARDING = nhs("safeguarding")

# The plans the scenarios hold (FHIR ids are "{source}.{person id}.{plan id}").
BOTH_SOCIAL_PLANS = {"socialcare.P900001.SP-900001", "socialcare.P900001.SP-900002"}
BOTH_COMMUNITY_PLANS = {
    "community.C900001.cp-900001",
    "community.C900001.cp-900002",
    "community.C900001.cp-900003",
}
MH_R_PLAN = "community.C900010.cp-900008"  # mental health, labelled R, health domain
MH_NURSING_PLAN = "community.C900010.cp-900009"
MH_SOCIAL_PLAN = "socialcare.P900010.SP-900012"
RESTRICTED_SOCIAL_PLAN = "socialcare.P900008.SP-900009"  # R because the person is restricted
RESTRICTED_COMMUNITY_PLAN = "community.C900008.cp-900006"
SAFEGUARDING_PLAN = "socialcare.P900009.SP-900010"  # safeguarding-protection, labelled R
SAFEGUARDING_NORMAL_PLAN = "socialcare.P900009.SP-900011"
SAFEGUARDING_COMMUNITY_PLAN = "community.C900009.cp-900007"


def gp_of(running: RunningSources, number: str) -> str:
    """The person's registered GP practice, as the council's record of them says."""
    people = running.population.council_people_with(number)
    assert people and people[0].gp is not None
    return people[0].gp.ods_code


# --- fixtures ----------------------------------------------------------------------------


# A gateway of this test's own (own SQLite database: Consents, break-glass grants).
fresh = own_gateway(loop_scope="session")


# --- request helpers ---------------------------------------------------------------------


who = staff_headers  # a reader's headers: ``who(gw, role, org, purpose=..., reason=...)``


async def everything(gw: Gateway, number: str, headers: dict[str, str]) -> httpx.Response:
    return await gw.get(f"/Patient/{number}/$everything", headers=headers)


async def post_consent(
    gw: Gateway, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    resp = await gw.client.post(
        f"{gw.base_url}/Consent",
        content=json.dumps(body),
        headers={**headers, "Content-Type": FHIR_JSON},
    )
    assert resp.status_code == 201, resp.text
    stored: dict[str, Any] = resp.json()
    return stored


def privacy_officer(gw: Gateway) -> dict[str, str]:
    return who(gw, "R0001", "X26", purpose="HOPERAT", scopes=RECORDER_SCOPES)


def consent(number: str, rule: str, provision: dict[str, Any]) -> dict[str, Any]:
    return consent_body(number, rule, provision)


def objection(number: str) -> dict[str, Any]:
    return consent(number, "OPTOUT", {"type": "deny"})


def naming(number: str, role: str, ods: str) -> dict[str, Any]:
    """OPTIN with one nested deny naming an organisation as custodian (CST) or recipient."""
    actor = {
        "role": {"coding": [{"system": PARTICIPATION, "code": role}]},
        "reference": {"identifier": {"system": ODS_SYSTEM, "value": ods}},
    }
    return consent(
        number, "OPTIN", {"type": "permit", "provision": [{"type": "deny", "actor": [actor]}]}
    )


# --- answer helpers ----------------------------------------------------------------------


def bundle_of(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = resp.json()
    assert body["resourceType"] == "Bundle"
    return body


def of_type(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", ())
        if e["resource"]["resourceType"] == rtype and e.get("search", {}).get("mode") != "outcome"
    ]


def ids(bundle: dict[str, Any], rtype: str) -> set[str]:
    return {r["id"] for r in of_type(bundle, rtype)}


def outcomes(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    out = [
        e["resource"]
        for e in bundle.get("entry", ())
        if e.get("search", {}).get("mode") == "outcome"
    ]
    assert all(r["resourceType"] == "OperationOutcome" for r in out)
    return out


reasons = reason_codes  # an OperationOutcome's decision reason codes, in order


def outcomes_with(bundle: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [oo for oo in outcomes(bundle) if any(i["code"] == code for i in oo["issue"])]


def suppressed(bundle: dict[str, Any]) -> dict[str, Any]:
    """The one ``suppressed`` OperationOutcome entry (severity information)."""
    found = outcomes_with(bundle, "suppressed")
    assert len(found) == 1, outcomes(bundle)
    assert found[0]["issue"][0]["severity"] == "information"
    return found[0]


def break_glass_outcome(bundle: dict[str, Any]) -> dict[str, Any]:
    """The entry saying that emergency access was used and is recorded for review."""
    found = [oo for oo in outcomes_with(bundle, "informational") if "break-glass" in reasons(oo)]
    assert len(found) == 1, outcomes(bundle)
    assert "review" in json.dumps(found[0])
    return found[0]


def no_policy_outcomes(bundle: dict[str, Any]) -> None:
    """Nothing was withheld and no emergency access was used."""
    assert outcomes_with(bundle, "suppressed") == []
    assert [oo for oo in outcomes(bundle) if reasons(oo)] == []


def assert_denied(resp: httpx.Response, reason: str) -> dict[str, Any]:
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    oo: dict[str, Any] = resp.json()
    assert oo["resourceType"] == "OperationOutcome"
    issue = oo["issue"][0]
    assert issue["code"] == "forbidden"
    assert reason in reasons(oo), oo
    assert reason in issue["diagnostics"]
    return oo


def says_nothing_of(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked"


def plans_by_source(bundle: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for plan in of_type(bundle, "CarePlan"):
        out.setdefault(plan["meta"]["source"], set()).add(plan["id"])
    return out


def labels(resource: dict[str, Any]) -> set[str]:
    return {
        s["code"]
        for s in resource.get("meta", {}).get("security", ())
        if s.get("system") == CONFIDENTIALITY
    }


def parameters(body: dict[str, Any], name: str) -> list[Any]:
    return [
        next(v for k, v in p.items() if k.startswith("value"))
        for p in body["parameter"]
        if p["name"] == name
    ]


async def access_check(gw: Gateway, number: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = await gw.get(f"/Patient/{number}/$access-check", headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["resourceType"] == "Parameters"
    assert parameters(body, "policy-version") == [load_policy().version]
    return body


async def all_pages(gw: Gateway, number: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of ``CarePlan?patient={nhs}&_count=1``, following the ``next`` links."""
    pages = []
    resp = await gw.get("/CarePlan", headers=headers, params={"patient": number, "_count": "1"})
    while True:
        page = bundle_of(resp)
        pages.append(page)
        nxt = [link["url"] for link in page.get("link", ()) if link["relation"] == "next"]
        if not nxt:
            return pages
        assert len(pages) < 20, "paging does not end"
        resp = await gw.client.get(nxt[0], headers=headers)


# --- a GP in the person's practice sees everything permitted -----------------------------


async def test_gp_in_the_persons_practice_sees_both_sources(
    gateway: Gateway, running_sources: RunningSources
) -> None:
    gp = gp_of(running_sources, NHS_BOTH)
    assert gp == "F81001"
    bundle = bundle_of(await everything(gateway, NHS_BOTH, who(gateway, "R8000", gp)))

    assert plans_by_source(bundle) == {
        SOCIAL_CARE_SOURCE: BOTH_SOCIAL_PLANS,
        COMMUNITY_SOURCE: BOTH_COMMUNITY_PLANS,
    }
    (patient,) = of_type(bundle, "Patient")
    assert patient["id"] == NHS_BOTH
    assert [g["identifier"]["value"] for g in patient["generalPractitioner"]] == [gp]
    systems = {i["system"] for i in patient["identifier"]}
    assert {NHS_SYSTEM, SOCIAL_CARE_PERSON_ID, COMMUNITY_PERSON_ID} <= systems
    assert {t["code"] for t in patient["meta"]["tag"]} == {"health", "social-care"}
    assert {ct["meta"]["source"] for ct in of_type(bundle, "CareTeam")} == {
        SOCIAL_CARE_SOURCE,
        COMMUNITY_SOURCE,
    }
    assert of_type(bundle, "Goal") and of_type(bundle, "Provenance")
    no_policy_outcomes(bundle)
    assert bundle["total"] == len(bundle["entry"]) - len(outcomes(bundle))

    check = await access_check(gateway, NHS_BOTH, who(gateway, "R8000", gp))
    assert parameters(check, "effect") == ["permit"]
    assert parameters(check, "reason") == []
    assert gp in parameters(check, "matched-rule")[0]


# --- no legitimate relationship ----------------------------------------------------------

UNRELATED = "F81004"  # Corringham Practice: not the Tilbury person's practice


async def test_organisation_with_no_relationship_is_denied(
    gateway: Gateway, running_sources: RunningSources
) -> None:
    assert UNRELATED in {p.ods_code for p in PRACTICES}
    assert gp_of(running_sources, NHS_BOTH) != UNRELATED
    seen_by_gp = await everything(gateway, NHS_BOTH, who(gateway, "R8000", "F81001"))
    assert UNRELATED not in seen_by_gp.text  # on no care team, authored no plan

    stranger = who(gateway, "R8000", UNRELATED)
    for path, params in (
        (f"/Patient/{NHS_BOTH}/$everything", None),
        (f"/Patient/{NHS_BOTH}", None),
        ("/CarePlan", {"patient": NHS_BOTH}),
        ("/CarePlan", {"patient": NHS_BOTH, "_count": "1", "_offset": "1"}),
        (f"/CarePlan/{sorted(BOTH_COMMUNITY_PLANS)[0]}", None),
        (f"/CarePlan/{sorted(BOTH_SOCIAL_PLANS)[0]}", None),
    ):
        resp = await gateway.get(path, headers=stranger, params=params)
        oo = assert_denied(resp, "no-legitimate-relationship")
        says_nothing_of(json.dumps(oo), "Thurlow", "P900001", "C900001", "SP-9000", "cp-9000")

    check = await access_check(gateway, NHS_BOTH, stranger)
    assert parameters(check, "effect") == ["deny"]
    assert parameters(check, "reason") == ["no-legitimate-relationship"]
    says_nothing_of(json.dumps(check), "Thurlow", "Patient/")


async def test_etreat_without_a_reason_overrides_nothing(fresh: Gateway) -> None:
    resp = await everything(fresh, NHS_BOTH, who(fresh, "R8000", UNRELATED, purpose="ETREAT"))
    assert_denied(resp, "no-legitimate-relationship")
    blank = who(fresh, "R8000", UNRELATED, purpose="ETREAT", reason="")
    assert_denied(await everything(fresh, NHS_BOTH, blank), "no-legitimate-relationship")


async def test_a_reason_without_etreat_is_not_break_glass(fresh: Gateway) -> None:
    headers = who(fresh, "R8000", UNRELATED, purpose="TREAT", reason="Collapsed at home")
    oo = assert_denied(await everything(fresh, NHS_BOTH, headers), "no-legitimate-relationship")
    assert "break-glass" not in reasons(oo)
    # ... and it opened no window for a later ETREAT without a reason.
    later = who(fresh, "R8000", UNRELATED, purpose="ETREAT")
    assert_denied(await everything(fresh, NHS_BOTH, later), "no-legitimate-relationship")


# --- break-glass -------------------------------------------------------------------------


async def test_break_glass_with_a_reason_is_permitted_flagged_and_lasts(fresh: Gateway) -> None:
    sub = "ed-doctor-0001"
    glass = who(fresh, "R8000", UNRELATED, purpose="ETREAT", reason="Unconscious in A&E", sub=sub)
    bundle = bundle_of(await everything(fresh, NHS_BOTH, glass))
    assert plans_by_source(bundle) == {
        SOCIAL_CARE_SOURCE: BOTH_SOCIAL_PLANS,
        COMMUNITY_SOURCE: BOTH_COMMUNITY_PLANS,
    }
    oo = break_glass_outcome(bundle)
    assert oo["issue"][0]["severity"] == "warning"
    assert outcomes_with(bundle, "suppressed") == []

    # Within the window the same user goes on with ETREAT and no reason: still flagged.
    again = who(fresh, "R8000", UNRELATED, purpose="ETREAT", sub=sub)
    bundle = bundle_of(await everything(fresh, NHS_BOTH, again))
    assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
    break_glass_outcome(bundle)
    page = bundle_of(await fresh.get("/CarePlan", headers=again, params={"patient": NHS_BOTH}))
    assert page["total"] == 5
    break_glass_outcome(page)

    # The window is for that user, that person and purpose ETREAT only.
    treat = who(fresh, "R8000", UNRELATED, purpose="TREAT", sub=sub)
    assert_denied(await everything(fresh, NHS_BOTH, treat), "no-legitimate-relationship")
    colleague = who(fresh, "R8000", UNRELATED, purpose="ETREAT", sub="ed-doctor-0002")
    assert_denied(await everything(fresh, NHS_BOTH, colleague), "no-legitimate-relationship")
    # Their own practice's patient: a relationship, so no emergency access is used.
    related = bundle_of(await everything(fresh, NHS_SAFEGUARDING, again))
    assert all("break-glass" not in reasons(o) for o in outcomes(related))
    assert_denied(await everything(fresh, NHS_MENTAL_HEALTH, again), "no-legitimate-relationship")


async def test_access_check_reports_break_glass_without_opening_a_window(fresh: Gateway) -> None:
    glass = who(fresh, "R8000", UNRELATED, purpose="ETREAT", reason="Chest pain", sub="ed-3")
    check = await access_check(fresh, NHS_BOTH, glass)
    assert parameters(check, "effect") == ["permit"]
    assert parameters(check, "reason") == ["break-glass"]
    # $access-check decides without recording: no emergency access was actually used.
    after = who(fresh, "R8000", UNRELATED, purpose="ETREAT", sub="ed-3")
    assert_denied(await everything(fresh, NHS_BOTH, after), "no-legitimate-relationship")


async def test_break_glass_never_overrides_a_label(fresh: Gateway) -> None:
    # The restricted person's GP is F81003; F81004 has no relationship.
    glass = who(fresh, "R8000", UNRELATED, purpose="ETREAT", reason="Found collapsed")
    bundle = bundle_of(await everything(fresh, NHS_RESTRICTED, glass))
    assert ids(bundle, "CarePlan") == {RESTRICTED_COMMUNITY_PLAN}
    assert "label-restricted" in reasons(suppressed(bundle))
    break_glass_outcome(bundle)
    says_nothing_of(json.dumps(bundle), "P900008", "SP-900009", SOCIAL_CARE_SOURCE)


# --- objection ---------------------------------------------------------------------------


@pytest.mark.parametrize("recorder", ["privacy-officer", "gp-with-relationship"])
async def test_objection_denies_everyone_but_break_glass(fresh: Gateway, recorder: str) -> None:
    headers = (
        privacy_officer(fresh)
        if recorder == "privacy-officer"
        else who(fresh, "R8000", "F81001", scopes=RECORDER_SCOPES)
    )
    stored = await post_consent(fresh, objection(NHS_BOTH), headers)
    assert stored["status"] == "active"

    for role, org in (
        ("R8000", "F81001"),  # their own GP
        ("LA-SW", COUNCIL_ODS),  # the council that holds their social care record
        ("R8001", COMMUNITY_ODS),  # the community trust that holds their health record
        ("R8008", "F81001"),
    ):
        caller = who(fresh, role, org)
        oo = assert_denied(await everything(fresh, NHS_BOTH, caller), "patient-objected")
        says_nothing_of(json.dumps(oo), "Thurlow", "P900001")
        assert_denied(await fresh.get(f"/Patient/{NHS_BOTH}", headers=caller), "patient-objected")
        check = await access_check(fresh, NHS_BOTH, caller)
        assert parameters(check, "effect") == ["deny"]
        assert "patient-objected" in parameters(check, "reason")
    gp = who(fresh, "R8000", "F81001")
    resp = await fresh.get("/CarePlan", headers=gp, params={"patient": NHS_BOTH, "_count": "1"})
    assert_denied(resp, "patient-objected")
    resp = await fresh.get(f"/CarePlan/{sorted(BOTH_SOCIAL_PLANS)[0]}", headers=gp)
    assert_denied(resp, "patient-objected")
    # Without a relationship the first refusal is that one (rules run in order).
    stranger = who(fresh, "R8000", UNRELATED)
    assert_denied(await everything(fresh, NHS_BOTH, stranger), "no-legitimate-relationship")

    # Default policy: emergency access overrides the objection, flagged for review.
    glass = who(fresh, "R8000", UNRELATED, purpose="ETREAT", reason="Anaphylaxis, A&E")
    bundle = bundle_of(await everything(fresh, NHS_BOTH, glass))
    assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
    break_glass_outcome(bundle)
    own_gp = who(fresh, "R8000", "F81001", purpose="ETREAT", reason="Home visit, confused")
    break_glass_outcome(bundle_of(await everything(fresh, NHS_BOTH, own_gp)))


async def test_withdrawing_an_objection_applies_to_the_very_next_request(fresh: Gateway) -> None:
    gp = who(fresh, "R8000", "F81001", scopes=RECORDER_SCOPES)
    stored = await post_consent(fresh, objection(NHS_BOTH), gp)
    assert_denied(await everything(fresh, NHS_BOTH, gp), "patient-objected")

    resp = await fresh.client.put(
        f"{fresh.base_url}/Consent/{stored['id']}",
        content=json.dumps({**stored, "status": "inactive"}),
        headers={**gp, "Content-Type": FHIR_JSON},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "inactive"

    bundle = bundle_of(await everything(fresh, NHS_BOTH, gp))
    assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
    no_policy_outcomes(bundle)
    check = await access_check(fresh, NHS_BOTH, gp)
    assert parameters(check, "effect") == ["permit"]


# --- a withheld source -------------------------------------------------------------------


async def test_withheld_source_disappears_with_its_identifiers(fresh: Gateway) -> None:
    gp = who(fresh, "R8000", "F81001", scopes=RECORDER_SCOPES)
    await post_consent(fresh, naming(NHS_BOTH, "CST", COUNCIL_ODS), gp)

    bundle = bundle_of(await everything(fresh, NHS_BOTH, gp))
    assert plans_by_source(bundle) == {COMMUNITY_SOURCE: BOTH_COMMUNITY_PLANS}
    for rtype in ("Patient", "CareTeam", "Goal", "Provenance", "CarePlan"):
        assert all(
            r.get("meta", {}).get("source") != SOCIAL_CARE_SOURCE for r in of_type(bundle, rtype)
        )
    (patient,) = of_type(bundle, "Patient")
    assert SOCIAL_CARE_PERSON_ID not in {i["system"] for i in patient["identifier"]}
    assert COMMUNITY_PERSON_ID in {i["system"] for i in patient["identifier"]}
    assert {t["code"] for t in patient["meta"]["tag"]} == {"health"}
    says_nothing_of(json.dumps(bundle), "P900001", "SP-9000", SOCIAL_CARE_SOURCE)

    oo = suppressed(bundle)
    assert reasons(oo) == ["source-withheld-by-patient"]
    text = json.dumps(oo["issue"])
    assert not re.search(r"\d", text), f"the outcome must not say how many: {text}"
    assert bundle["total"] == len(bundle["entry"]) - len(outcomes(bundle))

    patient_read = await fresh.get(f"/Patient/{NHS_BOTH}", headers=gp)
    assert patient_read.status_code == 200
    assert SOCIAL_CARE_PERSON_ID not in {i["system"] for i in patient_read.json()["identifier"]}
    search = bundle_of(
        await fresh.get("/Patient", headers=gp, params={"identifier": f"{NHS_SYSTEM}|{NHS_BOTH}"})
    )
    (found,) = of_type(search, "Patient")
    assert SOCIAL_CARE_PERSON_ID not in {i["system"] for i in found["identifier"]}
    assert reasons(suppressed(search)) == ["source-withheld-by-patient"]
    assert search["total"] == 1

    pages = await all_pages(fresh, NHS_BOTH, gp)
    assert len(pages) == 3
    assert all(p["total"] == 3 for p in pages)
    assert set().union(*(ids(p, "CarePlan") for p in pages)) == BOTH_COMMUNITY_PLANS
    assert all(reasons(suppressed(p)) == ["source-withheld-by-patient"] for p in pages)

    check = await access_check(fresh, NHS_BOTH, gp)
    assert parameters(check, "effect") == ["permit-filtered"]
    assert parameters(check, "reason") == ["source-withheld-by-patient"]

    # Break-glass never brings a withheld source back.
    glass = who(fresh, "R8000", UNRELATED, purpose="ETREAT", reason="Stroke call")
    bundle = bundle_of(await everything(fresh, NHS_BOTH, glass))
    assert ids(bundle, "CarePlan") == BOTH_COMMUNITY_PLANS
    assert "source-withheld-by-patient" in reasons(suppressed(bundle))
    break_glass_outcome(bundle)

    # The council still sees what it holds itself (withholding stops sharing, not holding),
    # but not through the gateway anyone else's view of the person.
    council = bundle_of(await everything(fresh, NHS_BOTH, who(fresh, "LA-SW", COUNCIL_ODS)))
    assert BOTH_SOCIAL_PLANS <= ids(council, "CarePlan")


async def test_direct_read_of_a_plan_from_a_withheld_source_is_403(fresh: Gateway) -> None:
    gp = who(fresh, "R8000", "F81001", scopes=RECORDER_SCOPES)
    await post_consent(fresh, naming(NHS_BOTH, "CST", COUNCIL_ODS), gp)
    resp = await fresh.get(f"/CarePlan/{sorted(BOTH_SOCIAL_PLANS)[0]}", headers=gp)
    oo = assert_denied(resp, "source-withheld-by-patient")
    says_nothing_of(json.dumps(oo), "P900001", "Thurlow")


# --- a refused recipient -----------------------------------------------------------------


async def test_refused_recipient_is_denied_and_others_are_not(fresh: Gateway) -> None:
    await post_consent(fresh, naming(NHS_BOTH, "IRCP", "F81001"), privacy_officer(fresh))

    gp = who(fresh, "R8000", "F81001")
    oo = assert_denied(await everything(fresh, NHS_BOTH, gp), "recipient-refused-by-patient")
    says_nothing_of(json.dumps(oo), "Thurlow", "P900001")
    resp = await fresh.get(f"/CarePlan/{sorted(BOTH_COMMUNITY_PLANS)[0]}", headers=gp)
    assert_denied(resp, "recipient-refused-by-patient")
    check = await access_check(fresh, NHS_BOTH, gp)
    assert parameters(check, "effect") == ["deny"]
    assert parameters(check, "reason") == ["recipient-refused-by-patient"]

    for role, org in (("LA-SW", COUNCIL_ODS), ("R8001", COMMUNITY_ODS)):
        bundle = bundle_of(await everything(fresh, NHS_BOTH, who(fresh, role, org)))
        assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
        no_policy_outcomes(bundle)

    glass = who(fresh, "R8000", "F81001", purpose="ETREAT", reason="Out-of-hours emergency")
    bundle = bundle_of(await everything(fresh, NHS_BOTH, glass))
    assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
    break_glass_outcome(bundle)


# --- minimum necessary: an admin role ----------------------------------------------------


async def test_admin_role_sees_patient_and_care_team_but_no_care_plan(gateway: Gateway) -> None:
    admin = who(gateway, "R8008", "F81001")
    bundle = bundle_of(await everything(gateway, NHS_BOTH, admin))
    assert {r["resourceType"] for r in (e["resource"] for e in bundle["entry"])} == {
        "Patient",
        "CareTeam",
        "OperationOutcome",
    }
    assert ids(bundle, "Patient") == {NHS_BOTH}
    assert {ct["meta"]["source"] for ct in of_type(bundle, "CareTeam")} == {
        SOCIAL_CARE_SOURCE,
        COMMUNITY_SOURCE,
    }
    assert reasons(suppressed(bundle)) == ["level-demographics-only"]
    says_nothing_of(json.dumps(bundle), "SP-9000", "cp-9000")
    assert bundle["total"] == len(bundle["entry"]) - 1

    pages = await all_pages(gateway, NHS_BOTH, admin)
    assert len(pages) == 1 and pages[0]["total"] == 0
    assert of_type(pages[0], "CarePlan") == []
    assert reasons(suppressed(pages[0])) == ["level-demographics-only"]

    resp = await gateway.get(f"/CarePlan/{sorted(BOTH_SOCIAL_PLANS)[0]}", headers=admin)
    assert_denied(resp, "level-demographics-only")

    check = await access_check(gateway, NHS_BOTH, admin)
    assert parameters(check, "effect") == ["permit-filtered"]
    assert parameters(check, "reason") == ["level-demographics-only"]

    resp = await everything(
        gateway, NHS_BOTH, who(gateway, "R8008", "F81001", purpose="ETREAT", reason="x")
    )
    assert_denied(resp, "purpose-not-permitted")


# --- labels: R mental health, restricted person, safeguarding ----------------------------


async def test_r_mental_health_plan_hidden_from_social_worker(
    gateway: Gateway, running_sources: RunningSources
) -> None:
    # The council has a relationship: it holds the person and employs their allocated worker.
    sw = who(gateway, "LA-SW", COUNCIL_ODS)
    bundle = bundle_of(await everything(gateway, NHS_MENTAL_HEALTH, sw))
    assert ids(bundle, "CarePlan") == {MH_SOCIAL_PLAN, MH_NURSING_PLAN}
    assert reasons(suppressed(bundle)) == ["label-restricted"]
    says_nothing_of(json.dumps(bundle), "cp-900008")
    assert all("R" not in labels(r) for e in bundle["entry"] for r in [e["resource"]])

    resp = await gateway.get(f"/CarePlan/{MH_R_PLAN}", headers=sw)
    oo = assert_denied(resp, "label-restricted")
    says_nothing_of(json.dumps(oo), "cp-900008", "Lambourne")

    check = await access_check(gateway, NHS_MENTAL_HEALTH, sw)
    assert parameters(check, "effect") == ["permit-filtered"]
    assert parameters(check, "reason") == ["label-restricted"]

    # The clinician at the person's practice may see R in health.
    gp = who(gateway, "R8000", gp_of(running_sources, NHS_MENTAL_HEALTH))
    bundle = bundle_of(await everything(gateway, NHS_MENTAL_HEALTH, gp))
    assert ids(bundle, "CarePlan") == {MH_SOCIAL_PLAN, MH_NURSING_PLAN, MH_R_PLAN}
    (plan,) = [p for p in of_type(bundle, "CarePlan") if p["id"] == MH_R_PLAN]
    assert labels(plan) == {"R"}
    no_policy_outcomes(bundle)
    resp = await gateway.get(f"/CarePlan/{MH_R_PLAN}", headers=gp)
    assert resp.status_code == 200 and resp.json()["id"] == MH_R_PLAN


async def test_social_worker_break_glass_does_not_reveal_the_r_health_plan(
    fresh: Gateway,
) -> None:
    glass = who(fresh, "LA-SW", COUNCIL_ODS, purpose="ETREAT", reason="Crisis call")
    bundle = bundle_of(await everything(fresh, NHS_MENTAL_HEALTH, glass))
    assert MH_R_PLAN not in ids(bundle, "CarePlan")
    assert "label-restricted" in reasons(suppressed(bundle))
    break_glass_outcome(bundle)


async def test_restricted_persons_social_care_record_only_for_social_workers(
    gateway: Gateway, running_sources: RunningSources
) -> None:
    sw = who(gateway, "LA-SW", COUNCIL_ODS)
    bundle = bundle_of(await everything(gateway, NHS_RESTRICTED, sw))
    assert ids(bundle, "CarePlan") == {RESTRICTED_SOCIAL_PLAN, RESTRICTED_COMMUNITY_PLAN}
    social = [
        r
        for r in (e["resource"] for e in bundle["entry"])
        if r.get("meta", {}).get("source") == SOCIAL_CARE_SOURCE
    ]
    assert {r["resourceType"] for r in social} >= {"CarePlan", "CareTeam"}
    assert all(labels(r) == {"R"} for r in social)
    no_policy_outcomes(bundle)

    gp = who(gateway, "R8000", gp_of(running_sources, NHS_RESTRICTED))
    bundle = bundle_of(await everything(gateway, NHS_RESTRICTED, gp))
    assert plans_by_source(bundle) == {COMMUNITY_SOURCE: {RESTRICTED_COMMUNITY_PLAN}}
    assert [r for e in bundle["entry"] for r in [e["resource"]] if "R" in labels(r)] == []
    (patient,) = of_type(bundle, "Patient")
    assert SOCIAL_CARE_PERSON_ID not in {i["system"] for i in patient["identifier"]}
    assert reasons(suppressed(bundle)) == ["label-restricted"]
    says_nothing_of(json.dumps(bundle), "P900008", "SP-900009", SOCIAL_CARE_SOURCE)
    resp = await gateway.get(f"/CarePlan/{RESTRICTED_SOCIAL_PLAN}", headers=gp)
    assert_denied(resp, "label-restricted")


async def test_safeguarding_plan_only_for_social_workers(
    gateway: Gateway, running_sources: RunningSources
) -> None:
    sw = who(gateway, "LA-SW", COUNCIL_ODS)
    bundle = bundle_of(await everything(gateway, NHS_SAFEGUARDING, sw))
    assert ids(bundle, "CarePlan") == {
        SAFEGUARDING_PLAN,
        SAFEGUARDING_NORMAL_PLAN,
        SAFEGUARDING_COMMUNITY_PLAN,
    }
    no_policy_outcomes(bundle)

    gp_code = gp_of(running_sources, NHS_SAFEGUARDING)
    gp = who(gateway, "R8000", gp_code)
    bundle = bundle_of(await everything(gateway, NHS_SAFEGUARDING, gp))
    assert ids(bundle, "CarePlan") == {SAFEGUARDING_NORMAL_PLAN, SAFEGUARDING_COMMUNITY_PLAN}
    assert reasons(suppressed(bundle)) == ["label-restricted"]
    says_nothing_of(json.dumps(bundle), "SP-900010", "safeguarding")
    resp = await gateway.get(f"/CarePlan/{SAFEGUARDING_PLAN}", headers=gp)
    oo = assert_denied(resp, "label-restricted")
    says_nothing_of(json.dumps(oo), "SP-900010", "Farrant")
    resp = await gateway.get(f"/CarePlan/{SAFEGUARDING_NORMAL_PLAN}", headers=gp)
    assert resp.status_code == 200 and resp.json()["id"] == SAFEGUARDING_NORMAL_PLAN


# --- paging never counts what was withheld -----------------------------------------------

PAGING_CASES = {
    "mental-health-to-social-worker": (NHS_MENTAL_HEALTH, "LA-SW", COUNCIL_ODS,
                                       {MH_SOCIAL_PLAN, MH_NURSING_PLAN}),
    "restricted-to-gp": (NHS_RESTRICTED, "R8000", "F81003", {RESTRICTED_COMMUNITY_PLAN}),
    "safeguarding-to-gp": (NHS_SAFEGUARDING, "R8000", "F81004",
                           {SAFEGUARDING_NORMAL_PLAN, SAFEGUARDING_COMMUNITY_PLAN}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PAGING_CASES))
async def test_paged_careplan_search_never_counts_withheld_plans(
    gateway: Gateway, running_sources: RunningSources, case: str
) -> None:
    number, role, org, visible = PAGING_CASES[case]
    if role == "R8000":
        assert org == gp_of(running_sources, number)
    headers = who(gateway, role, org)
    pages = await all_pages(gateway, number, headers)
    assert len(pages) == len(visible)
    seen: list[str] = []
    for page in pages:
        assert page["total"] == len(visible)
        plans = of_type(page, "CarePlan")
        assert len(plans) == 1
        seen += [p["id"] for p in plans]
        assert reasons(suppressed(page)) == ["label-restricted"]
        for link in page["link"]:
            assert "_offset" not in link["url"] or int(
                re.search(r"_offset=(\d+)", link["url"]).group(1)  # type: ignore[union-attr]
            ) < len(visible)
    assert sorted(seen) == sorted(visible)
    # A page beyond the visible plans is empty and still counts only the visible ones.
    resp = await gateway.get(
        "/CarePlan",
        headers=headers,
        params={"patient": number, "_count": "1", "_offset": str(len(visible))},
    )
    beyond = bundle_of(resp)
    assert beyond["total"] == len(visible) and of_type(beyond, "CarePlan") == []
    assert not [link for link in beyond.get("link", ()) if link["relation"] == "next"]


# --- more directive shapes ---------------------------------------------------------------


async def test_withholding_the_community_source_keeps_social_care(fresh: Gateway) -> None:
    gp = who(fresh, "R8000", "F81001", scopes=RECORDER_SCOPES)
    await post_consent(fresh, naming(NHS_BOTH, "CST", COMMUNITY_ODS), gp)
    bundle = bundle_of(await everything(fresh, NHS_BOTH, gp))
    assert plans_by_source(bundle) == {SOCIAL_CARE_SOURCE: BOTH_SOCIAL_PLANS}
    assert {ct["meta"]["source"] for ct in of_type(bundle, "CareTeam")} == {SOCIAL_CARE_SOURCE}
    (patient,) = of_type(bundle, "Patient")
    assert {i["system"] for i in patient["identifier"]} == {NHS_SYSTEM, SOCIAL_CARE_PERSON_ID}
    assert {t["code"] for t in patient["meta"]["tag"]} == {"social-care"}
    says_nothing_of(json.dumps(bundle), "C900001", "cp-9000", "RWX", COMMUNITY_SOURCE)
    assert reasons(suppressed(bundle)) == ["source-withheld-by-patient"]
    resp = await fresh.get(f"/CarePlan/{sorted(BOTH_COMMUNITY_PLANS)[0]}", headers=gp)
    assert_denied(resp, "source-withheld-by-patient")
    # The trust that holds the community record still sees it.
    trust = bundle_of(await everything(fresh, NHS_BOTH, who(fresh, "R8001", COMMUNITY_ODS)))
    assert BOTH_COMMUNITY_PLANS <= ids(trust, "CarePlan")


async def test_nothing_left_to_show_is_a_refusal_with_every_reason(
    fresh: Gateway, running_sources: RunningSources
) -> None:
    # Restricted person: all social care is R (hidden from a GP); now the community source is
    # withheld as well, so nothing at all may be shown to their GP.
    gp = who(fresh, "R8000", gp_of(running_sources, NHS_RESTRICTED), scopes=RECORDER_SCOPES)
    await post_consent(fresh, naming(NHS_RESTRICTED, "CST", COMMUNITY_ODS), gp)
    resp = await everything(fresh, NHS_RESTRICTED, gp)
    oo = assert_denied(resp, "source-withheld-by-patient")
    assert "label-restricted" in reasons(oo)
    says_nothing_of(resp.text, "Harwood", "P900008", "C900008")
    resp = await fresh.get("/CarePlan", headers=gp, params={"patient": NHS_RESTRICTED})
    assert_denied(resp, "source-withheld-by-patient")


async def test_directive_limited_to_a_purpose_applies_only_to_it(fresh: Gateway) -> None:
    body = naming(NHS_BOTH, "IRCP", "F81001")
    body["provision"]["provision"][0]["purpose"] = [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "CAREMGT"}
    ]
    await post_consent(fresh, body, privacy_officer(fresh))
    treat = bundle_of(await everything(fresh, NHS_BOTH, who(fresh, "R8000", "F81001")))
    assert ids(treat, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
    no_policy_outcomes(treat)
    caremgt = who(fresh, "R8000", "F81001", purpose="CAREMGT")
    assert_denied(await everything(fresh, NHS_BOTH, caremgt), "recipient-refused-by-patient")


async def test_directives_out_of_force_do_not_apply(fresh: Gateway) -> None:
    ended = naming(NHS_BOTH, "IRCP", "F81001")
    ended["provision"]["provision"][0]["period"] = {"start": "2024-01-01", "end": "2025-12-31"}
    await post_consent(fresh, ended, privacy_officer(fresh))
    future = naming(NHS_BOTH, "CST", COUNCIL_ODS)
    future["provision"]["provision"][0]["period"] = {"start": "2099-01-01"}
    await post_consent(fresh, future, privacy_officer(fresh))
    for status in ("inactive", "entered-in-error", "proposed", "rejected"):
        await post_consent(fresh, {**objection(NHS_BOTH), "status": status}, privacy_officer(fresh))
    bundle = bundle_of(await everything(fresh, NHS_BOTH, who(fresh, "R8000", "F81001")))
    assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
    no_policy_outcomes(bundle)


async def test_a_directive_recorded_between_pages_applies_to_the_next_page(
    fresh: Gateway,
) -> None:
    gp = who(fresh, "R8000", "F81001", scopes=RECORDER_SCOPES)
    first = bundle_of(
        await fresh.get("/CarePlan", headers=gp, params={"patient": NHS_BOTH, "_count": "2"})
    )
    assert first["total"] == 5 and len(of_type(first, "CarePlan")) == 2
    (nxt,) = [link["url"] for link in first["link"] if link["relation"] == "next"]

    withheld = await post_consent(fresh, naming(NHS_BOTH, "CST", COUNCIL_ODS), gp)
    second = bundle_of(await fresh.client.get(nxt, headers=gp))
    assert second["total"] == 3
    assert ids(second, "CarePlan") <= BOTH_COMMUNITY_PLANS
    assert reasons(suppressed(second)) == ["source-withheld-by-patient"]

    await post_consent(fresh, objection(NHS_BOTH), gp)
    assert_denied(await fresh.client.get(nxt, headers=gp), "patient-objected")

    resp = await fresh.client.put(
        f"{fresh.base_url}/Consent/{withheld['id']}",
        content=json.dumps({**withheld, "status": "inactive"}),
        headers={**gp, "Content-Type": FHIR_JSON},
    )
    assert resp.status_code == 200, resp.text
    assert_denied(await fresh.client.get(nxt, headers=gp), "patient-objected")


async def test_break_glass_window_goes_on_overriding_an_objection(fresh: Gateway) -> None:
    await post_consent(fresh, objection(NHS_BOTH), privacy_officer(fresh))
    sub = "ed-doctor-0100"
    glass = who(fresh, "R8000", UNRELATED, purpose="ETREAT", reason="Sepsis", sub=sub)
    break_glass_outcome(bundle_of(await everything(fresh, NHS_BOTH, glass)))
    again = who(fresh, "R8000", UNRELATED, purpose="ETREAT", sub=sub)
    bundle = bundle_of(await everything(fresh, NHS_BOTH, again))
    assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
    break_glass_outcome(bundle)
    # The person's own GP, without emergency access, is still refused.
    gp = who(fresh, "R8000", "F81001")
    assert_denied(await everything(fresh, NHS_BOTH, gp), "patient-objected")


# --- roles the policy keeps away from care data ------------------------------------------


async def test_information_governance_roles_see_no_care_data(gateway: Gateway) -> None:
    for role in ("R0001", "R5105"):
        ig = who(gateway, role, "F81001", purpose="HOPERAT")
        assert_denied(await everything(gateway, NHS_BOTH, ig), "role-not-permitted")
        check = await access_check(gateway, NHS_BOTH, ig)
        assert parameters(check, "effect") == ["deny"]
    unknown = who(gateway, "R9999", "F81001")
    assert_denied(await everything(gateway, NHS_BOTH, unknown), "role-not-permitted")


async def test_system_client_sees_normal_records_only_and_cannot_break_glass(
    gateway: Gateway, running_sources: RunningSources
) -> None:
    def system(purpose: str, reason: str | None = None) -> dict[str, str]:
        headers = gateway.headers(
            role="R8000",
            org=gp_of(running_sources, NHS_MENTAL_HEALTH),
            purpose=purpose,
            scopes=("system/*.rs",),
            client_kind="system",
            sub="gp-system-0001",
        )
        headers["X-Purpose-Of-Use"] = purpose
        if reason is not None:
            headers["X-Break-Glass-Reason"] = reason
        return headers

    bundle = bundle_of(await everything(gateway, NHS_MENTAL_HEALTH, system("TREAT")))
    assert ids(bundle, "CarePlan") == {MH_SOCIAL_PLAN, MH_NURSING_PLAN}
    assert reasons(suppressed(bundle)) == ["label-restricted"]
    resp = await everything(gateway, NHS_MENTAL_HEALTH, system("ETREAT", "Emergency"))
    assert_denied(resp, "purpose-not-permitted")


# --- no stale permit from the record cache -----------------------------------------------


@asynccontextmanager
async def cached_gateway(
    running: RunningSources, private_pem: bytes, public_jwk: dict[str, Any], workdir: Path
) -> AsyncIterator[tuple[Gateway, RecordCache]]:
    """Like ``running_gateway``, with the in-process encrypted record cache switched on."""
    configs = source_configs(running)
    cache = build_record_cache(
        redis_url=None,
        cache_keys=None,
        index_key=None,
        demo=True,
        sources=[c.name for c in configs],
    )
    database_url = f"sqlite+aiosqlite:///{workdir}/gateway.db"
    async with running_gateway(
        configs, private_pem, public_jwk, cache=cache, database_url=database_url
    ) as gw:
        yield gw, cache


async def test_consent_changes_apply_through_the_record_cache(
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    tmp_path: Path,
) -> None:
    async with cached_gateway(running_sources, *signing_key, tmp_path) as (gw, cache):
        gp = who(gw, "R8000", "F81001", scopes=RECORDER_SCOPES)
        for _ in range(2):  # the record is now in the cache
            bundle = bundle_of(await everything(gw, NHS_BOTH, gp))
            assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS
        assert cache.stats.hits >= 2  # one per source: the record came from the cache
        stored = await post_consent(gw, objection(NHS_BOTH), gp)
        assert_denied(await everything(gw, NHS_BOTH, gp), "patient-objected")
        resp = await gw.client.put(
            f"{gw.base_url}/Consent/{stored['id']}",
            content=json.dumps({**stored, "status": "inactive"}),
            headers={**gp, "Content-Type": FHIR_JSON},
        )
        assert resp.status_code == 200, resp.text
        withheld = await post_consent(gw, naming(NHS_BOTH, "CST", COUNCIL_ODS), gp)
        bundle = bundle_of(await everything(gw, NHS_BOTH, gp))
        assert ids(bundle, "CarePlan") == BOTH_COMMUNITY_PLANS
        resp = await gw.client.put(
            f"{gw.base_url}/Consent/{withheld['id']}",
            content=json.dumps({**withheld, "status": "inactive"}),
            headers={**gp, "Content-Type": FHIR_JSON},
        )
        assert resp.status_code == 200, resp.text
        bundle = bundle_of(await everything(gw, NHS_BOTH, gp))
        assert ids(bundle, "CarePlan") == BOTH_SOCIAL_PLANS | BOTH_COMMUNITY_PLANS

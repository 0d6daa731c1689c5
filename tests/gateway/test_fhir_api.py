"""End to end over real HTTP: gateway → adapters → simulators, checking the FHIR JSON."""

from __future__ import annotations

from typing import Any

from adapters import ukcore
from adapters.validation import validate_resource
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome
from tests.support.people import nhs


def entries(bundle: dict[str, Any], mode: str | None = None) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", ())
        if mode is None or e.get("search", {}).get("mode") == mode
    ]


def outcome_codes(bundle: dict[str, Any]) -> list[str]:
    return [i["code"] for oo in entries(bundle, "outcome") for i in oo["issue"]]


async def test_metadata_is_a_capability_statement(gateway: Gateway) -> None:
    body = assert_fhir(await gateway.client.get(f"{gateway.base_url}/metadata"))
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in body["rest"][0]["resource"]}
    assert {"Patient", "CarePlan", "CareTeam", "Provenance"} <= types
    validate_resource(body)


async def test_patient_in_both_sources_is_merged(gateway: Gateway) -> None:
    number = nhs("both")
    patient = assert_fhir(await gateway.get(f"/Patient/{number}"))
    validate_resource(patient)
    assert patient["id"] == number
    assert patient["meta"]["profile"] == [ukcore.PROFILE_PATIENT]
    nhs_ids = [i for i in patient["identifier"] if i["system"] == ukcore.NHS_NUMBER_SYSTEM]
    assert len(nhs_ids) == 1 and nhs_ids[0]["value"] == number
    ext = nhs_ids[0]["extension"][0]
    assert ext["url"] == ukcore.EXT_NHS_VERIFICATION
    assert ext["valueCodeableConcept"]["coding"][0]["system"] == ukcore.NHS_VERIFICATION_SYSTEM
    systems = {i["system"] for i in patient["identifier"]}
    assert ukcore.person_id_system("socialcare") in systems
    assert len(systems) >= 3  # NHS number, council id, community local id(s)
    assert "X-Incomplete-Sources" not in (await gateway.get(f"/Patient/{number}")).headers


async def test_everything_returns_both_sources_validated(gateway: Gateway) -> None:
    number = nhs("both")
    bundle = assert_fhir(await gateway.get(f"/Patient/{number}/$everything"))
    assert bundle["type"] == "searchset"
    resources = entries(bundle, "match")
    kinds = [r["resourceType"] for r in resources]
    assert kinds[0] == "Patient" and kinds.count("Patient") == 1
    assert {"CarePlan", "CareTeam", "Provenance"} <= set(kinds)
    sources = {r["meta"]["source"] for r in resources if r["resourceType"] == "CarePlan"}
    assert sources == {ukcore.source_uri("socialcare"), ukcore.source_uri("community")}
    ids = [f"{r['resourceType']}/{r['id']}" for r in resources]
    assert len(ids) == len(set(ids))
    for resource in resources:
        validate_resource(resource)
        if resource["resourceType"] != "Patient":
            tags = {(t["system"], t["code"]) for t in resource["meta"].get("tag", ())}
            if resource["resourceType"] != "Provenance":
                assert tags & {
                    (ukcore.CARE_DOMAIN_SYSTEM, "social-care"),
                    (ukcore.CARE_DOMAIN_SYSTEM, "health"),
                }
    provenance = [r for r in resources if r["resourceType"] == "Provenance"]
    orgs = {p["agent"][0]["who"]["identifier"]["value"] for p in provenance}
    assert orgs == {"LA883", "RWX"}
    present = set(ids)
    for prov in provenance:
        assert all(t["reference"] in present for t in prov["target"])


async def test_identifier_search(gateway: Gateway) -> None:
    number = nhs("social_only")
    ident = f"{ukcore.NHS_NUMBER_SYSTEM}|{number}"
    social_worker = gateway.headers(role="LA-SW", org="LA883")
    bundle = assert_fhir(
        await gateway.get("/Patient", params={"identifier": ident}, headers=social_worker)
    )
    assert bundle["total"] == 1
    assert entries(bundle, "match")[0]["id"] == number
    empty = assert_fhir(
        await gateway.get(
            "/Patient", params={"identifier": f"{ukcore.NHS_NUMBER_SYSTEM}|9990000018"}
        )
    )
    assert empty["total"] == 0 and "entry" not in empty


async def test_careplan_search_forms_filters_and_paging(gateway: Gateway) -> None:
    number = nhs("both")
    by_patient = assert_fhir(await gateway.get("/CarePlan", params={"patient": number}))
    by_subject = assert_fhir(
        await gateway.get("/CarePlan", params={"subject": f"Patient/{number}"})
    )
    by_ident = assert_fhir(
        await gateway.get(
            "/CarePlan", params={"patient.identifier": f"{ukcore.NHS_NUMBER_SYSTEM}|{number}"}
        )
    )
    ids = sorted(r["id"] for r in entries(by_patient, "match"))
    assert len(ids) >= 2
    assert ids == sorted(r["id"] for r in entries(by_subject, "match"))
    assert ids == sorted(r["id"] for r in entries(by_ident, "match"))
    assert by_patient["total"] == len(ids)

    active = assert_fhir(
        await gateway.get("/CarePlan", params={"patient": number, "status": "active"})
    )
    assert all(r["status"] == "active" for r in entries(active, "match"))

    health = assert_fhir(
        await gateway.get(
            "/CarePlan",
            params={"patient": number, "category": f"{ukcore.CARE_PLAN_TYPE_SYSTEM}|health"},
        )
    )
    assert entries(health, "match")
    assert all(
        r["meta"]["source"] == ukcore.source_uri("community") for r in entries(health, "match")
    )

    seen: list[str] = []
    url: str | None = f"{gateway.base_url}/CarePlan?patient={number}&_count=1"
    while url:
        page = assert_fhir(await gateway.client.get(url, headers=gateway.headers()))
        assert page["total"] == len(ids)
        seen += [r["id"] for r in entries(page, "match")]
        url = next(
            (link["url"] for link in page.get("link", ()) if link["relation"] == "next"), None
        )
    assert sorted(seen) == ids


async def test_careplan_read_by_id(gateway: Gateway) -> None:
    number = nhs("both")
    bundle = assert_fhir(await gateway.get("/CarePlan", params={"patient": number}))
    for plan in entries(bundle, "match"):
        read = assert_fhir(await gateway.get(f"/CarePlan/{plan['id']}"))
        assert read == plan
    assert_outcome(await gateway.get("/CarePlan/socialcare.NOPE.NOPE"), 404, "not-found")
    assert_outcome(await gateway.get("/CarePlan/unknown-source.a.b"), 404, "not-found")


async def test_bad_requests_are_operation_outcomes(gateway: Gateway) -> None:
    body = assert_outcome(await gateway.get("/Patient/9990000019"), 400, "invalid")
    assert "9990000019" not in str(body)
    assert_outcome(await gateway.get("/Patient/not-a-number"), 400, "invalid")
    assert_outcome(await gateway.get("/Patient/9990000018"), 404, "not-found")
    number = nhs("both")
    assert_outcome(
        await gateway.get("/CarePlan", params={"patient": number, "colour": "blue"}), 400, "invalid"
    )
    lenient = await gateway.get(
        "/CarePlan",
        params={"patient": number, "colour": "blue"},
        headers={**gateway.headers(), "Prefer": "handling=lenient"},
    )
    assert assert_fhir(lenient)["resourceType"] == "Bundle"
    assert_outcome(await gateway.get("/CarePlan", params={"status": "active"}), 400, "invalid")
    assert_outcome(
        await gateway.get("/CarePlan", params={"patient": number, "status": "bogus"}),
        400,
        "invalid",
    )
    assert_outcome(await gateway.get("/Nothing"), 404, "not-found")


async def test_request_id_is_echoed_or_made(gateway: Gateway) -> None:
    resp = await gateway.get(
        f"/Patient/{nhs('both')}", headers={**gateway.headers(), "X-Request-ID": "abc-123"}
    )
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await gateway.get(f"/Patient/{nhs('both')}")
    assert len(resp.headers["X-Request-ID"]) == 36

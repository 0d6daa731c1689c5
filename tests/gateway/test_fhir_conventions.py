"""FHIR search conventions, HTTP semantics and readable references, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.fhir.definitions import CODE_SYSTEMS, STRUCTURE_DEFINITIONS
from simulators.population import SCENARIOS
from simulators.runner import source_configs
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome, running_gateway

BOTH = SCENARIOS["both"].nhs_number or ""
ORIGIN = "https://apps.example.nhs.uk"


@pytest.fixture(scope="module")
async def gw(
    running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    async with running_gateway(source_configs(running_sources), *signing_key) as gateway:
        yield gateway


def matches(bundle: dict[str, Any], mode: str = "match") -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", ()) if e["search"]["mode"] == mode]


def link(bundle: dict[str, Any], relation: str) -> dict[str, list[str]] | None:
    for item in bundle.get("link", ()):
        if item["relation"] == relation:
            return parse_qs(urlsplit(item["url"]).query)
    return None


async def test_count_zero_and_summary_count_give_the_total_only(gw: Gateway) -> None:
    full = assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}"))
    for query in ("_count=0", "_summary=count"):
        only = assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}&{query}"))
        assert only["total"] == full["total"] >= 3 and matches(only) == []
        assert link(only, "next") is None


async def test_merge_warnings_on_the_first_page_only_and_self_names_what_applied(
    gw: Gateway,
) -> None:
    # break-glass: a relationship for this test, and an outcome about the request itself
    headers = {
        **gw.headers(purpose="ETREAT"),
        "X-Purpose-Of-Use": "ETREAT",
        "X-Break-Glass-Reason": "unconscious in A&E",
    }
    url = f"/Patient/{SCENARIOS['dob_conflict'].nhs_number}/$everything?_count=1"
    first = assert_fhir(await gw.get(url + "&_totalMethod=x", headers=headers))
    assert _merge_warnings(first) and "informational" in _codes(first)
    self_link = link(first, "self")
    assert self_link is not None and "_totalMethod" not in self_link  # ignored: not in self
    following = link(first, "next")
    assert following is not None
    second = assert_fhir(await gw.get(f"{url}&_offset={following['_offset'][0]}", headers=headers))
    assert matches(second) and _merge_warnings(second) == []
    assert _codes(second) == ["informational"]  # break-glass: about this request, every page


def _codes(bundle: dict[str, Any]) -> list[str]:
    return [i["code"] for oo in matches(bundle, "outcome") for i in oo["issue"]]


def _merge_warnings(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        oo
        for oo in matches(bundle, "outcome")
        if any(
            c["system"] == "urn:caregateway:merge-warning"
            for i in oo["issue"]
            for c in i.get("details", {}).get("coding", ())
        )
    ]


async def test_sort_elements_summary_and_include(gw: Gateway) -> None:
    url = f"/CarePlan?patient=Patient/{BOTH}&_sort=-date&_elements=status,title"
    bundle = assert_fhir(await gw.get(url + "&_include=CarePlan:goal"))
    plans = matches(bundle)
    assert set(plans[0]) <= {"resourceType", "id", "meta", "status", "title"}
    assert any(t["code"] == "SUBSETTED" for t in plans[0]["meta"]["tag"])
    full = matches(assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}&_sort=-date")))
    starts = [p.get("period", {}).get("start", "") for p in full]
    assert starts == sorted(starts, reverse=True)
    goals = matches(bundle, "include")
    assert goals and {g["resourceType"] for g in goals} == {"Goal"}
    assert link(bundle, "self") == {
        "patient": [BOTH],
        "_elements": ["status,title"],
        "_sort": ["-date"],
        "_include": ["CarePlan:goal"],
        "_count": ["50"],
        "_offset": ["0"],
    }
    summary = matches(assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}&_summary=true")))
    assert all("activity" not in p and "text" not in p for p in summary)
    revinclude = assert_fhir(
        await gw.get(f"/CareTeam?patient={BOTH}&_revinclude=Provenance:target")
    )
    assert {r["resourceType"] for r in matches(revinclude, "include")} == {"Provenance"}


async def test_absolute_reference_filters_and_strictness(gw: Gateway) -> None:
    absolute = assert_fhir(await gw.get(f"/CarePlan?patient={gw.base_url}/Patient/{BOTH}"))
    assert absolute["total"] >= 3
    elsewhere = await gw.get(f"/CarePlan?patient=https://other.example/fhir/Patient/{BOTH}")
    assert_outcome(elsewhere, 400, "invalid")
    # an unknown filter is refused by default; an unknown result parameter is ignored
    assert_outcome(await gw.get(f"/CarePlan?patient={BOTH}&colour=red"), 400, "invalid")
    strict = {**gw.headers(), "Prefer": "handling=strict"}
    assert_outcome(await gw.get(f"/CarePlan?patient={BOTH}&_foo=1", headers=strict), 400, "invalid")
    assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}&_foo=1"))
    updated = assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}&_lastUpdated=ge2026-06-01"))
    assert all(p["meta"]["lastUpdated"] >= "2026-06-01" for p in matches(updated))


async def test_post_search_head_etag_and_405(gw: Gateway) -> None:
    posted = await gw.client.post(
        f"{gw.base_url}/CarePlan/_search", data={"patient": BOTH}, headers=gw.headers()
    )
    assert (
        assert_fhir(posted)["total"]
        == assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}"))["total"]
    )
    read = await gw.get(f"/Patient/{BOTH}")
    etag = read.headers["etag"]
    assert etag.startswith('W/"') and read.headers["last-modified"].endswith("GMT")
    again = await gw.get(f"/Patient/{BOTH}", headers={**gw.headers(), "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    head = await gw.client.head(f"{gw.base_url}/Patient/{BOTH}", headers=gw.headers())
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
    denied = await gw.client.delete(f"{gw.base_url}/Patient/{BOTH}", headers=gw.headers())
    assert denied.status_code == 405 and denied.headers["allow"] == "GET, HEAD"


async def test_formats_we_do_not_serve(gw: Gateway) -> None:
    xml = {**gw.headers(), "Accept": "application/fhir+xml"}
    assert_outcome(await gw.get(f"/Patient/{BOTH}", headers=xml), 406, "not-supported")
    stu3 = {**gw.headers(), "Accept": "application/fhir+json; fhirVersion=3.0"}
    assert_outcome(await gw.get(f"/Patient/{BOTH}", headers=stu3), 406, "not-supported")
    assert_outcome(await gw.get(f"/Patient/{BOTH}?_format=xml"), 406, "not-supported")
    body = {**gw.headers(), "Content-Type": "application/fhir+xml"}
    resp = await gw.client.post(f"{gw.base_url}/Consent", content=b"<Consent/>", headers=body)
    assert_outcome(resp, 415, "not-supported")


async def test_every_reference_in_every_scenario_persons_everything_resolves(gw: Gateway) -> None:
    for key, scenario in SCENARIOS.items():
        if scenario.nhs_number is None:
            continue
        resp = await gw.get(f"/Patient/{scenario.nhs_number}/$everything")
        if resp.status_code == 403:
            continue  # the GP token has no relationship with this person
        bundle = assert_fhir(resp)
        for resource in matches(bundle):
            for ref in _references(resource):
                assert "://" not in ref and ref.count("/") == 1, (key, ref)
                target = assert_fhir(await gw.get(f"/{ref}"))
                assert f"{target['resourceType']}/{target['id']}" == ref
            for detail in (a.get("detail", {}) for a in resource.get("activity", ())):
                for uri in detail.get("instantiatesUri", ()):
                    assert uri.startswith(("urn:", "http")), (key, uri)


def _references(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_references(i) for i in node)) if node else set()
    if isinstance(node, dict):
        own = {node["reference"]} if isinstance(node.get("reference"), str) else set()
        return own.union(*(_references(v) for v in node.values()))
    return set()


async def test_goal_careteam_provenance_read_and_search(gw: Gateway) -> None:
    for kind in ("Goal", "CareTeam", "Provenance"):
        bundle = assert_fhir(await gw.get(f"/{kind}?patient={BOTH}"))
        found = matches(bundle)
        assert found and {r["resourceType"] for r in found} == {kind}
        one = assert_fhir(await gw.get(f"/{kind}/{found[0]['id']}"))
        fetched = ("recorded",)  # a Provenance says when the source was asked
        assert {k: v for k, v in one.items() if k not in fetched} == {
            k: v for k, v in found[0].items() if k not in fetched
        }
    assert_outcome(await gw.get("/Goal/socialcare.P000000.nothing"), 404, "not-found")


async def test_definitions_are_public_and_listed(gw: Gateway) -> None:
    metadata = assert_fhir(await gw.client.get(f"{gw.base_url}/metadata"))
    text = str(metadata)
    for resource in (*CODE_SYSTEMS, *STRUCTURE_DEFINITIONS):
        got = assert_fhir(
            await gw.client.get(f"{gw.base_url}/{resource['resourceType']}/{resource['id']}")
        )
        assert got["url"] == resource["url"] and resource["url"] in text
    careplan = next(r for r in metadata["rest"][0]["resource"] if r["type"] == "CarePlan")
    assert "CarePlan:goal" in careplan["searchInclude"]
    assert all(r.get("searchInclude", ["x"]) for r in metadata["rest"][0]["resource"])


async def test_cors_preflight_and_exposed_headers(
    gw: Gateway, running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    resp = await gw.client.options(f"{gw.base_url}/Patient/{BOTH}", headers=preflight)
    assert "access-control-allow-origin" not in resp.headers  # no origin allowed by default
    configs = source_configs(running_sources)
    async with running_gateway(configs, *signing_key, cors_origins=(ORIGIN,)) as cors:
        asked = {**preflight, "Access-Control-Request-Headers": "authorization, prefer"}
        resp = await cors.client.options(f"{cors.base_url}/Patient/{BOTH}", headers=asked)
        assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == ORIGIN
        assert "HEAD" in resp.headers["access-control-allow-methods"]
        read = await cors.get(f"/Patient/{BOTH}", headers={**cors.headers(), "Origin": ORIGIN})
        assert read.headers["access-control-allow-origin"] == ORIGIN
        assert "ETag" in read.headers["access-control-expose-headers"]
        refused = await cors.client.get(
            f"{cors.base_url}/Patient/{BOTH}", headers={"Origin": ORIGIN}
        )
        assert (
            refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN
        )
        other = {**preflight, "Origin": "https://evil.example"}
        resp = await cors.client.options(f"{cors.base_url}/Patient/{BOTH}", headers=other)
        assert "access-control-allow-origin" not in resp.headers
        metadata = assert_fhir(await cors.client.get(f"{cors.base_url}/metadata"))
        assert metadata["rest"][0]["security"]["cors"] is True

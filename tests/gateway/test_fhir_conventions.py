"""FHIR search conventions, HTTP semantics and readable references, over real HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.fhir.definitions import CODE_SYSTEMS, STRUCTURE_DEFINITIONS
from simulators.population import SCENARIOS
from simulators.runner import source_configs
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome, running_gateway
from tests.gateway.joint_support import JointClient, plan_body
from tests.gateway.patient_support import references

# The socket is the point: headers as uvicorn writes them, HEAD, CORS preflight.
pytestmark = pytest.mark.socket

BOTH = SCENARIOS["both"].nhs_number or ""
ORIGIN = "https://apps.example.nhs.uk"


@pytest.fixture(scope="module")
async def joint_plan(gw: Gateway) -> dict[str, Any]:
    """A joint care plan for the ``both`` person, in its second version (so it has two
    Provenance, each targeting its own version)."""
    joint = JointClient(gw)
    first = assert_fhir(await joint.post(plan_body()), 201)
    second = await joint.put(
        first["id"], {**first, "title": "Staying well at home, with the council"}, if_match='W/"1"'
    )
    plan: dict[str, Any] = assert_fhir(second)
    assert plan["meta"]["versionId"] == "2"
    return plan


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
    # what was asked for, and what a CarePlan cannot be without (intent, subject)
    assert set(plans[0]) == {"resourceType", "id", "meta", "status", "title", "intent", "subject"}
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


async def test_every_reference_in_every_scenario_persons_everything_resolves(
    gw: Gateway, joint_plan: dict[str, Any]
) -> None:
    """Every literal reference resolves here: ``Type/id`` by a read, a version-specific one
    (a joint plan's Provenance) by a vread of that version, ``#id`` to a contained resource of
    the same resource (a joint plan's care team and goals). None is absolute."""
    walked: set[str] = set()
    for key, scenario in SCENARIOS.items():
        if scenario.nhs_number is None:
            continue
        resp = await gw.get(f"/Patient/{scenario.nhs_number}/$everything")
        if resp.status_code == 403:
            continue  # the GP token has no relationship with this person
        bundle = assert_fhir(resp)
        for resource in matches(bundle):
            contained = {f"#{c['id']}" for c in resource.get("contained", ())}
            for ref in references(resource):
                walked.add(ref)
                if ref.startswith("#"):
                    assert ref in contained, (key, ref)
                    continue
                assert "://" not in ref, (key, ref)
                kind, rid, *version = ref.split("/")
                assert version == [] or (len(version) == 2 and version[0] == "_history"), ref
                target = assert_fhir(await gw.get(f"/{ref}"))
                assert (target["resourceType"], target["id"]) == (kind, rid), (key, ref)
                if version:
                    assert target["meta"]["versionId"] == version[-1], (key, ref)
            activities = (
                resource.get("activity", ()) if resource["resourceType"] == "CarePlan" else ()
            )
            for detail in (a.get("detail", {}) for a in activities):
                for uri in detail.get("instantiatesUri", ()):
                    assert uri.startswith(("urn:", "http")), (key, uri)
    plan = f"CarePlan/{joint_plan['id']}"
    assert {f"{plan}/_history/1", f"{plan}/_history/2", "#team"} <= walked


async def test_joint_plans_in_search_include_everything_and_paging(
    gw: Gateway, joint_plan: dict[str, Any]
) -> None:
    """A joint plan is one more CarePlan of the person's: found, counted, paged, included
    and revincluded the same as the sources' plans, with its own ETag."""
    plan_id = joint_plan["id"]
    every = assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}"))
    ids = [p["id"] for p in matches(every)]
    assert plan_id in ids and every["total"] == len(ids)
    count = assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}&_summary=count"))
    assert count["total"] == len(ids)
    paged: list[str] = []
    url: str | None = f"/CarePlan?patient={BOTH}&_count=1"
    while url is not None:
        page = assert_fhir(await gw.get(url))
        assert page["total"] == len(ids) and len(matches(page)) <= 1
        paged += [p["id"] for p in matches(page)]
        following = next((k["url"] for k in page["link"] if k["relation"] == "next"), None)
        url = following.removeprefix(gw.base_url) if following else None
    assert sorted(paged) == sorted(ids)
    stored = next(p for p in matches(every) if p["id"] == plan_id)
    assert stored["meta"]["versionId"] == "2" and stored["text"]["status"] == "generated"
    # its Provenance target versions of it: _revinclude finds both; the contained care team
    # and goal are no separate resources, so _include adds none for it
    rev = assert_fhir(await gw.get(f"/CarePlan?patient={BOTH}&_revinclude=Provenance:target"))
    joint_prov = [
        r
        for r in matches(rev, "include")
        if any(t["reference"].startswith(f"CarePlan/{plan_id}/") for t in r["target"])
    ]
    assert sorted(t["reference"] for r in joint_prov for t in r["target"]) == [
        f"CarePlan/{plan_id}/_history/1",
        f"CarePlan/{plan_id}/_history/2",
    ]
    included = assert_fhir(
        await gw.get(f"/CarePlan?patient={BOTH}&_include=CarePlan:care-team&_include=CarePlan:goal")
    )
    assert all(r["resourceType"] in ("Goal", "CareTeam") for r in matches(included, "include"))
    assert all(not r["id"].startswith("joint.") for r in matches(included, "include"))
    everything = assert_fhir(await gw.get(f"/Patient/{BOTH}/$everything"))
    keys = {f"{r['resourceType']}/{r['id']}" for r in matches(everything)}
    assert f"CarePlan/{plan_id}" in keys
    assert {f"Provenance/{r['id']}" for r in joint_prov} <= keys
    pages: set[str] = set()
    url = f"/Patient/{BOTH}/$everything?_count=3"
    while url is not None:
        page = assert_fhir(await gw.get(url))
        pages |= {f"{r['resourceType']}/{r['id']}" for r in matches(page)}
        following = next((k["url"] for k in page["link"] if k["relation"] == "next"), None)
        url = following.removeprefix(gw.base_url) if following else None
    assert pages == keys
    read = await gw.get(f"/CarePlan/{plan_id}")
    assert read.headers["etag"] == 'W/"2"' and assert_fhir(read)["meta"]["versionId"] == "2"
    again = await gw.get(f"/CarePlan/{plan_id}", headers={**gw.headers(), "If-None-Match": 'W/"2"'})
    assert again.status_code == 304 and again.content == b""
    # a 405 says what is allowed, HEAD included, for a joint plan and for a source's plan
    joint = JointClient(gw)
    assert (await joint.delete(f"/CarePlan/{plan_id}")).headers["allow"] == "GET, HEAD, PUT"
    source_plan = next(i for i in ids if not i.startswith("joint."))
    refused = await joint.delete(f"/CarePlan/{source_plan}")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


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

"""The social care simulator over real HTTP, against specs/social-care-api.md."""

from __future__ import annotations

from typing import Any

import httpx

from adapters import nhs_number
from simulators.population import SCENARIOS
from simulators.runner import RunningSources


async def _all_pages(
    client: httpx.AsyncClient, path: str, query: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params = dict(query or {})
    for _ in range(100):
        response = await client.get(path, params=params)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"items", "next"}
        items.extend(body["items"])
        if body["next"] is None:
            return items
        params = {**(query or {}), "cursor": body["next"]}
    raise AssertionError("paging did not end")


async def test_missing_or_wrong_key_is_401(running_sources: RunningSources) -> None:
    async with httpx.AsyncClient(base_url=running_sources.social_care_url) as client:
        nhs = SCENARIOS["both"].nhs_number
        missing = await client.get("/people", params={"nhsNumber": nhs})
        wrong = await client.get("/people", params={"nhsNumber": nhs},
                                 headers={"X-Api-Key": "not-the-key"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"error": "unauthorized"}


async def test_search_by_nhs_number_matches_stored_value_with_spaces(
    social: httpx.AsyncClient,
) -> None:
    response = await social.get("/people", params={"nhsNumber": SCENARIOS["both"].nhs_number})
    assert response.status_code == 200
    [person] = response.json()["items"]
    assert person["personId"] == "P900001"
    assert person["nhsNumber"] == "999 100 0003"  # as stored
    assert person["nhsNumberStatus"] == "verified"
    assert person["gp"] == {"odsCode": "F81001", "name": "Tilbury Health Centre"}
    assert set(person) >= {"name", "birthDate", "deathDate", "gender", "ethnicity", "addresses",
                           "telecom", "primarySupportReason", "restricted", "lastUpdated"}


async def test_duplicate_people_both_returned(social: httpx.AsyncClient) -> None:
    scenario = SCENARIOS["duplicate"]
    items = (await social.get("/people", params={"nhsNumber": scenario.nhs_number})).json()
    assert sorted(p["personId"] for p in items["items"]) == sorted(scenario.person_ids)


async def test_malformed_stored_number_never_matched(social: httpx.AsyncClient) -> None:
    person_id = SCENARIOS["malformed_nhs"].person_ids[0]
    person = (await social.get(f"/people/{person_id}")).json()
    digits = "".join(ch for ch in person["nhsNumber"] if ch.isdigit())
    assert not nhs_number.is_valid(digits)
    found = (await social.get("/people", params={"nhsNumber": digits})).json()
    assert found == {"items": [], "next": None}


async def test_unknown_number_and_unknown_person(social: httpx.AsyncClient) -> None:
    found = await social.get("/people", params={"nhsNumber": "9990000018"})
    assert found.json() == {"items": [], "next": None}
    for path in ("/people/P999999", "/people/P999999/support-plans",
                 "/people/P999999/involvements"):
        response = await social.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "not_found"}


async def test_no_nhs_person_reachable_by_id(social: httpx.AsyncClient) -> None:
    person = (await social.get(f"/people/{SCENARIOS['no_nhs'].person_ids[0]}")).json()
    assert person["nhsNumber"] is None and person["nhsNumberStatus"] == "missing"


async def test_support_plans_are_paged(social: httpx.AsyncClient) -> None:
    person_id = SCENARIOS["safeguarding"].person_ids[0]
    first = (await social.get(f"/people/{person_id}/support-plans")).json()
    assert len(first["items"]) == 2
    plans = await _all_pages(social, f"/people/{person_id}/support-plans")
    kinds = {(p["planType"], p["confidentiality"]) for p in plans}
    assert ("safeguarding-protection", "restricted") in kinds
    assert ("care-and-support", "normal") in kinds


async def test_paging_over_more_than_one_page(
    social: httpx.AsyncClient, running_sources: RunningSources
) -> None:
    pop = running_sources.population
    person_id = next(pid for pid, plans in pop.support_plans.items() if len(plans) == 3)
    first = (await social.get(f"/people/{person_id}/support-plans")).json()
    assert first["next"] is not None
    plans = await _all_pages(social, f"/people/{person_id}/support-plans")
    assert [p["planId"] for p in plans] == [p.plan_id for p in pop.support_plans[person_id]]


async def test_bad_cursor_is_400(social: httpx.AsyncClient) -> None:
    response = await social.get("/people/P900001/support-plans", params={"cursor": "nonsense!"})
    assert response.status_code == 400


async def test_involvements_current_and_historic(social: httpx.AsyncClient) -> None:
    involvements = await _all_pages(social, "/people/P900001/involvements")
    assert len(involvements) == 3
    current = [i for i in involvements if i["end"] is None]
    assert [i["isLead"] for i in current].count(True) == 1
    assert all(i["organisation"]["odsCode"] == "LA883" for i in involvements)
    assert any(i["end"] is not None for i in involvements)


async def test_restricted_person(social: httpx.AsyncClient) -> None:
    person = (await social.get(f"/people/{SCENARIOS['restricted'].person_ids[0]}")).json()
    assert person["restricted"] is True


async def test_changes_feed_and_touch(social: httpx.AsyncClient) -> None:
    before = (await social.get("/people/P900002")).json()["lastUpdated"]
    touched = await social.post("/_control/touch/P900002")
    assert touched.status_code == 200
    changed_at = touched.json()["changedAt"]
    changes = await _all_pages(social, "/changes", {"since": before})
    assert {"personId": "P900002", "nhsNumber": SCENARIOS["social_only"].nhs_number,
            "changedAt": changed_at} in changes
    after = (await social.get("/people/P900002")).json()["lastUpdated"]
    assert after == changed_at
    later = await social.get("/changes", params={"since": changed_at})
    assert all(c["personId"] != "P900002" or c["changedAt"] > changed_at
               for c in later.json()["items"])
    assert (await social.post("/_control/touch/P999999")).status_code == 404


async def test_changes_needs_a_timestamp(social: httpx.AsyncClient) -> None:
    assert (await social.get("/changes", params={"since": "yesterday"})).status_code == 400

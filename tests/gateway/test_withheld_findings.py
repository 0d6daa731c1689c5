"""A data-quality finding about a withheld resource is neither shown nor counted.

Real HTTP end to end (gateway with the consent policy → adapters → simulators), on a
population of this module's own: the scenario people as everywhere else, except that two of
the plans the policy withholds from some callers carry a code their source does not know,
and one person's gender code is not a Data Dictionary code:

* ``mental_health_r``: the community mental health plan labelled ``R`` has an activity whose
  status is not an STU3 code (``care plan activity status not recognised``);
* ``safeguarding``: the restricted safeguarding-protection support plan has a status the
  council mapping does not know (``a support plan status is not recognised``), and the
  council Person's gender is ``3`` (a finding about the Patient, which every caller sees).

A caller who sees the plan gets its warning; a caller from whom it is withheld gets nothing
that hints at it, in ``$everything`` and in a CarePlan search alike.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import pytest_asyncio

from adapters.community.adapter import CommunityAdapter
from adapters.socialcare import SocialCareAdapter
from gateway.records.merge import MERGE_WARNING_SYSTEM
from simulators.model import Population
from simulators.population import COUNCIL_ODS, SCENARIOS, build_population
from simulators.runner import RunningSources, serve_sources, source_configs
from tests.gateway.harness import Gateway, running_gateway
from tests.gateway.test_consent_acceptance import (
    MH_R_PLAN,
    SAFEGUARDING_PLAN,
    bundle_of,
    gp_of,
    ids,
    outcomes,
    outcomes_with,
    reasons,
    suppressed,
    who,
)

POPULATION_SIZE = 40
NHS_MENTAL_HEALTH = str(SCENARIOS["mental_health_r"].nhs_number)
NHS_SAFEGUARDING = str(SCENARIOS["safeguarding"].nhs_number)

ACTIVITY_STATUS = ("unknown-code", "community: care plan activity status not recognised")
PLAN_STATUS = (
    "unknown-code",
    "socialcare: a support plan status is not recognised; recorded as unknown",
)
GENDER = ("unknown-code", "socialcare: a person's gender code is not a Data Dictionary code")


def population_with_unknown_codes() -> Population:
    """The default scenario people, with the unknown codes described in the module docs."""
    base = build_population(size=POPULATION_SIZE)
    mh_plans = tuple(
        replace(p, activities=tuple(replace(a, status="paused") for a in p.activities))
        if p.plan_id == "cp-900008"
        else p
        for p in base.care_plans["C900010"]
    )
    assert any(p.plan_id == "cp-900008" and p.activities for p in mh_plans)
    safeguarding_plans = tuple(
        replace(p, status="paused") if p.plan_id == "SP-900010" else p
        for p in base.support_plans["P900009"]
    )
    people = tuple(
        replace(p, gender="3") if p.person_id == "P900009" else p for p in base.council_people
    )
    return replace(
        base,
        council_people=people,
        support_plans={**base.support_plans, "P900009": safeguarding_plans},
        care_plans={**base.care_plans, "C900010": mh_plans},
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sources() -> AsyncIterator[RunningSources]:
    async with serve_sources(population=population_with_unknown_codes()) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gw(
    sources: RunningSources, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    async with running_gateway(source_configs(sources), *signing_key) as gateway:
        yield gateway


def finding(warning: tuple[str, str]) -> str:
    """A merge warning's text as the adapter reported it (without ``"{source}: "``)."""
    return warning[1].split(": ", 1)[1]


def merge_warnings(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    """``(code, text)`` of every merge-warning issue in the Bundle's outcome entries."""
    return [
        (coding["code"], issue["details"]["text"])
        for oo in outcomes(bundle)
        for issue in oo["issue"]
        for coding in issue.get("details", {}).get("coding", ())
        if coding.get("system") == MERGE_WARNING_SYSTEM
    ]


def matches(bundle: dict[str, Any]) -> int:
    return sum(1 for e in bundle.get("entry", ()) if e["search"]["mode"] != "outcome")


async def careplan_search(gw: Gateway, nhs: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = await gw.get("/CarePlan", headers=headers, params={"patient": nhs})
    return bundle_of(resp)


async def everything(gw: Gateway, nhs: str, headers: dict[str, str]) -> dict[str, Any]:
    return bundle_of(await gw.get(f"/Patient/{nhs}/$everything", headers=headers))


def says_nothing_of(bundle: dict[str, Any], *texts: str) -> None:
    dumped = json.dumps(bundle)
    for text in texts:
        assert text not in dumped, f"{text!r} leaked"


# (role, organisation — "gp": the person's registered practice —, the reason the plan with the
# unknown code is withheld from this caller or None when it is shown, the merge warnings due)
Case = tuple[str, str, str | None, list[tuple[str, str]]]
MENTAL_HEALTH_CASES: dict[str, Case] = {
    "gp sees the R health plan": ("R8000", "gp", None, [ACTIVITY_STATUS]),
    "social worker": ("LA-SW", COUNCIL_ODS, "label-restricted", []),
    "admin sees no care plan": ("R8008", "gp", "level-demographics-only", []),
}
SAFEGUARDING_CASES: dict[str, Case] = {
    "social worker sees the R social care plan": (
        "LA-SW",
        COUNCIL_ODS,
        None,
        [GENDER, PLAN_STATUS],
    ),
    "gp": ("R8000", "gp", "label-restricted", [GENDER]),
    "admin sees no care plan": ("R8008", "gp", "level-demographics-only", [GENDER]),
}


async def check(
    gw: Gateway,
    sources: RunningSources,
    nhs: str,
    plan_id: str,
    case: Case,
) -> None:
    role, org, withheld_because, expected = case
    headers = who(gw, role, gp_of(sources, nhs) if org == "gp" else org)
    # The findings this caller must not get, without the source name any text might carry.
    hidden = [finding(w) for w in (ACTIVITY_STATUS, PLAN_STATUS) if w not in expected]
    for bundle in (
        await everything(gw, nhs, headers),
        await careplan_search(gw, nhs, headers),
    ):
        assert merge_warnings(bundle) == expected
        says_nothing_of(bundle, *hidden)
        if withheld_because is None:
            assert plan_id in ids(bundle, "CarePlan")
            assert outcomes_with(bundle, "suppressed") == []
            assert len(outcomes(bundle)) == len(expected)
        else:
            says_nothing_of(bundle, plan_id)
            assert reasons(suppressed(bundle)) == [withheld_because]
            # one entry saying that something was withheld, one per warning: nothing more
            assert len(outcomes(bundle)) == 1 + len(expected)
        assert bundle["total"] == matches(bundle)  # outcome entries are never counted


@pytest.mark.parametrize("case", sorted(MENTAL_HEALTH_CASES))
async def test_community_plan_finding_only_with_the_plan(
    gw: Gateway, sources: RunningSources, case: str
) -> None:
    await check(gw, sources, NHS_MENTAL_HEALTH, MH_R_PLAN, MENTAL_HEALTH_CASES[case])


@pytest.mark.parametrize("case", sorted(SAFEGUARDING_CASES))
async def test_social_care_plan_finding_only_with_the_plan_patient_finding_always(
    gw: Gateway, sources: RunningSources, case: str
) -> None:
    await check(gw, sources, NHS_SAFEGUARDING, SAFEGUARDING_PLAN, SAFEGUARDING_CASES[case])


async def test_the_source_answers_with_the_findings_the_gateway_filters(
    sources: RunningSources,
) -> None:
    """The premise: the adapters really report these findings, typed, for these people."""
    social, community = source_configs(sources)
    async with httpx.AsyncClient() as client:
        council = await SocialCareAdapter(social, client).fetch(NHS_SAFEGUARDING)
        health = await CommunityAdapter(community, client).fetch(NHS_MENTAL_HEALTH)
    assert {(i.text, i.about) for i in council.issues} == {
        (finding(PLAN_STATUS), "CarePlan"),
        (finding(GENDER), "Patient"),
    }
    assert {(i.text, i.about) for i in health.issues} == {(finding(ACTIVITY_STATUS), "CarePlan")}

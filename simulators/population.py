"""A seeded synthetic population of older people in Thurrock, held by two simulated sources.

``build_population(seed, size)`` makes ``size`` made-up people in four localities (Tilbury,
Purfleet, Grays, Corringham), most born 1925-1960. About 55% are known to both the council's
adult social care system and the community health trust, 25% to social care only and 20% to
community only. The same seed always gives the same population, and a 2000-person build
takes well under a second.

On top of the random people sit the fixed :data:`SCENARIOS` (same NHS numbers and ids for
every seed), each showing one behaviour of the gateway:

================  ============  =========================================================
key               NHS number    what it shows
================  ============  =========================================================
both              9991000003    in both sources, GP F81001, plans and care teams in both
social_only       9991000070    social care only
community_only    9991000143    community only
duplicate         9991000216    two council Person records share one NHS number
malformed_nhs     (none)        council Person P900006 stores ``999/123/4561`` (bad shape
                                and fails Modulus 11): reachable only by person id
no_nhs            (none)        council Person P900007 with no NHS number (status missing)
restricted        9991000283    council Person marked ``restricted: true``
safeguarding      9991000356    a restricted safeguarding-protection plan beside a normal one
mental_health_r   9991000429    community mental health CarePlan labelled ``R``
deceased          9991000496    died 2026-09-14, recorded by both sources
dob_conflict      9991000569    birth dates differ; social care verified, community ``02``
nopat             9991000577    a community mental health plan labelled ``NOPAT`` (no
                                disclosure to the patient) beside a normal nursing plan
================  ============  =========================================================

``size`` counts the general population plus the first eleven scenario people; scenario
people added later come on top, so no seed's general population changes when one is added.

The general population carries the mess real vendor data has: NHS numbers stored with spaces
or dashes, unknown plan types, free-text service frequencies, ended and cancelled plans,
historic involvements, more than one lead worker, contained and referenced STU3 resources,
every STU3 verification-status extension and code system, both CareConnect ethnic category
systems with local two-character sub-codes, and local PAS identifiers.
"""

from __future__ import annotations

from simulators import _vocab as v
from simulators._build import (
    Builder,
    council_person,
    days_before,
    involvements,
    support_plan,
    weighted,
)
from simulators._build_community import care_plan, care_team, community_patient
from simulators._scenarios import (
    GENERAL_POPULATION_OFFSET,
    SCENARIO_NHS_NUMBERS,
    SCENARIOS,
    add_scenarios,
)
from simulators._vocab import (
    COMMUNITY_NAME,
    COMMUNITY_ODS,
    COUNCIL_NAME,
    COUNCIL_ODS,
    PRACTICES,
)
from simulators.model import Population, Scenario

__all__ = [
    "COMMUNITY_NAME",
    "COMMUNITY_ODS",
    "COUNCIL_NAME",
    "COUNCIL_ODS",
    "DEFAULT_SEED",
    "DEFAULT_SIZE",
    "PRACTICES",
    "SCENARIOS",
    "SCENARIO_NHS_NUMBERS",
    "Population",
    "Scenario",
    "build_population",
]

DEFAULT_SEED = 20261123
DEFAULT_SIZE = 2000


def _general_person(b: Builder, index: int) -> None:
    """One random person, known to social care, community health, or both."""
    rng = b.rng
    identity = b.identity()
    locality = identity[3]
    address = b.address(locality)
    gp = b.gp_for(locality)
    death = days_before(rng, 5, 700) if rng.random() < 0.03 else None
    membership = weighted(rng, (("both", 55), ("social", 25), ("community", 20)))
    nhs: str | None = b.new_nhs_number()
    ethnicity = weighted(rng, v.ETHNICITY_WEIGHTS)

    if membership in {"both", "social"}:
        person_id = f"P{index:06d}"
        council_nhs = None if rng.random() < 0.02 else nhs
        person = council_person(b, person_id, council_nhs, identity, address, gp, death)
        if person.ethnicity is not None:
            ethnicity = person.ethnicity
        b.council.append(person)
        plans = []
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            plan_type = weighted(rng, v.PLAN_TYPE_WEIGHTS)
            worker = rng.choice(v.WORKERS)
            plans.append(support_plan(b, person_id, plan_type,
                                      weighted(rng, v.PLAN_STATUS_WEIGHTS), worker))
        b.plans[person_id] = tuple(plans)
        current = rng.choice((1, 1, 2, 2, 3))
        leads = 2 if rng.random() < 0.05 else (0 if rng.random() < 0.05 else 1)
        b.involvements[person_id] = involvements(
            b, locality, current=current, historic=rng.choice((0, 0, 1, 2)), leads=leads
        )

    if membership in {"both", "community"}:
        patient_id = f"C{index:06d}"
        b.patients.append(
            community_patient(b, patient_id, nhs, identity, address, gp, death, ethnicity)
        )
        teams = []
        for _ in range(rng.choice((0, 1, 1, 2))):
            name = rng.choice(v.CARE_TEAM_NAMES).format(locality=locality)
            teams.append(care_team(b, patient_id, name,
                                   status="active" if rng.random() < 0.85 else "inactive"))
        b.care_teams[patient_id] = tuple(teams)
        cps = []
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            category = (v.MENTAL_HEALTH_CATEGORY if rng.random() < 0.08
                        else rng.choice(v.CARE_PLAN_CATEGORIES))
            team_id = teams[0].team_id if teams and rng.random() < 0.5 else None
            cps.append(care_plan(b, patient_id, category,
                                 weighted(rng, v.COMMUNITY_PLAN_STATUS_WEIGHTS),
                                 care_team_id=team_id))
        b.care_plans[patient_id] = tuple(cps)


def build_population(seed: int = DEFAULT_SEED, size: int = DEFAULT_SIZE) -> Population:
    """Make ``size`` people (the scenario people included); the same seed gives the same data."""
    b = Builder(seed, SCENARIO_NHS_NUMBERS)
    general = max(0, size - GENERAL_POPULATION_OFFSET)
    for index in range(1, general + 1):
        _general_person(b, index)
    add_scenarios(b)
    return Population(
        seed=seed,
        size=general + len(SCENARIOS),
        practices=PRACTICES,
        council_people=tuple(b.council),
        support_plans=b.plans,
        involvements=b.involvements,
        community_patients=tuple(b.patients),
        care_plans=b.care_plans,
        care_teams=b.care_teams,
        organizations=b.organizations,
        practitioners=b.practitioners,
        scenarios=SCENARIOS,
    )

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
================  ============  =========================================================

The general population carries the mess real vendor data has: NHS numbers stored with spaces
or dashes, unknown plan types, free-text service frequencies, ended and cancelled plans,
historic involvements, more than one lead worker, contained and referenced STU3 resources,
every STU3 verification-status extension and code system, both CareConnect ethnic category
systems with local two-character sub-codes, and local PAS identifiers.
"""

from __future__ import annotations

from simulators._build import Builder, general_person
from simulators._scenarios import SCENARIO_NHS_NUMBERS, SCENARIOS, add_scenarios
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


def build_population(seed: int = DEFAULT_SEED, size: int = DEFAULT_SIZE) -> Population:
    """Make ``size`` people (the scenario people included); the same seed gives the same data."""
    b = Builder(seed, SCENARIO_NHS_NUMBERS)
    general = max(0, size - len(SCENARIOS))
    for index in range(1, general + 1):
        general_person(b, index)
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

"""The scenario people the source simulators serve (README.md's table), by their keys.

Every NHS number is a valid Modulus 11 number in the 999 test range; tests name people by
what is special about them, never by a number typed out again.
"""

from __future__ import annotations

from simulators.population import SCENARIOS

GP_ORG = "F81001"  # the registered GP practice of the ``both`` person
UNKNOWN = "9991000585"  # a valid 999-range number no source holds


def nhs(key: str) -> str:
    """The NHS number of the scenario person ``key`` (``both``, ``social_only`` ...)."""
    number = SCENARIOS[key].nhs_number
    assert number is not None, f"scenario {key} has no valid NHS number"
    return number


BOTH = nhs("both")  # held by both sources (GP F81001)
SOCIAL_ONLY = nhs("social_only")
COMMUNITY_ONLY = nhs("community_only")
DOB_CONFLICT = nhs("dob_conflict")
NOPAT = nhs("nopat")

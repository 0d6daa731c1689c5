"""The Better Care Fund question as a ``MeasureReport``: counts only, small numbers hidden.

The national condition asks that people at high risk have "a joint care plan and
accountable lead professional", and that the proportion who do is reported. The summary
answers, over every joint plan's current version:

=================================  ==========================================================
group ``code``                     what is counted
=================================  ==========================================================
``people-with-active-plan``        people with at least one ``active`` joint plan
``people-active-with-lead``        of them, people whose active plan names a lead professional
``plans-by-author``                plans by author organisation (a stratum per ODS code)
``plans-by-status``                plans by status (a stratum per status)
=================================  ==========================================================

Small-number disclosure control: any count from 1 to 4 is never shown. Its ``count`` is
left out and carries the ``data-absent-reason`` extension with code ``masked`` instead
(``_count`` in JSON); ``0`` and counts of 5 or more are shown. Nothing names a person.
The counts are read in one transaction, so they agree with each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from gateway.fhir.responses import now_instant
from gateway.joint.store import SummaryCounts

MEASURE: Final = "urn:caregateway:measure:joint-care-plans"
GROUP_SYSTEM: Final = "urn:caregateway:joint-care-summary"
POPULATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-population"
DATA_ABSENT_REASON: Final = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
SMALLEST_SHOWN: Final = 5


def suppressed(count: int) -> bool:
    """Whether ``count`` is a small number that must not be shown (1 to 4)."""
    return 0 < count < SMALLEST_SHOWN


def _population(count: int) -> dict[str, Any]:
    population: dict[str, Any] = {
        "code": {"coding": [{"system": POPULATION_SYSTEM, "code": "initial-population"}]}
    }
    if suppressed(count):
        population["_count"] = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}]}
    else:
        population["count"] = count
    return population


def _code(code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": GROUP_SYSTEM, "code": code}], "text": text}


def _stratified(code: str, text: str, by: str, counts: Mapping[str, int]) -> dict[str, Any]:
    return {
        "code": _code(code, text),
        "stratifier": [
            {
                "code": [{"text": by}],
                "stratum": [
                    {"value": {"text": value}, "population": [_population(n)]}
                    for value, n in sorted(counts.items())
                ],
            }
        ],
    }


def measure_report(counts: SummaryCounts, base_url: str) -> dict[str, Any]:
    """The summary ``MeasureReport`` (``type`` summary) for ``counts``."""
    now = now_instant()
    return {
        "resourceType": "MeasureReport",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now},
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "date": now,
        "period": {"end": now},
        "reporter": {"display": f"caregateway at {base_url}"},
        "group": [
            {
                "code": _code("people-with-active-plan", "People with an active joint care plan"),
                "population": [_population(counts.people_with_active_plan)],
            },
            {
                "code": _code(
                    "people-active-with-lead",
                    "People with an active joint care plan and a lead professional",
                ),
                "population": [_population(counts.people_active_with_lead)],
            },
            _stratified(
                "plans-by-author",
                "Joint care plans by author organisation",
                "author organisation (ODS code)",
                counts.plans_by_author,
            ),
            _stratified(
                "plans-by-status", "Joint care plans by status", "status", counts.plans_by_status
            ),
        ],
    }

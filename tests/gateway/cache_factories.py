"""Realistic source results for the cache tests (synthetic people, 999 NHS numbers)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from adapters.base import DataIssue, Outcome, SourceResult
from gateway.cache import RecordCache

NHS_A = "9990000018"
NHS_B = "9990000026"

PEOPLE: dict[str, dict[str, str]] = {
    NHS_A: {"given": "Amelia", "family": "Hartley-Osei", "birth": "1947-03-12"},
    NHS_B: {"given": "Desmond", "family": "Okonkwo", "birth": "1939-11-30"},
}
CARE_PLAN_START = "2026-10-01"
FETCHED_AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def patient(source: str, nhs: str) -> dict[str, Any]:
    who = PEOPLE[nhs]
    return {
        "resourceType": "Patient",
        "id": f"{source}.P{nhs[-4:]}",
        "meta": {
            "source": f"urn:caregateway:source:{source}",
            "lastUpdated": "2026-11-20T08:00:00Z",
        },
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"use": "official", "given": [who["given"]], "family": who["family"]}],
        "birthDate": who["birth"],
        "address": [{"line": ["12 Mill Lane"], "city": "Grays", "postalCode": "RM17 6XX"}],
    }


def care_plan(source: str, nhs: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": f"{source}.P{nhs[-4:]}.CP1",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{nhs}", "display": PEOPLE[nhs]["family"]},
        "period": {"start": CARE_PLAN_START},
        "created": f"{CARE_PLAN_START}T09:30:00+00:00",
        "title": "Reablement after hip fracture",
    }


def found(source: str, nhs: str) -> SourceResult:
    return SourceResult(
        source=source,
        organisation="RAT" if source == "community" else "TRC01",
        domain="health" if source == "community" else "social-care",
        outcome=Outcome.FOUND,
        resources=(patient(source, nhs), care_plan(source, nhs)),
        issues=(DataIssue("unknown-code", "a care plan category was not recognised"),),
        fetched_at=FETCHED_AT,
    )


def failed(source: str, outcome: Outcome = Outcome.UNAVAILABLE) -> SourceResult:
    return SourceResult(
        source=source,
        organisation="TRC01",
        domain="social-care",
        outcome=outcome,
        detail="source answered 503",
    )


def secrets_of(nhs: str) -> list[bytes]:
    """Everything about the person that must never be found in clear in the cache."""
    who = PEOPLE[nhs]
    return [
        s.encode()
        for s in (nhs, who["given"], who["family"], who["birth"], CARE_PLAN_START, "Mill Lane")
    ]


class HeldFetch:
    """A source fetch that counts its calls and answers only once ``release`` is set, so
    concurrent callers can be shown to share one call."""

    def __init__(self, source: str, nhs: str) -> None:
        self.source, self.nhs = source, nhs
        self.release = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> SourceResult:
        self.calls += 1
        await self.release.wait()
        return found(self.source, self.nhs)


async def fetch_concurrently(
    cache: RecordCache, fetch: HeldFetch, callers: int = 20
) -> list[SourceResult]:
    """``callers`` concurrent ``get_or_fetch`` calls, released once every one has joined."""
    tasks = [
        asyncio.create_task(cache.get_or_fetch(fetch.source, fetch.nhs, fetch))
        for _ in range(callers)
    ]
    await asyncio.sleep(0)  # every task joins the flight in its first step
    fetch.release.set()
    return list(await asyncio.gather(*tasks))

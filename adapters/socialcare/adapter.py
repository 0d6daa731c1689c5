"""The council social care source behind :class:`adapters.base.SourceAdapter`.

``fetch`` asks the source in two rounds:

1. ``GET /people?nhsNumber=`` (every page; duplicates are returned and reported, not hidden);
2. per person, support plans and involvements, all concurrently (``asyncio.gather``).

Then the pure mapping (:mod:`adapters.socialcare.mapping`) builds UK Core resources, each
validated where it is born with :func:`adapters.validation.validate_resource`.

**A resource that fails UK Core validation is left out, not fatal** (the one rule for every
adapter, :mod:`adapters.context`): a Goal that fails is dropped and unlinked from its plan;
a plan that fails takes its Goals with it; a Patient that fails takes everything made for
that person with it. If no person is left the answer is ``BAD_DATA``.

The whole fetch runs under the source's deadline (the HTTP base's template): source faults,
the deadline and bad content become a failed :class:`SourceResult`, never an exception.

>>> adapter = SocialCareAdapter(SourceConfig("lascare", "social-care-api",
...     "http://127.0.0.1:8081/api/v1", "LA883", api_key="..."))  # doctest: +SKIP
>>> result = await adapter.fetch("9991000003")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from datetime import date, datetime

import httpx

from adapters import nhs_number
from adapters.base import ChangedPerson, Outcome, Resource, SourceConfig
from adapters.context import keep_valid
from adapters.http_source import Care, HTTPSourceAdapter
from adapters.resilience import CircuitBreaker, SourceFault
from adapters.socialcare import mapping
from adapters.socialcare.client import SocialCareClient

_PERSON_ID = re.compile(r"[A-Za-z0-9\-]{1,40}")


class SocialCareAdapter(HTTPSourceAdapter[SocialCareClient, mapping.Context]):
    """One council social care source. Make one per source and share it (it holds the client).

    ``fetch`` and ``nhs_number_for`` are the HTTP base's template
    (:class:`~adapters.http_source.HTTPSourceAdapter`); it has a change feed
    (:class:`~adapters.base.ChangeFeed`).
    """

    person_id = _PERSON_ID
    record_noun = "person"

    def _connect(
        self, http: httpx.AsyncClient, config: SourceConfig, breaker: CircuitBreaker
    ) -> SocialCareClient:
        return SocialCareClient(http, config.base_url, breaker, config.api_key)

    async def _read_nhs_number(self, person_id: str) -> str | None:
        return mapping.person_nhs_number(await self._client.person(person_id))

    async def changes(self, since: datetime) -> list[ChangedPerson]:
        """People whose record changed after ``since`` (entries without a valid NHS number
        are skipped: the cache is keyed by NHS number).

        Raises :class:`~adapters.resilience.SourceFault` when the source cannot answer.
        """
        items = await self._asked(lambda: self._client.changes(since))
        changed: list[ChangedPerson] = []
        for item in items:
            raw, when = item.get("nhsNumber"), item.get("changedAt")
            if not isinstance(raw, str) or not isinstance(when, str):
                continue
            digits = nhs_number.normalise(raw)
            try:
                at = datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError:
                continue
            if digits.isascii() and nhs_number.is_valid(digits) and at.tzinfo is not None:
                changed.append(ChangedPerson(digits, at))
        return changed

    # --- the two rounds and the mapping ---------------------------------------------------

    def _context(self) -> mapping.Context:
        return mapping.Context(self.name, self.organisation, self.domain)

    async def _people(self, nhs: str, ctx: mapping.Context) -> list[Resource]:
        return self._matching(await self._client.people(nhs), nhs, ctx)

    async def _care_of(self, people: list[Resource], ctx: mapping.Context) -> list[Care]:
        found = await asyncio.gather(*(self._care(str(p["personId"])) for p in people))
        ctx.organisation_name = mapping.organisation_name(
            (i for _, involvements in found for i in involvements), self.organisation
        )
        return list(found)

    def _normalise(
        self,
        person: Resource,
        care: Care,
        nhs: str,
        ctx: mapping.Context,
        fetched_at: datetime,
    ) -> tuple[Resource, list[Resource], Resource] | None:
        plans, involvements = care
        made = self._person(person, plans, involvements, nhs, ctx, fetched_at.date())
        if made is None:
            return None
        patient, rest = made
        prov = mapping.make_provenance(str(person["personId"]), [patient, *rest], fetched_at, ctx)
        if person.get("restricted") is True:
            mapping.add_label(prov)
        return patient, rest, prov

    @staticmethod
    def _matching(people: list[Resource], nhs: str, ctx: mapping.Context) -> list[Resource]:
        """The people the source matched that really hold ``nhs``, each once."""
        kept: dict[str, Resource] = {}
        for person in people:
            pid = person.get("personId")
            if not isinstance(pid, str) or not pid:
                ctx.issue("bad-record", "a matched person has no person id", about="Patient")
                continue
            if mapping.person_nhs_number(person) != nhs:
                ctx.issue(
                    "nhs-number-mismatch",
                    "a matched person holds another NHS number",
                    about="Patient",
                )
                continue
            kept.setdefault(pid, person)
        return list(kept.values())

    async def _care(self, person_id: str) -> tuple[list[Resource], list[Resource]]:
        plans, involvements = await asyncio.gather(
            _or_empty(self._client.support_plans(person_id)),
            _or_empty(self._client.involvements(person_id)),
        )
        return plans, involvements

    @staticmethod
    def _person(
        person: Resource,
        plans: list[Resource],
        involvements: list[Resource],
        nhs: str,
        ctx: mapping.Context,
        today: date,
    ) -> tuple[Resource, list[Resource]] | None:
        """The validated Patient and the rest for one person, or None when the Patient fails."""
        pid = str(person["personId"])
        restricted = person.get("restricted") is True
        patient = mapping.map_person(person, ctx)
        label = mapping.add_label if restricted else _no_label
        label(patient)
        if not keep_valid(patient, ctx):
            return None
        rest: list[Resource] = []
        for plan in plans:
            if not isinstance(plan.get("planId"), str) or not plan["planId"]:
                ctx.issue(
                    "bad-record",
                    "a support plan has no plan id and was left out",
                    about="CarePlan",
                    labelled=restricted or plan.get("confidentiality") == "restricted",
                )
                continue
            care_plan, goals = mapping.map_support_plan(plan, pid, nhs, ctx)
            kept_goals = []
            for goal in goals:
                label(goal)
                if keep_valid(goal, ctx):
                    kept_goals.append(goal)
            _unlink_goals(care_plan, {g["id"] for g in kept_goals})
            label(care_plan)
            if keep_valid(care_plan, ctx):
                rest.append(care_plan)
                rest.extend(kept_goals)
        team = mapping.map_involvements(involvements, pid, nhs, ctx, today)
        if team is not None:
            label(team)
            if keep_valid(team, ctx):
                rest.append(team)
        return patient, rest


async def _or_empty(call: Awaitable[list[Resource]]) -> list[Resource]:
    """A list the source no longer has (404: the person went between calls) is empty."""
    try:
        return await call
    except SourceFault as fault:
        if fault.outcome is Outcome.NOT_FOUND:
            return []
        raise


def _no_label(resource: Resource) -> None:
    return None


def _unlink_goals(care_plan: Resource, kept: set[str]) -> None:
    goals = [g for g in care_plan.get("goal", ()) if g["reference"].removeprefix("Goal/") in kept]
    if goals:
        care_plan["goal"] = goals
    else:
        care_plan.pop("goal", None)

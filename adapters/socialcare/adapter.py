"""The council social care source behind :class:`adapters.base.SourceAdapter`.

``fetch`` asks the source in two rounds:

1. ``GET /people?nhsNumber=`` (every page; duplicates are returned and reported, not hidden);
2. per person, support plans and involvements, all concurrently (``asyncio.gather``).

Then the pure mapping (:mod:`adapters.socialcare.mapping`) builds UK Core resources, each
validated where it is born with :func:`adapters.validation.validate_resource`.

**Invalid resources are dropped, not fatal** (a ``DataIssue`` ``invalid-resource`` says which
kind): one odd support plan should not hide a person's other plans and care team from a
clinician. A Goal that fails is dropped and unlinked from its plan; a plan that fails takes
its Goals with it; a Patient that fails takes everything made for that person with it. If no
person is left the answer is ``BAD_DATA``.

The whole fetch runs under ``asyncio.timeout(timeout_s)``: source faults, the deadline and
bad content become a failed :class:`SourceResult`, never an exception.

>>> adapter = SocialCareAdapter(SourceConfig("lascare", "social-care-api",
...     "http://127.0.0.1:8081/api/v1", "LA883", api_key="..."))  # doctest: +SKIP
>>> result = await adapter.fetch("9991000003")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import httpx

from adapters import nhs_number, ukcore
from adapters.base import (
    ChangedPerson,
    DataIssue,
    Outcome,
    Resource,
    SourceConfig,
    SourceResult,
)
from adapters.http_source import HTTPSourceAdapter
from adapters.resilience import CircuitBreaker, SourceFault, deadline_scope
from adapters.socialcare import mapping
from adapters.socialcare.client import SocialCareClient
from adapters.validation import UKCoreValidationError, validate_resource

_PERSON_ID = re.compile(r"[A-Za-z0-9\-]{1,40}")
T = TypeVar("T")


class SocialCareAdapter(HTTPSourceAdapter):
    """One council social care source. Make one per source and share it (it holds the client)."""

    def __init__(
        self,
        config: SourceConfig,
        client: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(config, client)
        self._client = SocialCareClient(
            self._http, config.base_url, breaker or CircuitBreaker(), config.api_key
        )

    async def fetch(self, nhs_number: str) -> SourceResult:
        fetched_at = datetime.now(UTC)
        try:
            resources, issues = await self._within_deadline(
                lambda: self._collect(nhs_number, fetched_at)
            )
        except TimeoutError:
            detail = f"no answer within {self._config.timeout_s:g}s"
            return self._failed(Outcome.TIMED_OUT, detail, fetched_at)
        except SourceFault as fault:
            return self._failed(fault.outcome, fault.detail, fetched_at)
        outcome = Outcome.FOUND if resources else Outcome.NOT_FOUND
        return self._result(outcome, fetched_at, resources=resources, issues=issues)

    async def nhs_number_for(self, person_id: str) -> str | None:
        """The valid, normalised NHS number of council person ``person_id``, or ``None``.

        Raises :class:`~adapters.resilience.SourceFault` when the source cannot answer (an
        unknown person is ``None``, not a fault).
        """
        if not _PERSON_ID.fullmatch(person_id):
            return None
        try:
            person = await self._within_deadline(lambda: self._client.person(person_id))
        except TimeoutError:
            raise SourceFault(Outcome.TIMED_OUT, "no answer in time") from None
        except SourceFault as fault:
            if fault.outcome is Outcome.NOT_FOUND:
                return None
            raise
        return mapping.person_nhs_number(person)

    async def changes(self, since: datetime) -> list[ChangedPerson]:
        """People whose record changed after ``since`` (entries without a valid NHS number
        are skipped: the cache is keyed by NHS number).

        Raises :class:`~adapters.resilience.SourceFault` when the source cannot answer.
        """
        try:
            items = await self._within_deadline(lambda: self._client.changes(since))
        except TimeoutError:
            raise SourceFault(Outcome.TIMED_OUT, "no answer in time") from None
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

    async def _within_deadline(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` under the source's overall deadline (shared with the client's retry)."""
        async with deadline_scope(self._config.timeout_s):
            return await call()

    # --- the two rounds and the mapping ---------------------------------------------------

    async def _collect(
        self, nhs: str, fetched_at: datetime
    ) -> tuple[tuple[Resource, ...], tuple[DataIssue, ...]]:
        ctx = mapping.Context(self.name, self.organisation, self.domain)
        nhs = nhs_number.normalise(nhs)
        if not (nhs.isascii() and nhs_number.is_valid(nhs)):
            return (), ()
        people = self._matching(await self._client.people(nhs), nhs, ctx)
        if not people:
            return (), tuple(ctx.issues)
        if len(people) > 1:
            ctx.issue(
                "duplicate-person",
                f"{len(people)} person records share one NHS number",
                about="Patient",
            )
        found = await asyncio.gather(*(self._care(str(p["personId"])) for p in people))
        ctx.organisation_name = mapping.organisation_name(
            (i for _, involvements in found for i in involvements), self.organisation
        )

        heads: list[Resource] = []
        body: list[Resource] = []
        provenance: list[Resource] = []
        today = fetched_at.date()
        for person, (plans, involvements) in zip(people, found, strict=True):
            made = self._person(person, plans, involvements, nhs, ctx, today)
            if made is None:
                continue
            patient, rest = made
            prov = mapping.make_provenance(
                str(person["personId"]), [patient, *rest], fetched_at, ctx
            )
            if person.get("restricted") is True:
                mapping.add_label(prov)
            if _valid(prov, ctx):
                provenance.append(prov)
            heads.append(patient)
            body.extend(rest)
        if not heads:
            raise SourceFault(Outcome.BAD_DATA, "no person record could be normalised")
        return (*heads, *body, *provenance), tuple(ctx.issues)

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
        if not _valid(patient, ctx):
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
                if _valid(goal, ctx):
                    kept_goals.append(goal)
            _unlink_goals(care_plan, {g["id"] for g in kept_goals})
            label(care_plan)
            if _valid(care_plan, ctx):
                rest.append(care_plan)
                rest.extend(kept_goals)
        team = mapping.map_involvements(involvements, pid, nhs, ctx, today)
        if team is not None:
            label(team)
            if _valid(team, ctx):
                rest.append(team)
        return patient, rest

    # --- results ------------------------------------------------------------------------


async def _or_empty(call: Awaitable[list[Resource]]) -> list[Resource]:
    """A list the source no longer has (404: the person went between calls) is empty."""
    try:
        return await call
    except SourceFault as fault:
        if fault.outcome is Outcome.NOT_FOUND:
            return []
        raise


def _labelled(resource: Mapping[str, Any]) -> bool:
    """Whether ``resource`` carries a restricting confidentiality label (R or V)."""
    meta = resource.get("meta")
    labels = meta.get("security") if isinstance(meta, Mapping) else None
    return any(
        isinstance(label, Mapping)
        and label.get("system") == ukcore.CONFIDENTIALITY_SYSTEM
        and label.get("code") in ("R", "V")
        for label in labels or ()
    )


def _no_label(resource: Resource) -> None:
    return None


def _unlink_goals(care_plan: Resource, kept: set[str]) -> None:
    goals = [g for g in care_plan.get("goal", ()) if g["reference"].removeprefix("Goal/") in kept]
    if goals:
        care_plan["goal"] = goals
    else:
        care_plan.pop("goal", None)


def _valid(resource: Mapping[str, Any], ctx: mapping.Context) -> bool:
    """Validate where born; a failure is reported by resource type only and dropped."""
    try:
        validate_resource(resource)
    except UKCoreValidationError:
        kind = resource.get("resourceType")
        ctx.issue(
            "invalid-resource",
            f"a {kind} failed UK Core validation and was left out",
            about=kind if isinstance(kind, str) else None,
            labelled=_labelled(resource),
        )
        return False
    return True

"""The community source behind :class:`adapters.base.SourceAdapter`.

``fetch`` asks the source in three rounds, each as concurrent as the data allows:

1. ``Patient?identifier=nhs-number|{nhs}`` (every match: duplicates are reported, not hidden);
2. per patient, ``CarePlan?subject=`` and ``CareTeam?subject=`` together (``asyncio.gather``),
   and with them the patients' own ``Organization`` / ``Practitioner`` references;
3. every other referenced ``Organization`` / ``Practitioner`` not contained or included, once.

Then the pure mapping (:mod:`adapters.community.mapping`) builds the UK Core resources.

**A resource that fails UK Core validation is left out, not fatal** (the one rule for every
adapter, :mod:`adapters.context`): a CarePlan or CareTeam that fails is dropped; a Patient
that fails takes everything made for that patient with it. If no patient is left the answer
is ``BAD_DATA``. A resource the STU3 model itself rejects is the source breaking its own
interface, and fails the whole source (``BAD_DATA``).

The whole fetch runs under the source's deadline (the HTTP base's template): source faults,
bad content and the deadline become a failed :class:`SourceResult`, never an exception.

>>> adapter = CommunityAdapter(SourceConfig("community", "community-fhir-stu3",
...     "http://127.0.0.1:8082/fhir", "RWX", bearer_token="..."))  # doctest: +SKIP
>>> result = await adapter.fetch("9991000003")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from datetime import datetime

import httpx

from adapters import ukcore
from adapters.base import DataIssue, Outcome, Resource, SourceConfig
from adapters.community._common import external_references, parse_stu3
from adapters.community.client import PAGE_COUNT, CommunityClient
from adapters.community.mapping import (
    Context,
    ConversionError,
    make_provenance,
    map_care_plan,
    map_care_team,
    map_patient,
    patient_nhs_number,
)
from adapters.context import keep_valid
from adapters.http_source import Care, HTTPSourceAdapter
from adapters.resilience import CircuitBreaker, SourceFault

_SOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class CommunityAdapter(HTTPSourceAdapter[CommunityClient, Context]):
    """One community FHIR STU3 source. Make one per source and share it (it holds the client).

    ``fetch`` and ``nhs_number_for`` are the HTTP base's template
    (:class:`~adapters.http_source.HTTPSourceAdapter`); the source has no change feed, so
    its cached records last their TTL.
    """

    person_id = _SOURCE_ID
    record_noun = "patient"

    def _connect(
        self, http: httpx.AsyncClient, config: SourceConfig, breaker: CircuitBreaker
    ) -> CommunityClient:
        return CommunityClient(http, config.base_url, breaker, config.bearer_token)

    async def _read_nhs_number(self, person_id: str) -> str | None:
        raw = await self._client.read("Patient", person_id)
        try:
            return patient_nhs_number(parse_stu3(raw, "Patient"))
        except ConversionError:  # not a Patient we could read: no number to trust
            return None

    # --- the three rounds ---------------------------------------------------------------

    async def _collect(
        self, nhs: str, fetched_at: datetime
    ) -> tuple[tuple[Resource, ...], tuple[DataIssue, ...]]:
        try:
            return await super()._collect(nhs, fetched_at)
        except ConversionError as exc:  # the source broke STU3 itself: its answer is bad data
            raise SourceFault(Outcome.BAD_DATA, str(exc)) from None

    def _context(self) -> Context:
        return Context(self.name, self.organisation, self.domain)

    async def _people(self, nhs: str, ctx: Context) -> list[Resource]:
        query = {"identifier": f"{ukcore.NHS_NUMBER_SYSTEM}|{nhs}"}
        patients: list[Resource] = []
        for resource, mode in await self._client.search("Patient", query):
            if mode != "match" or resource.get("resourceType") != "Patient":
                continue
            raw = parse_stu3(resource, "Patient")
            if patient_nhs_number(raw) != nhs:
                ctx.issue(
                    "nhs-number-mismatch",
                    "a matched patient holds another NHS number",
                    about="Patient",
                )
                continue
            if not any(raw.get("id") == p.get("id") for p in patients):
                patients.append(raw)
        return patients

    async def _care_of(self, people: list[Resource], ctx: Context) -> list[Care]:
        resolved: dict[str, Resource] = {}
        # The patients' own references (their GP practice) are known now: resolved while
        # their plans and teams are searched, not one round trip after them.
        early: set[str] = set().union(*(external_references(p) for p in people))
        found, _ = await asyncio.gather(
            asyncio.gather(*(self._care(p["id"], resolved) for p in people)),
            self._resolve(early, resolved),
        )
        refs: set[str] = set()
        for raw in (r for plans, teams in found for r in (*plans, *teams)):
            refs |= external_references(raw)
        await self._resolve(refs - resolved.keys() - early, resolved)
        ctx.resolved = resolved
        return list(found)

    def _normalise(
        self, person: Resource, care: Care, nhs: str, ctx: Context, fetched_at: datetime
    ) -> tuple[Resource, list[Resource], Resource] | None:
        plans, teams = care
        pid = person["id"]
        patient = map_patient(person, ctx)
        made = [map_care_plan(p, pid, nhs, ctx) for p in plans]
        made += [map_care_team(t, pid, nhs, ctx) for t in teams]
        if not keep_valid(patient, ctx):
            return None  # the person's plans and teams would point at no Patient
        kept = [resource for resource in made if keep_valid(resource, ctx)]
        return patient, kept, make_provenance(pid, [patient, *kept], fetched_at, ctx)

    async def _care(
        self, patient_id: str, resolved: dict[str, Resource]
    ) -> tuple[list[Resource], list[Resource]]:
        subject = {"subject": f"Patient/{patient_id}", "_count": PAGE_COUNT}
        plan_entries, team_entries = await asyncio.gather(
            self._client.search("CarePlan", subject), self._client.search("CareTeam", subject)
        )
        plans: dict[str, Resource] = {}
        teams: dict[str, Resource] = {}
        for resource, mode in (*plan_entries, *team_entries):
            kind = resource.get("resourceType")
            key = f"{kind}/{resource.get('id')}"
            if kind == "CarePlan" and mode == "match":
                plans.setdefault(key, resource)
            elif kind == "CareTeam":
                teams.setdefault(key, resource)
            elif kind in ("Organization", "Practitioner"):
                resolved[key] = parse_stu3(resource, str(kind))
        return list(plans.values()), list(teams.values())

    async def _resolve(self, refs: Iterable[str], resolved: dict[str, Resource]) -> None:
        """GET each referenced Organization/Practitioner once; a missing one is skipped."""

        async def one(ref: str) -> None:
            kind, _, rid = ref.partition("/")
            if not _SOURCE_ID.fullmatch(rid):
                return
            try:
                raw = await self._client.read(kind, rid)
            except SourceFault as fault:
                if fault.outcome is Outcome.NOT_FOUND:
                    return
                raise
            resolved[ref] = parse_stu3(raw, kind)

        await asyncio.gather(*(one(ref) for ref in sorted(refs)))

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
from adapters.community._common import Prepared, external_references, parse_stu3
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
from adapters.context import keep_valid, passes, report_invalid
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
        matched = [
            resource
            for resource, mode in await self._client.search("Patient", query)
            if mode == "match" and resource.get("resourceType") == "Patient"
        ]
        # The patients' plans, teams and own references are asked for before their STU3
        # check (the costliest step of this round), which then runs while they are out.
        ahead = _likely_people(matched, nhs)
        try:
            if ahead:
                ctx.care_ahead = (ahead, asyncio.ensure_future(self._second_round(ahead)))
                await _requests_sent()
            patients = self._checked_people(matched, nhs, ctx)
        except BaseException:
            _drop_ahead(ctx)
            raise
        if [p["id"] for p in patients] != [p["id"] for p in ahead]:
            _drop_ahead(ctx)  # not the patients asked about ahead: asked again, as before
        return patients

    @staticmethod
    def _checked_people(matched: list[Resource], nhs: str, ctx: Context) -> list[Resource]:
        """The matched patients checked against STU3 that really hold ``nhs``, each once."""
        patients: list[Resource] = []
        for resource in matched:
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

    async def _second_round(
        self, people: list[Resource]
    ) -> tuple[list[Care], dict[str, Resource], set[str]]:
        """Each patient's plans and teams, and the references the patients themselves make
        (their GP practice), resolved while the plans and teams are searched, not one round
        trip after them: (care per patient, what was resolved, the patients' references)."""
        resolved: dict[str, Resource] = {}
        early: set[str] = set().union(*(external_references(p) for p in people))
        found, _ = await asyncio.gather(
            asyncio.gather(*(self._care(p["id"], resolved) for p in people)),
            self._resolve(early, resolved),
        )
        return list(found), resolved, early

    async def _care_of(self, people: list[Resource], ctx: Context) -> list[Care]:
        ahead, ctx.care_ahead = ctx.care_ahead, None
        if ahead is not None:
            found, resolved, early = await ahead[1]
        else:
            found, resolved, early = await self._second_round(people)
        refs: set[str] = set()
        for raw in (r for plans, teams in found for r in (*plans, *teams)):
            refs |= external_references(raw)
        ctx.resolved = resolved
        later = refs - resolved.keys() - early
        if not later:
            return list(found)
        # The last round depends on the answers before it, but the patients' mapping and the
        # STU3 check of their plans and teams do not depend on it: done while it is out,
        # after its requests have reached the source, not after its answers.
        last = asyncio.ensure_future(self._resolve(later, resolved))
        try:
            await _requests_sent()
            care = [_checked_care(plans, teams) for plans, teams in found]
            for person in people:
                self._prepare(person, ctx)
            await last
        finally:
            if not last.done():
                last.cancel()
        return care

    def _prepare(self, person: Resource, ctx: Context) -> None:
        """The person's Patient mapped and validated ahead (:class:`Prepared` on ``ctx``): it
        needs only the patient's own references, read in the round before the last. Its
        findings are kept aside and replayed by :meth:`_normalise` in the order they would
        have been made; a patient whose mapping raises is left to :meth:`_normalise`."""
        aside = Context(ctx.source, ctx.organisation, ctx.domain, resolved=ctx.resolved)
        try:
            patient = map_patient(person, aside)
        except ConversionError:
            return
        ctx.prepared[person["id"]] = Prepared(patient, tuple(aside.issues), passes(patient))

    def _normalise(
        self, person: Resource, care: Care, nhs: str, ctx: Context, fetched_at: datetime
    ) -> tuple[Resource, list[Resource], Resource] | None:
        plans, teams = care
        pid = person["id"]
        ready = ctx.prepared.pop(pid, None)
        if ready is None:
            patient = map_patient(person, ctx)
        else:
            patient = ready.patient
            for found in ready.issues:
                ctx.add(found)
        made = [map_care_plan(p, pid, nhs, ctx) for p in plans]
        made += [map_care_team(t, pid, nhs, ctx) for t in teams]
        if ready is None:
            valid = keep_valid(patient, ctx)
        else:
            valid = ready.valid
            if not valid:
                report_invalid(patient, ctx)
        if not valid:
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


#: Loop turns a request just started takes to reach its socket (httpx builds it, the bulkhead
#: hands it to its own task, httpcore takes a kept-alive connection and writes): none of them
#: waits on the network, so yielding this many times lets them all go out first.
_TURNS_TO_SEND = 8


async def _requests_sent() -> None:
    """Yield to the event loop until requests started just before are on their sockets."""
    for _ in range(_TURNS_TO_SEND):
        await asyncio.sleep(0)


def _checked_care(plans: list[Resource], teams: list[Resource]) -> Care:
    """The plans and teams checked against STU3 now (:func:`parse_stu3`, whose result the
    mapping takes as it is). One that fails is kept as sent: the mapping raises for it
    where it would have, after every request of the fetch has answered."""

    def checked(raw: Resource, kind: str) -> Resource:
        if kind == "CarePlan" and not raw.get("intent"):
            return raw  # the mapping defaults it first (map_care_plan)
        try:
            return parse_stu3(raw, kind)
        except ConversionError:
            return raw

    return [checked(p, "CarePlan") for p in plans], [checked(t, "CareTeam") for t in teams]


def _likely_people(matched: list[Resource], nhs: str) -> list[Resource]:
    """The matched patients that hold ``nhs`` as sent, each once, before their STU3 check:
    what :meth:`CommunityAdapter._checked_people` keeps when every one of them passes it.
    Nothing when one cannot be read without the check (it then comes first, as before)."""
    likely: list[Resource] = []
    for raw in matched:
        try:
            number = patient_nhs_number(raw)
        except (AttributeError, TypeError):
            return []
        pid = raw.get("id")
        if not isinstance(pid, str) or not _SOURCE_ID.fullmatch(pid):
            return []
        if number == nhs and not any(pid == p["id"] for p in likely):
            likely.append(raw)
    return likely


def _drop_ahead(ctx: Context) -> None:
    """Cancel the round asked for ahead (:attr:`Context.care_ahead`), if any."""
    if ctx.care_ahead is not None:
        task = ctx.care_ahead[1]
        ctx.care_ahead = None
        if task.done() and not task.cancelled():
            task.exception()  # answered already: its fault, if any, is not this fetch's
        task.cancel()

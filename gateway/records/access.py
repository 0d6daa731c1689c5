"""The per-request record accessor: fetch → decide → merge. Routes cannot skip a step.

Every route that touches patient data goes through :class:`RecordAccess`, which

1. asks the record service for every source's contribution (through the cache),
2. answers ``404`` when every source said it does not know the person and ``503`` when no
   source found the person and at least one could not be asked (a ``404`` then could be
   wrong, and a clinician would act on it),
3. applies the access decision **per source, before merging** (``specs/behaviour.md``:
   a withheld source adds nothing, not even demographics),
4. answers ``503`` naming the sources that did not answer when the decision is a denial for
   want of a legitimate relationship (:func:`outage_behind`): the relationship is looked for
   only in what answered, so the missing source may be the very one that holds it — its own
   staff were told ``403 no-legitimate-relationship`` during its outage, audited as a refusal
   and counted by the privacy monitoring. It is audited as a failure (outcome ``8``, effect
   ``indeterminate``, reason ``source-unavailable``), never as a denial, and
5. merges what is left.

The decision is a pluggable :class:`Decider`. Until the consent policy is wired in, the
gateway uses :func:`permit_all`: a principal whose scopes allow the interaction may read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.base import Outcome, SourceAdapter, SourceResult
from gateway.audit import note as audit_trail
from gateway.errors import Forbidden, NotFound, ServiceUnavailable
from gateway.records.merge import MergedRecord, merge
from gateway.records.service import RecordService, SourceHealth
from vocabulary import Effect

NO_RELATIONSHIP = "no-legitimate-relationship"
NOT_OWN_RECORD = "not-own-record"
#: The audit reason of a decision that could not be made because a source did not answer.
SOURCE_UNAVAILABLE = "source-unavailable"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, for what purpose, under which request id.

    For the person themself (``client_kind`` ``patient``) ``org`` and ``role`` are ``None``
    and ``patient`` is their own NHS number, the only record they may reach.
    """

    sub: str
    role: str | None
    org: str | None
    client_kind: str
    purpose: str
    request_id: str
    break_glass_reason: str | None = None
    name: str | None = None
    patient: str | None = None
    proofing_level: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the decision means for this answer: the visible part of each source, and why.

    ``withheld`` holds ``"{resourceType}/{id}"`` keys of removed resources (for a direct
    read's 403 and the audit trail; never shown to the caller). ``detail`` is the decider's
    own record of the decision (the consent ``Decision``), for the audit trail.
    ``announce_withheld`` false (the person themself): nothing in the answer may say that
    anything was withheld — no ``suppressed`` outcome, a direct read of it is a ``404``.
    """

    effect: Effect
    visible: tuple[SourceResult, ...]
    reasons: tuple[str, ...] = ()
    break_glass: bool = False
    withheld: frozenset[str] = frozenset()
    detail: Any = None
    announce_withheld: bool = True


class Decider(Protocol):
    async def __call__(
        self,
        ctx: RequestContext,
        nhs_number: str,
        results: Sequence[SourceResult],
        *,
        dry_run: bool = False,
    ) -> Verdict:
        """``dry_run``: decide but record nothing (no break-glass grant): ``$access-check``."""
        ...


async def permit_all(
    ctx: RequestContext,
    nhs_number: str,
    results: Sequence[SourceResult],
    *,
    dry_run: bool = False,
) -> Verdict:
    """Scope-only access: everything a source returned is visible."""
    visible = tuple(r for r in results if r.outcome is Outcome.FOUND)
    return Verdict(effect=Effect.PERMIT, visible=visible)


@dataclass(slots=True)
class AccessResult:
    nhs_number: str
    record: MergedRecord
    verdict: Verdict
    failed: list[SourceResult] = field(default_factory=list)


class RecordAccess:
    def __init__(self, records: RecordService, decider: Decider = permit_all) -> None:
        self.records = records
        self.decider = decider

    # What routes may ask about the sources without reading a person's record: which source
    # an id names, and how the sources have answered lately (readiness, metrics).

    def adapter(self, source: str) -> SourceAdapter | None:
        """The configured source called ``source`` (the prefix of a resource id), if any."""
        return self.records.adapter(source)

    def sources(self) -> list[SourceAdapter]:
        """Every configured source, in configuration order."""
        return list(self.records.adapters)

    def source_health(self, source: str) -> SourceHealth | None:
        """How ``source``'s recent fetches ended; ``None`` for a source never configured."""
        return self.records.health.get(source)

    def observe_fetches(self, observer: Callable[[str, SourceResult, float], None]) -> None:
        """Call ``observer(source, result, seconds)`` after every source fetch (the metrics)."""
        self.records.observer = observer

    async def source_results(self, nhs_number: str) -> list[SourceResult]:
        """Every source's undecided answer for the person (through the cache), for the paths
        that decide themselves on the very same answers — the Consent API's and the joint
        care plans' authorisation, the privacy rules' facts — and release nothing of them."""
        return await self.records.fetch(nhs_number)

    async def decide_only(self, ctx: RequestContext, nhs_number: str) -> Verdict:
        """The decision for this caller and person, without releasing any data
        (``$access-check``). Raises 404/503 like :meth:`read`; a deny is returned, not raised."""
        own_record_only(ctx, nhs_number)
        results = await self.records.fetch(nhs_number)
        self._check_found(results)
        verdict = await self.decider(ctx, nhs_number, results, dry_run=True)
        self._refuse_outage(verdict, results)
        self._note(ctx, verdict)
        return verdict

    @staticmethod
    def _refuse_outage(verdict: Verdict, results: Sequence[SourceResult]) -> None:
        outage = outage_behind(verdict, results)
        if outage is not None:
            audit_trail.note_decision("indeterminate", (SOURCE_UNAVAILABLE,), False, None)
            raise outage

    @staticmethod
    def _note(ctx: RequestContext, verdict: Verdict) -> None:
        audit_trail.note_decision(
            verdict.effect, verdict.reasons, verdict.break_glass, ctx.break_glass_reason
        )

    @staticmethod
    def _check_found(results: Sequence[SourceResult]) -> None:
        if not RecordAccess._known(results):
            raise NotFound("No source system holds a record for this NHS number.")

    @staticmethod
    def _known(results: Sequence[SourceResult]) -> bool:
        """True when a source holds the person; False when every source answered that none
        does; 503 when none holds them and some could not be asked (a 404 could be wrong)."""
        failed = [r for r in results if not r.ok]
        if any(r.outcome is Outcome.FOUND for r in results):
            return True
        if failed:
            names = ", ".join(r.source for r in failed)
            raise ServiceUnavailable(
                f"The person's record cannot be assembled: no source answered ({names})."
                if len(failed) == len(results)
                else f"No answering source knows this NHS number, and these sources "
                f"could not be asked: {names}. Try again shortly."
            )
        return False

    async def read(self, ctx: RequestContext, nhs_number: str) -> AccessResult:
        """What this caller may see of the person's record: 404 when no source knows them,
        503 when that cannot be told, 403 when the decision denies it."""
        found = await self.find(ctx, nhs_number)
        if found is None:
            raise NotFound("No source system holds a record for this NHS number.")
        return found

    async def find(self, ctx: RequestContext, nhs_number: str) -> AccessResult | None:
        """As :meth:`read`, but ``None`` where it would be a 404: a search for a person no
        source knows is an empty Bundle, not an error."""
        own_record_only(ctx, nhs_number)
        results = await self.records.fetch(nhs_number)
        if not self._known(results):
            return None
        failed = [r for r in results if not r.ok]
        verdict = await self.decider(ctx, nhs_number, results)
        self._refuse_outage(verdict, results)
        self._note(ctx, verdict)
        if verdict.effect == "deny":
            raise Forbidden(
                "Access to this person's record is denied: " + ", ".join(verdict.reasons),
                reasons=verdict.reasons,
            )
        return AccessResult(
            nhs_number=nhs_number,
            record=merge(nhs_number, verdict.visible),
            verdict=verdict,
            failed=failed,
        )


def own_record_only(ctx: RequestContext, nhs_number: str) -> None:
    """``403 not-own-record`` (audited) when the person themself asks for anyone else.

    Checked before any source is asked, whatever the decider: whether a record exists under
    another NHS number is not the person's to learn (a ``404`` would tell them). The consent
    policy refuses it again (:func:`consent.own_record_denial`).
    """
    if ctx.client_kind == "patient" and ctx.patient != nhs_number:
        audit_trail.note_decision("deny", (NOT_OWN_RECORD,), False, None)
        raise Forbidden(
            "Your access token reaches only your own record.", reasons=(NOT_OWN_RECORD,)
        )


def outage_behind(verdict: Verdict, results: Sequence[SourceResult]) -> ServiceUnavailable | None:
    """The ``503`` to answer instead of ``verdict``, when its denial may be only an outage.

    A denial for no legitimate relationship, while some source did not answer, is no
    decision: the relationship could be in what that source holds (its own custodianship, a
    care team, a care plan's author). Any other denial stands — it does not depend on what a
    source holds (role, purpose, the person's objection, the refused recipient).
    """
    if verdict.effect != "deny" or NO_RELATIONSHIP not in verdict.reasons:
        return None
    missing = [r.source for r in results if not r.ok]
    if not missing:
        return None
    return ServiceUnavailable(
        "Whether you may see this record cannot be decided now: no legitimate relationship "
        f"was found in the sources that answered, and these could not be asked: "
        f"{', '.join(missing)}. Try again shortly.",
        reasons=(SOURCE_UNAVAILABLE,),
    )

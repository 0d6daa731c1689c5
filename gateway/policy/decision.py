"""The consent policy as the gateway's decider: stored directives + Caldicott policy → Verdict.

Bridges :mod:`consent` (pure) to the request path. Per request it loads the person's consent
directives and any live break-glass grant from the stores (never cached, so a change
applies to the very next request), calls :func:`consent.decide`, records a new break-glass
grant, and turns the :class:`consent.Decision` into the :class:`~gateway.records.access.Verdict`
that the routes and the audit trail use.

:func:`authorise_directives` does the same for the Consent API: the record is fetched only
when the relationship must be looked for, :func:`consent.decide_directive_access` decides,
and a refusal is a ``403`` with its reasons — or a ``503`` when the relationship could only
have come from a source that did not answer (an outage is never told as a refusal).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import structlog

from adapters.base import DataIssue, Outcome, Resource, SourceResult
from consent import (
    ClientKind,
    Decision,
    Directive,
    DirectiveInteraction,
    Effect,
    Policy,
    Reason,
    Requester,
    SourceContribution,
    decide,
    decide_directive_access,
    in_force,
    needs_relationship,
    needs_the_time,
    parse_consents,
)
from gateway.audit import note as audit_trail
from gateway.errors import Forbidden, ServiceUnavailable
from gateway.joint import custody
from gateway.records.access import SOURCE_UNAVAILABLE, RequestContext, Verdict

log = structlog.get_logger(__name__)


class DirectiveSource(Protocol):
    async def active_for(self, nhs_number: str) -> Sequence[Mapping[str, Any]]:
        """The person's Consent resources (FHIR dicts) — all statuses; the policy filters."""
        ...


class BreakGlassLedger(Protocol):
    async def last_grant(self, sub: str, nhs_number: str) -> datetime | None: ...

    async def record(self, sub: str, nhs_number: str, at: datetime, reason: str) -> None: ...


def contributions(results: Sequence[SourceResult]) -> tuple[SourceContribution, ...]:
    return tuple(
        SourceContribution(
            source=r.source, custodian=r.organisation, domain=r.domain, resources=r.resources
        )
        for r in results
        if r.outcome is Outcome.FOUND
    )


def requester(ctx: RequestContext) -> Requester:
    return Requester(
        sub=ctx.sub,
        role=ctx.role,
        org=ctx.org,
        client_kind=ClientKind(ctx.client_kind),
        break_glass_reason=ctx.break_glass_reason,
        patient=ctx.patient,
        proofing_level=ctx.proofing_level,
    )


def visible_issues(
    returned: SourceResult, shown: Sequence[Mapping[str, Any]]
) -> tuple[DataIssue, ...]:
    """The findings of ``returned`` that may go out beside ``shown``, its visible resources.

    ``specs/behaviour.md``: what was withheld is never shown nor counted, and a finding about
    it ("a support plan status is not recognised") would betray it. So once anything of the
    source was withheld, only findings about a resource type of which nothing was withheld
    are kept; a finding whose type is not known (``about`` is None) is dropped. Goals belong
    to their CarePlan, so a withheld plan takes the Goal findings with it. A finding about a
    labelled resource the adapter itself left out (``labelled``) never goes out: no decision
    saw that resource, so nobody can say the caller may know of it (it is logged instead).
    """
    issues = tuple(i for i in returned.issues if not i.labelled)
    if len(shown) == len(returned.resources):
        return issues  # ``shown`` is a subset of what was returned: nothing was withheld
    withheld = Counter(r.get("resourceType") for r in returned.resources) - Counter(
        r.get("resourceType") for r in shown
    )
    if not withheld:
        return issues
    hidden = set(withheld)
    if "CarePlan" in hidden:
        hidden.add("Goal")
    return tuple(i for i in issues if i.about is not None and i.about not in hidden)


def warn_labelled(results: Sequence[SourceResult]) -> None:
    """Log each labelled finding the adapters left out (for operators: codes and types only,
    never identifiers); on every request that decides on these answers."""
    for result in results:
        for issue in result.issues:
            if issue.labelled:
                log.warning(
                    "labelled_data_issue_withheld",
                    source=result.source,
                    code=issue.code,
                    about=issue.about,
                )


def to_verdict(
    decision: Decision,
    results: Sequence[SourceResult],
    parts: tuple[SourceContribution, ...] | None = None,
) -> Verdict:
    """What ``decision`` lets out of ``results``; ``parts`` are their contributions
    (:func:`contributions`) when the caller has them already."""
    warn_labelled(results)
    parts = contributions(results) if parts is None else parts
    shown = {c.source: c for c in decision.visible(parts)}
    visible = tuple(
        _visible_part(r, shown[r.source].resources) for r in results if r.source in shown
    )
    return Verdict(
        effect=decision.effect,
        visible=visible,
        reasons=tuple(str(r) for r in decision.reasons),
        break_glass=decision.break_glass,
        withheld=frozenset(w.key for w in decision.withheld)
        | {
            f"{x.get('resourceType')}/{x.get('id')}"
            for r in results
            if r.source in decision.withheld_sources
            for x in r.resources
        },  # a withheld source's resources are withheld too: a direct read is a 403
        detail=decision,
        announce_withheld=decision.announce_withheld,
    )


def _visible_part(result: SourceResult, shown: Sequence[Mapping[str, Any]]) -> SourceResult:
    """What of ``result`` may go out: ``shown`` (its visible resources) and the findings
    :func:`visible_issues` keeps. A source shown whole, with no finding to drop, is the
    very same answer, so it is handed on as it is rather than rebuilt."""
    if (
        shown is result.resources
        and result.detail is None
        and not any(i.labelled for i in result.issues)
    ):
        return result
    return SourceResult(
        source=result.source,
        organisation=result.organisation,
        domain=result.domain,
        outcome=result.outcome,
        resources=cast(tuple[Resource, ...], shown),
        issues=visible_issues(result, shown),
        fetched_at=result.fetched_at,
    )


VERDICTS_REMEMBERED = 1024
"""Verdicts a :class:`PolicyDecider` keeps (oldest out): a caller and person each."""

DecisionInputs = Callable[[str, str], Awaitable[tuple[tuple[Directive, ...], datetime | None]]]


class PolicyDecider:
    """``inputs(nhs_number, sub)``, when given, reads the person's directives (parsed) and
    the latest grant in one query (:meth:`gateway.policy.hot_reads.HotReads.decision_inputs`);
    otherwise the two stores are asked one after the other. Either way both are read for
    every decision."""

    def __init__(
        self,
        policy: Policy,
        directives: DirectiveSource,
        ledger: BreakGlassLedger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        inputs: DecisionInputs | None = None,
    ) -> None:
        self.policy = policy
        self.directives = directives
        self.ledger = ledger
        self.clock = clock
        self.inputs = inputs
        # Verdicts by requester, person, the very same answers and directives in force
        # (__call__): the arguments held, so an ``id`` is never another object's.
        self._verdicts: dict[tuple[Any, ...], tuple[tuple[object, ...], Verdict]] = {}

    async def read_inputs(
        self, nhs_number: str, sub: str
    ) -> tuple[tuple[Directive, ...], datetime | None]:
        """The person's directives (parsed) and ``sub``'s latest grant for them, read now."""
        if self.inputs is not None:
            return await self.inputs(nhs_number, sub)
        stored = await self.directives.active_for(nhs_number)
        prior = await self.ledger.last_grant(sub, nhs_number)
        return parse_consents(stored), prior

    async def decision(
        self,
        ctx: RequestContext,
        nhs_number: str,
        results: Sequence[SourceResult],
        *,
        dry_run: bool = False,
        parts: tuple[SourceContribution, ...] | None = None,
        read: tuple[tuple[Directive, ...], datetime | None] | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """The decision on ``results`` (their contributions ``parts``, the directives and
        grant ``read`` for this request, when the caller has them already)."""
        now = now or self.clock()
        directives, prior = read or await self.read_inputs(nhs_number, ctx.sub)
        decision = decide(
            requester(ctx),
            ctx.purpose,
            contributions(results) if parts is None else parts,
            directives,
            self.policy,
            now,
            prior_break_glass=prior,
            person=nhs_number,
        )
        if decision.break_glass and ctx.break_glass_reason and not dry_run:
            await self.ledger.record(ctx.sub, nhs_number, now, ctx.break_glass_reason)
        return decision

    async def __call__(
        self,
        ctx: RequestContext,
        nhs_number: str,
        results: Sequence[SourceResult],
        *,
        dry_run: bool = False,
    ) -> Verdict:
        read = await self.read_inputs(nhs_number, ctx.sub)  # every request: never remembered
        now = self.clock()
        key: tuple[Any, ...] | None = None
        held: tuple[object, ...] = ()
        if not needs_the_time(ctx.purpose, ctx.break_glass_reason, read[1]):
            # Without break-glass the verdict depends on the time only through the directives
            # in force (consent.decide): remembered by those and the very same answers.
            held = (self.policy, *results, *in_force(read[0], ctx.purpose, now))
            key = (ctx.sub, ctx.role, ctx.org, ctx.client_kind, ctx.purpose, ctx.patient,
                   ctx.proofing_level, ctx.break_glass_reason, nhs_number, len(results),
                   *map(id, held))  # fmt: skip
            seen = self._verdicts.get(key)
            if seen is not None and all(a is b for a, b in zip(seen[0], held, strict=True)):
                warn_labelled(results)
                return seen[1]
        # Joint plans are decided per author organisation, their custodian (custody.py).
        by_custodian = custody.split(results)
        parts = contributions(by_custodian)
        decision = await self.decision(
            ctx, nhs_number, by_custodian, dry_run=dry_run, parts=parts, read=read, now=now
        )
        verdict = custody.join(to_verdict(decision, by_custodian, parts))
        if key is not None:
            self._verdicts[key] = (held, verdict)
            while len(self._verdicts) > VERDICTS_REMEMBERED:
                del self._verdicts[next(iter(self._verdicts))]
        return verdict


Fetch = Callable[[str], Awaitable[Sequence[SourceResult]]]


async def authorise_directives(
    ctx: RequestContext,
    policy: Policy,
    interaction: DirectiveInteraction,
    nhs_number: str,
    targets: Mapping[str, Sequence[Directive]],
    fetch: Fetch,
    results: Sequence[SourceResult] | None = None,
) -> Decision:
    """The decision on a Consent API request about ``nhs_number``'s directives ``targets``;
    raises ``403`` (reasons in the OperationOutcome) or ``503`` (naming the sources).

    ``results`` are the sources' answers when the caller has them already (a create checks
    that the person is known); otherwise they are fetched, and only if the relationship must
    be looked for. The decision is noted for the audit event; a ``503`` is an outage, not a
    refusal, and is noted as the read path notes one (``indeterminate``, ``source-unavailable``).
    """
    who = requester(ctx)
    if results is None and needs_relationship(who, ctx.purpose, policy, nhs_number):
        results = await fetch(nhs_number)
    decision = decide_directive_access(
        who,
        ctx.purpose,
        interaction,
        contributions(results or ()),
        targets,
        policy,
        person=nhs_number,
    )
    enforce(decision, results or (), "Access to this person's consent directives is denied")
    return decision


def enforce(decision: Decision, results: Sequence[SourceResult], denied: str) -> None:
    """Note a write or Consent API decision for the audit event, and raise what it refuses.

    A refusal for want of a relationship while sources did not answer is an outage, not a
    refusal: ``503`` naming the sources, noted as the read path notes one (``indeterminate``,
    ``source-unavailable``). Any other refusal is ``403``, ``denied`` followed by its reasons.
    """
    if decision.effect is Effect.DENY:
        failed = [r.source for r in results if not r.ok]
        if decision.reasons == (Reason.NO_LEGITIMATE_RELATIONSHIP,) and failed:
            audit_trail.note_decision("indeterminate", (SOURCE_UNAVAILABLE,), False, None)
            raise ServiceUnavailable(
                "Cannot tell whether your organisation has a relationship with this person: "
                f"these sources did not answer: {', '.join(failed)}. Try again shortly."
            )
    audit_trail.note_decision(decision.effect.value, decision.reason_codes, False, None)
    if decision.effect is Effect.DENY:
        raise Forbidden(
            f"{denied}: " + ", ".join(decision.reason_codes), reasons=decision.reason_codes
        )

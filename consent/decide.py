"""The access decision: who may see which parts of a person's record, and why.

Usage (the gateway, once per request, with directives read fresh from the store)::

    decision = decide(requester, purpose, contributions, directives, policy, now,
                      prior_break_glass=last_break_glass_for(requester.sub, nhs_number))
    if decision.effect is Effect.DENY:
        raise Forbidden(decision.reason_codes)          # 403, reasons in OperationOutcome
    shown = decision.visible(contributions)            # merge only these
    # permit-filtered: add an OperationOutcome "suppressed" entry with decision.reason_codes

Rules run in this order; the first that denies decides:

1. :func:`check_role_and_purpose` — role known, purpose stated and allowed, level not none;
2. :func:`legitimate_relationship` — else deny, unless :func:`break_glass`;
3. :func:`objection` — an active OPTOUT denies, unless break-glass and the policy allows;
4. :func:`recipient_refused` — the requester's organisation refused by the person: the same;
5. :func:`withheld_sources` — a source the person withheld is dropped whole;
6. :func:`minimum_necessary` — resource types beyond the role's level, and labels the role
   may not see in that resource's domain, are removed.

Nothing is visible → ``deny``; something removed → ``permit-filtered``; else ``permit``.

Choices (also in ``docs/policy.md``):

- Break-glass overrides a refused recipient exactly as the policy lets it override an
  objection (``break_glass.overrides_recipient_refusal``): refusing one organisation is a
  narrower objection, so it would be odd for emergency access to override the wider one only.
- Break-glass never overrides a withheld source nor a label. Withholding names specific
  records the person asked not to share; an emergency clinician still sees everything else.
- A withheld source is still shown to its own custodian: withholding stops *sharing* what
  an organisation holds, and that organisation already holds it.
- The legitimate relationship is looked for in every contribution, withheld or not: it is a
  fact about the person's care, not shared content.
- Directives are trusted to be this person's; the caller selects them by NHS number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from consent.directives import Directive
from consent.model import (
    Decision,
    Effect,
    Reason,
    Requester,
    SourceContribution,
    Withheld,
    resource_key,
    source_key,
)
from consent.patient import decide_for_patient, is_patient
from consent.policy import BREAK_GLASS_PURPOSE, Policy
from consent.rules import (
    BreakGlass,
    Denial,
    break_glass,
    check_role_and_purpose,
    confidentiality,
    legitimate_relationship,
    minimum_necessary,
    objection,
    recipient_refused,
    resource_domain,
    withheld_sources,
)

__all__ = [
    "BreakGlass",
    "break_glass",
    "check_role_and_purpose",
    "confidentiality",
    "decide",
    "legitimate_relationship",
    "minimum_necessary",
    "objection",
    "recipient_refused",
    "resource_domain",
    "withheld_sources",
]


# --- the decision -------------------------------------------------------------------------


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


def decide(
    requester: Requester,
    purpose: str | None,
    contributions: Sequence[SourceContribution],
    directives: Sequence[Directive],
    policy: Policy,
    now: datetime,
    prior_break_glass: datetime | None = None,
    *,
    person: str | None = None,
) -> Decision:
    """Decide what ``requester`` may see of one person's record for ``purpose`` at ``now``.

    ``contributions`` are every source's resources about the person (before merging);
    ``directives`` are the person's consent directives (any status: only those in force for
    this purpose and time apply); ``prior_break_glass`` is when this user last broke the glass
    for this person, if the caller knows. ``person`` is the NHS number asked for: the person
    themself (``client_kind`` ``patient``) is decided by :func:`consent.patient.decide_for_patient`
    and may reach only their own. Pure: same arguments, same decision.

    The time counts only through which directives are in force (:func:`in_force`) and through
    break-glass (:func:`needs_the_time`): the gateway remembers a verdict by those.
    """
    if is_patient(requester):
        return decide_for_patient(requester, purpose, contributions, policy, person=person)
    version = policy.version
    rule = policy.rule_for(requester)
    denial = check_role_and_purpose(requester, purpose, rule)
    if denial is None and not requester.org:
        denial = Denial(Reason.ROLE_NOT_PERMITTED, "the requester acts for no organisation")
    if denial is not None or rule is None or not purpose or not requester.org:
        d = denial or Denial(Reason.ROLE_NOT_PERMITTED, "no rule")
        return Decision(Effect.DENY, (d.reason,), version, f"denied: {d.rule}")
    who = "system client" if requester.client_kind == "system" else f"role {requester.role}"
    head = f"{who} ({rule.level}) at {requester.org} for {purpose}"

    bg = break_glass(requester, purpose, policy, now, prior_break_glass)
    flagged = bg is not None
    bg_reason = bg.reason if bg is not None else None
    reasons: list[Reason] = []
    applied: list[str] = []
    overridden: list[str] = []

    def deny(reason: Reason, why: str) -> Decision:
        return Decision(
            Effect.DENY,
            _unique([*reasons, reason]),
            version,
            f"denied: {why}",
            directives_applied=_unique(applied),
            break_glass=flagged,
            break_glass_reason=bg_reason,
        )

    org = requester.org
    relationship = legitimate_relationship(org, contributions)
    if bg is not None:
        reasons.append(Reason.BREAK_GLASS)
    if relationship is None:
        if bg is None:
            return deny(
                Reason.NO_LEGITIMATE_RELATIONSHIP,
                f"{requester.org} has no legitimate relationship with the person",
            )
        overridden.append("no legitimate relationship")

    active = in_force(directives, purpose, now)

    objections = objection(active)
    if objections:
        applied += [d.consent_id for d in objections]
        if bg is None or not policy.break_glass.overrides_objection:
            return deny(Reason.PATIENT_OBJECTED, "the person has objected to sharing")
        overridden.append("the person's objection")

    refusals = recipient_refused(org, active)
    if refusals:
        applied += [d.consent_id for d in refusals]
        if bg is None or not policy.break_glass.overrides_recipient_refusal:
            return deny(
                Reason.RECIPIENT_REFUSED_BY_PATIENT,
                f"the person has refused to let {requester.org} see their record",
            )
        overridden.append(f"the person's refusal of {requester.org}")

    dropped = withheld_sources(org, contributions, active)
    withheld: list[Withheld] = []
    for source, hits in dropped.items():
        applied += [d.consent_id for d in hits]
        withheld.append(Withheld(source_key(source), Reason.SOURCE_WITHHELD_BY_PATIENT, source))
    shown = [c for c in contributions if c.source not in dropped]
    for c in shown:
        withheld += minimum_necessary(rule, policy, c)
    reasons += [w.reason for w in withheld]

    removed = {(w.source, w.key) for w in withheld}
    any_visible = (
        any(
            (c.source, resource_key(r, i)) not in removed
            for c in shown
            for i, r in enumerate(c.resources)
        )
        if removed
        else any(c.resources for c in shown)  # nothing removed: no key to look up
    )
    if not any_visible:
        return Decision(
            Effect.DENY,
            _unique(reasons),
            version,
            f"denied: nothing in the record may be shown to {head}",
            withheld=tuple(withheld),
            withheld_sources=tuple(dropped),
            directives_applied=_unique(applied),
            break_glass=flagged,
            break_glass_reason=bg_reason,
        )
    basis = relationship or "no legitimate relationship"
    text = f"permitted: {head}; {basis}"
    if bg is not None:
        text += "; break-glass" + (f" overrode {', '.join(overridden)}" if overridden else "")
    if withheld:
        text += f"; withheld: {', '.join(str(r) for r in _unique(w.reason for w in withheld))}"
    return Decision(
        Effect.PERMIT_FILTERED if withheld else Effect.PERMIT,
        _unique(reasons),
        version,
        text,
        withheld=tuple(withheld),
        withheld_sources=tuple(dropped),
        directives_applied=_unique(applied),
        break_glass=flagged,
        break_glass_reason=bg_reason,
        break_glass_until=bg.until if bg is not None else None,
    )


def in_force(
    directives: Sequence[Directive], purpose: str | None, now: datetime
) -> tuple[Directive, ...]:
    """The directives in force for ``purpose`` at ``now``: through them alone, and through
    break-glass, does the time count in a decision (see :func:`decide`)."""
    return tuple(d for d in directives if purpose and d.in_force(purpose, now))


def needs_the_time(purpose: str | None, reason: str | None, prior: datetime | None) -> bool:
    """Whether a decision can turn on break-glass (purpose ``ETREAT`` with a ``reason``
    stated, or an earlier grant ``prior``): then it depends on the time itself, not only on
    :func:`in_force`."""
    return purpose == BREAK_GLASS_PURPOSE and (prior is not None or bool((reason or "").strip()))

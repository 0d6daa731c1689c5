"""Who may write a joint care plan, and who may read the joint care summary: pure decisions.

Joint care plans are the one thing partners write through the gateway, so a write is
decided here, as reads are by :func:`consent.decide.decide`::

    denial = plan_write_role_denial(requester, purpose, policy)    # before the body is read
    decision = decide_plan_write(
        requester, purpose, PlanInteraction.UPDATE, contributions, policy,
        plan_custodian="F81001", directives=parse_consents(stored), now=now,
    )

Rules, in order; the first that denies decides:

1. the role is one the policy lets ``contribute``, at a level that includes ``CarePlan``
   (``role-not-permitted``) — by default clinicians and social workers; not admin staff, not
   information governance roles, not system clients;
2. a purpose is stated (``purpose-missing``), one of :data:`WRITE_PURPOSES` that the role may
   use (``purpose-not-permitted``). Emergency care (``ETREAT``) is never a write purpose, so
   break-glass never writes: it exists to read a record in an emergency, not to change the
   plan others work from (Caldicott principle 7 is a duty to *share*);
3. a legitimate relationship with the person (:func:`consent.rules.legitimate_relationship`,
   the rule of reads), else ``no-legitimate-relationship`` (Caldicott principle 4);
4. only for changing a plan another organisation authored (its custodian): the person's
   directives in force that would keep that plan from the caller's organisation on a read —
   an objection (``patient-objected``), a refusal of the caller's organisation
   (``recipient-refused-by-patient``), or the custodian's records withheld
   (``source-withheld-by-patient``). An update replaces the plan, so whoever may not see it
   may not overwrite it. A person's objection does not stop an organisation writing its own
   part of their care: creating a plan, and changing a plan one's own organisation authored,
   are not affected by directives (Caldicott principles 6 and 8 govern sharing; a
   directive never stops a provider recording the care it gives).

:func:`decide_summary_access` decides ``$joint-care-summary``: a role the policy lets
``read_summaries``, under ``HOPERAT`` (counts only: no relationship is needed, since no
person's record is shown).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

from consent.directives import Directive, DirectiveKind
from consent.model import Decision, Effect, Reason, Requester, SourceContribution
from consent.policy import IG_PURPOSE, Policy, RoleRule
from consent.refusals import deny as _deny
from consent.refusals import no_relationship, role_with_purpose
from consent.refusals import who as _who
from consent.rules import legitimate_relationship

WRITE_PURPOSES: frozenset[str] = frozenset({"TREAT", "CAREMGT"})
"""The purposes under which a joint care plan may be written (never ``ETREAT``)."""


class PlanInteraction(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"


def _writer_rule(requester: Requester, purpose: str | None, policy: Policy) -> RoleRule | Decision:
    rule = policy.rule_for(requester)
    who = _who(requester)
    if requester.org is None:  # the person themself: their choices, not the plan, are theirs
        return _deny(Reason.ROLE_NOT_PERMITTED, f"{who} may not write joint care plans", policy)
    if rule is None or not rule.contribute:
        return _deny(Reason.ROLE_NOT_PERMITTED, f"{who} may not write joint care plans", policy)
    if not policy.level_spec(rule.level).allows("CarePlan"):
        return _deny(Reason.ROLE_NOT_PERMITTED, f"{who} may not see care plans", policy)
    if not purpose:
        return _deny(Reason.PURPOSE_MISSING, "no purpose of use was stated", policy)
    if purpose not in WRITE_PURPOSES or not rule.allows_purpose(purpose):
        why = (
            "emergency access never writes a joint care plan"
            if purpose == "ETREAT"
            else f"{who} may not write joint care plans for purpose {purpose}"
        )
        return _deny(Reason.PURPOSE_NOT_PERMITTED, why, policy)
    return rule


def plan_write_role_denial(
    requester: Requester, purpose: str | None, policy: Policy
) -> Decision | None:
    """Rules 1 and 2 alone: the refusal when this caller may not write plans at all, else
    None. Asked before the body is read, so a role with no business writing learns nothing."""
    rule = _writer_rule(requester, purpose, policy)
    return rule if isinstance(rule, Decision) else None


def plan_domain(requester: Requester, policy: Policy) -> str | None:
    """The care domain of plans this requester writes (``care_domain`` of its role)."""
    rule = policy.rule_for(requester)
    return rule.care_domain if rule is not None else None


def _keeping_plan_from(
    org: str, custodian: str, directives: Sequence[Directive], purpose: str, now: datetime
) -> tuple[Reason, tuple[Directive, ...]] | None:
    in_force = [d for d in directives if d.in_force(purpose, now)]
    objections = tuple(d for d in in_force if d.kind is DirectiveKind.OBJECTION)
    if objections:
        return Reason.PATIENT_OBJECTED, objections
    refusals = tuple(
        d for d in in_force if d.kind is DirectiveKind.REFUSE_RECIPIENT and d.org == org
    )
    if refusals:
        return Reason.RECIPIENT_REFUSED_BY_PATIENT, refusals
    withheld = tuple(
        d for d in in_force if d.kind is DirectiveKind.WITHHOLD_SOURCE and d.org == custodian
    )
    if withheld:
        return Reason.SOURCE_WITHHELD_BY_PATIENT, withheld
    return None


def decide_plan_write(
    requester: Requester,
    purpose: str | None,
    interaction: PlanInteraction,
    contributions: Sequence[SourceContribution],
    policy: Policy,
    *,
    now: datetime,
    plan_custodian: str | None = None,
    directives: Sequence[Directive] = (),
) -> Decision:
    """Decide whether ``requester`` may create or change a joint care plan of one person.

    ``contributions`` are the sources' records of the person (for the relationship);
    ``plan_custodian`` is the ODS code of the organisation that authored the plan being
    changed (``None`` for a create); ``directives`` are the person's directives (any status:
    only those in force apply). Pure: same arguments, same decision.
    """
    rule = _writer_rule(requester, purpose, policy)
    if isinstance(rule, Decision):
        return rule
    assert purpose is not None  # _writer_rule refuses a missing purpose
    org = requester.org
    assert org is not None  # _writer_rule refuses a caller with no organisation
    who = f"{_who(requester)} at {org} for {purpose}"
    relationship = legitimate_relationship(org, contributions)
    if relationship is None:
        return no_relationship(org, policy)
    basis = relationship
    if interaction is PlanInteraction.UPDATE and plan_custodian not in (None, org):
        kept = _keeping_plan_from(org, str(plan_custodian), directives, purpose, now)
        if kept is not None:
            reason, hits = kept
            return _deny(
                reason,
                f"the person's choices keep {plan_custodian}'s plan from {org}, "
                "which may therefore not change it",
                policy,
                [d.consent_id for d in hits],
            )
    elif interaction is PlanInteraction.UPDATE:
        basis += f"; {org} authored the plan"
    text = f"permitted: {who} to {interaction} a joint plan; {basis}"
    return Decision(Effect.PERMIT, (), policy.version, text)


def decide_summary_access(requester: Requester, purpose: str | None, policy: Policy) -> Decision:
    """Whether ``requester`` may read the counts-only joint care summary."""
    rule = role_with_purpose(
        requester, purpose, policy, lambda r: r.read_summaries, "read joint care summaries"
    )
    if isinstance(rule, Decision):
        return rule
    who = _who(requester)
    if purpose != IG_PURPOSE or not rule.allows_purpose(purpose):
        return _deny(
            Reason.PURPOSE_NOT_PERMITTED,
            f"joint care summaries are read for {IG_PURPOSE} only",
            policy,
        )
    return Decision(
        Effect.PERMIT,
        (),
        policy.version,
        f"permitted: {who} at {requester.org} to read the joint care summary (counts only)",
    )

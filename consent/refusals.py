"""How the write and directive decisions word a caller and a refusal.

:mod:`consent.directive_access` and :mod:`consent.plan_write` refuse in the same words, so a
log or an audit ``outcomeDesc`` reads alike whichever refused: ``denied: <why>``, the caller
named as ``role <role>`` (or ``system clients``), the directives applied listed once each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from consent.model import Decision, Effect, Reason, Requester
from consent.policy import Policy, RoleRule


def who(requester: Requester) -> str:
    """The caller as a refusal names it: its role, or system clients as a kind."""
    return "system clients" if requester.client_kind == "system" else f"role {requester.role}"


def deny(reason: Reason, why: str, policy: Policy, applied: Sequence[str] = ()) -> Decision:
    """A ``DENY`` for ``reason`` under ``policy``, ``applied`` (directive ids) deduplicated."""
    return Decision(
        Effect.DENY,
        (reason,),
        policy.version,
        f"denied: {why}",
        directives_applied=tuple(dict.fromkeys(applied)),
    )


def role_with_purpose(
    requester: Requester,
    purpose: str | None,
    policy: Policy,
    may: Callable[[RoleRule], bool],
    what: str,
) -> RoleRule | Decision:
    """The caller's role rule when the rule ``may`` and a purpose is stated; else the refusal
    (``role-not-permitted``: "<who> may not <what>", or ``purpose-missing``). Which purposes
    the rule then allows is each decision's own."""
    rule = policy.rule_for(requester)
    if rule is None or not may(rule):
        return deny(Reason.ROLE_NOT_PERMITTED, f"{who(requester)} may not {what}", policy)
    if not purpose:
        return deny(Reason.PURPOSE_MISSING, "no purpose of use was stated", policy)
    return rule


def no_relationship(org: str, policy: Policy) -> Decision:
    """The refusal of an organisation with no legitimate relationship with the person
    (:func:`consent.rules.legitimate_relationship` found none)."""
    why = f"{org} has no legitimate relationship with the person"
    return deny(Reason.NO_LEGITIMATE_RELATIONSHIP, why, policy)

"""How the write and directive decisions word a caller and a refusal.

:mod:`consent.directive_access` and :mod:`consent.plan_write` refuse in the same words, so a
log or an audit ``outcomeDesc`` reads alike whichever refused: ``denied: <why>``, the caller
named as ``role <role>`` (or ``system clients``), the directives applied listed once each.
"""

from __future__ import annotations

from collections.abc import Sequence

from consent.model import Decision, Effect, Reason, Requester
from consent.policy import Policy


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

"""Who may write a joint care plan, and read the joint care summary: the pure decisions."""

from __future__ import annotations

from typing import Any

import pytest

from consent import Effect, PlanInteraction, Reason, decide_plan_write, load_policy
from consent.model import Requester
from consent.plan_write import decide_summary_access, plan_write_role_denial
from consent.policy import Policy
from tests.consent.factories import (
    COUNCIL,
    GP,
    NOW,
    STRANGER,
    TRUST,
    objection,
    record,
    refuse,
    system_client,
    user,
    withhold,
)

CREATE, UPDATE = PlanInteraction.CREATE, PlanInteraction.UPDATE


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def decide(policy: Policy, who: Requester, purpose: str | None = "TREAT", **kw: Any) -> Any:
    interaction = kw.pop("interaction", CREATE)
    return decide_plan_write(who, purpose, interaction, record(), policy, now=NOW, **kw)


@pytest.mark.parametrize(
    ("who", "purpose", "effect", "reasons"),
    [
        (user("R8000"), "TREAT", Effect.PERMIT, ()),
        (user("R8001"), "CAREMGT", Effect.PERMIT, ()),
        (user("LA-SW", COUNCIL), "TREAT", Effect.PERMIT, ()),
        (user("R8008"), "TREAT", Effect.DENY, (Reason.ROLE_NOT_PERMITTED,)),
        (user("R0001"), "HOPERAT", Effect.DENY, (Reason.ROLE_NOT_PERMITTED,)),
        (user("BCF-COMM"), "HOPERAT", Effect.DENY, (Reason.ROLE_NOT_PERMITTED,)),
        (user("XX-UNKNOWN"), "TREAT", Effect.DENY, (Reason.ROLE_NOT_PERMITTED,)),
        (system_client(), "TREAT", Effect.DENY, (Reason.ROLE_NOT_PERMITTED,)),
        (user("R8000"), None, Effect.DENY, (Reason.PURPOSE_MISSING,)),
        (user("R8000"), "HOPERAT", Effect.DENY, (Reason.PURPOSE_NOT_PERMITTED,)),
        (user("R8000", reason="collapsed"), "ETREAT", Effect.DENY,
         (Reason.PURPOSE_NOT_PERMITTED,)),
        (user("R8000", STRANGER), "TREAT", Effect.DENY, (Reason.NO_LEGITIMATE_RELATIONSHIP,)),
        (user("R8000", STRANGER, reason="collapsed"), "ETREAT", Effect.DENY,
         (Reason.PURPOSE_NOT_PERMITTED,)),
    ],
    ids=["clinician", "nurse-caremgt", "social-worker", "admin", "privacy-officer",
         "commissioner", "unknown-role", "system-client", "no-purpose", "ig-purpose",
         "break-glass", "no-relationship", "break-glass-stranger"],
)  # fmt: skip
def test_who_may_create(
    policy: Policy, who: Requester, purpose: str | None, effect: Effect, reasons: tuple[Any, ...]
) -> None:
    decision = decide(policy, who, purpose)
    assert (decision.effect, decision.reasons) == (effect, reasons)
    assert decision.policy_version == policy.version
    denial = plan_write_role_denial(who, purpose, policy)
    if reasons and reasons[0] is not Reason.NO_LEGITIMATE_RELATIONSHIP:
        assert denial is not None and denial.reasons == reasons  # told before the body
    else:
        assert denial is None


def test_break_glass_is_named_as_never_writing(policy: Policy) -> None:
    decision = decide(policy, user("R8000", reason="collapsed"), "ETREAT")
    assert "emergency access never writes" in decision.matched_rule


@pytest.mark.parametrize(
    ("directive", "reason"),
    [
        (objection(), Reason.PATIENT_OBJECTED),
        (refuse(COUNCIL), Reason.RECIPIENT_REFUSED_BY_PATIENT),
        (withhold(GP), Reason.SOURCE_WITHHELD_BY_PATIENT),
    ],
    ids=["objection", "refused-recipient", "withheld-custodian"],
)
def test_directives_keep_another_organisations_plan_from_being_changed(
    policy: Policy, directive: Any, reason: Reason
) -> None:
    who = user("LA-SW", COUNCIL)
    decision = decide(policy, who, interaction=UPDATE, plan_custodian=GP, directives=(directive,))
    assert (decision.effect, decision.reasons) == (Effect.DENY, (reason,))
    assert decision.directives_applied == (directive.consent_id,)
    # ... but never stop an organisation writing its own part of the person's care.
    own = decide(policy, who, interaction=UPDATE, plan_custodian=COUNCIL, directives=(directive,))
    assert own.effect is Effect.PERMIT
    new = decide(policy, who, interaction=CREATE, directives=(directive,))
    assert new.effect is Effect.PERMIT


def test_directives_out_of_force_do_not_apply(policy: Policy) -> None:
    inactive = refuse(COUNCIL, status="inactive")
    decision = decide(
        policy, user("LA-SW", COUNCIL), interaction=UPDATE, plan_custodian=TRUST,
        directives=(inactive,),
    )  # fmt: skip
    assert decision.effect is Effect.PERMIT


@pytest.mark.parametrize(
    ("who", "purpose", "effect", "reason"),
    [
        (user("R0001"), "HOPERAT", Effect.PERMIT, None),
        (user("R5105"), "HOPERAT", Effect.PERMIT, None),
        (user("BCF-COMM"), "HOPERAT", Effect.PERMIT, None),
        (user("R8000"), "TREAT", Effect.DENY, Reason.ROLE_NOT_PERMITTED),
        (system_client(), "TREAT", Effect.DENY, Reason.ROLE_NOT_PERMITTED),
        (user("R0001"), None, Effect.DENY, Reason.PURPOSE_MISSING),
        (user("R0001"), "TREAT", Effect.DENY, Reason.PURPOSE_NOT_PERMITTED),
    ],
)
def test_who_may_read_the_summary(
    policy: Policy, who: Requester, purpose: str | None, effect: Effect, reason: Reason | None
) -> None:
    decision = decide_summary_access(who, purpose, policy)
    assert decision.effect is effect
    assert decision.reasons == (() if reason is None else (reason,))

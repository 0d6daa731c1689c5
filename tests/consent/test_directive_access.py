"""Who may read and change a person's consent directives (consent.directive_access)."""

from __future__ import annotations

import pytest

from consent import (
    DirectiveInteraction,
    Effect,
    Policy,
    Reason,
    Requester,
    decide_directive_access,
    directive_role_denial,
    load_policy,
    needs_relationship,
    parse_consent,
)
from consent.directive_access import DIRECTIVES_SOURCE, is_the_person
from tests.consent.factories import (
    COUNCIL,
    GP,
    NHS,
    STRANGER,
    TRUST,
    objection_consent,
    record,
    refuse_consent,
    system_client,
    user,
    withhold_consent,
)

I = DirectiveInteraction  # noqa: E741 - short for the table of cases
OBJECTION = {"Consent/obj/_history/1": parse_consent(objection_consent())}
REFUSES_GP = {"Consent/rf/_history/1": parse_consent(refuse_consent(GP))}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def ig(org: str = "X26", role: str = "R0001") -> Requester:
    return Requester(sub="ig-1", role=role, org=org)


@pytest.mark.parametrize("interaction", list(DirectiveInteraction))
@pytest.mark.parametrize("org", [GP, COUNCIL, TRUST])
def test_an_organisation_in_the_persons_care_may(
    policy: Policy, interaction: DirectiveInteraction, org: str
) -> None:
    d = decide_directive_access(user(org=org), "TREAT", interaction, record(), OBJECTION, policy)
    assert d.effect is Effect.PERMIT and d.reasons == ()
    assert org in d.matched_rule and d.policy_version == policy.version


@pytest.mark.parametrize("interaction", list(DirectiveInteraction))
def test_an_unrelated_organisation_may_not(
    policy: Policy, interaction: DirectiveInteraction
) -> None:
    d = decide_directive_access(
        user(org=STRANGER), "TREAT", interaction, record(), OBJECTION, policy
    )
    assert d.effect is Effect.DENY
    assert d.reasons == (Reason.NO_LEGITIMATE_RELATIONSHIP,)


def test_break_glass_never_stands_in_for_the_relationship(policy: Policy) -> None:
    glass = user(org=STRANGER, reason="Collapsed in A&E")
    for interaction in DirectiveInteraction:
        d = decide_directive_access(glass, "ETREAT", interaction, record(), OBJECTION, policy)
        assert d.reasons == (Reason.NO_LEGITIMATE_RELATIONSHIP,), interaction
        assert not d.break_glass


@pytest.mark.parametrize("role", ["R0001", "R5105"])
@pytest.mark.parametrize("interaction", list(DirectiveInteraction))
def test_ig_roles_under_hoperat_need_no_relationship(
    policy: Policy, role: str, interaction: DirectiveInteraction
) -> None:
    who = ig(role=role)
    assert not needs_relationship(who, "HOPERAT", policy)
    d = decide_directive_access(who, "HOPERAT", interaction, (), OBJECTION, policy)
    assert d.effect is Effect.PERMIT
    assert "information governance work" in d.matched_rule


def test_clinicians_always_need_the_relationship(policy: Policy) -> None:
    assert needs_relationship(user(), "TREAT", policy)
    assert needs_relationship(user(role="R8008"), "TREAT", policy)
    assert not is_the_person(user(), NHS)  # the hook for patient tokens: nobody yet


@pytest.mark.parametrize(
    ("who", "purpose", "reason"),
    [
        (user(role="R8008"), "TREAT", Reason.ROLE_NOT_PERMITTED),
        (user(role="R9999"), "TREAT", Reason.ROLE_NOT_PERMITTED),
        (user(role=None), "TREAT", Reason.ROLE_NOT_PERMITTED),
        (system_client(), "TREAT", Reason.ROLE_NOT_PERMITTED),
        (user(), None, Reason.PURPOSE_MISSING),
        (user(), "HOPERAT", Reason.PURPOSE_NOT_PERMITTED),
        (ig(), "TREAT", Reason.PURPOSE_NOT_PERMITTED),
    ],
)
def test_role_and_purpose_come_first(
    policy: Policy, who: Requester, purpose: str | None, reason: Reason
) -> None:
    denial = directive_role_denial(who, purpose, policy)
    assert denial is not None and denial.reasons == (reason,)
    d = decide_directive_access(who, purpose, I.READ, record(), OBJECTION, policy)
    assert d.effect is Effect.DENY and d.reasons == (reason,)


def test_role_denial_is_none_for_a_recorder(policy: Policy) -> None:
    assert directive_role_denial(user(), "TREAT", policy) is None
    assert directive_role_denial(ig(), "HOPERAT", policy) is None


@pytest.mark.parametrize("interaction", [I.READ, I.UPDATE])
@pytest.mark.parametrize("status", ["active", "inactive", "entered-in-error"])
def test_the_refused_organisation_can_neither_read_nor_change_its_refusal(
    policy: Policy, interaction: DirectiveInteraction, status: str
) -> None:
    targets = {"Consent/rf/_history/3": parse_consent(refuse_consent(GP, status=status))}
    for who, purpose in ((user(org=GP), "TREAT"), (ig(org=GP), "HOPERAT")):
        d = decide_directive_access(who, purpose, interaction, record(), targets, policy)
        assert d.effect is Effect.DENY, (who, status)
        assert d.reasons == (Reason.RECIPIENT_REFUSED_BY_PATIENT,)
        assert d.directives_applied == ("rf",)
    # Others in the person's care may.
    d = decide_directive_access(user(org=TRUST), "TREAT", interaction, record(), targets, policy)
    assert d.effect is Effect.PERMIT


def test_a_refusal_limited_to_a_purpose_or_period_still_counts(policy: Policy) -> None:
    narrow = refuse_consent(GP, period={"start": "2001-01-01", "end": "2001-12-31"})
    targets = {"Consent/rf/_history/1": parse_consent(narrow)}
    d = decide_directive_access(user(), "TREAT", I.READ, record(), targets, policy)
    assert d.reasons == (Reason.RECIPIENT_REFUSED_BY_PATIENT,)


def test_a_search_leaves_out_the_refusal_and_keeps_the_rest(policy: Policy) -> None:
    targets = {
        **OBJECTION,
        **REFUSES_GP,
        "Consent/wh/_history/2": parse_consent(withhold_consent(COUNCIL)),
    }
    d = decide_directive_access(user(), "TREAT", I.SEARCH, record(), targets, policy)
    assert d.effect is Effect.PERMIT_FILTERED
    assert d.reasons == (Reason.RECIPIENT_REFUSED_BY_PATIENT,)
    assert [(w.key, w.reason, w.source) for w in d.withheld] == [
        ("Consent/rf/_history/1", Reason.RECIPIENT_REFUSED_BY_PATIENT, DIRECTIVES_SOURCE)
    ]
    assert d.permitted


def test_a_search_by_an_unrelated_organisation_is_refused_whole(policy: Policy) -> None:
    d = decide_directive_access(user(org=STRANGER), "TREAT", I.SEARCH, record(), {}, policy)
    assert d.reasons == (Reason.NO_LEGITIMATE_RELATIONSHIP,)


def test_a_person_may_tell_the_organisation_they_refuse(policy: Policy) -> None:
    d = decide_directive_access(user(), "TREAT", I.CREATE, record(), REFUSES_GP, policy)
    assert d.effect is Effect.PERMIT


def test_a_site_policy_without_the_ig_setting_needs_the_relationship() -> None:
    data = load_policy().model_dump(mode="json")
    data["roles"]["R0001"]["directives_without_relationship"] = False
    policy = Policy.model_validate(data)
    assert needs_relationship(ig(), "HOPERAT", policy)
    d = decide_directive_access(ig(), "HOPERAT", I.UPDATE, record(), OBJECTION, policy)
    assert d.reasons == (Reason.NO_LEGITIMATE_RELATIONSHIP,)


def test_the_decision_is_pure(policy: Policy) -> None:
    args = (user(), "TREAT", I.SEARCH, record(), {**OBJECTION, **REFUSES_GP}, policy)
    assert decide_directive_access(*args) == decide_directive_access(*args)

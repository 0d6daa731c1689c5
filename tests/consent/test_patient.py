"""The person's own access, decided by the pure consent core (:mod:`consent.patient`)."""

from __future__ import annotations

from typing import Any

import pytest

from consent import (
    ClientKind,
    DirectiveInteraction,
    Effect,
    PolicyError,
    Reason,
    Requester,
    decide,
    decide_directive_access,
    directive_role_denial,
    load_policy,
    needs_relationship,
    parse_consent,
)
from consent.directive_access import is_the_person
from consent.policy import parse_policy
from tests.consent.factories import NHS, NOW, care_plan, objection_body, record, trust

POLICY = load_policy()
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OTHER = "9991000070"


def person(level: str = "P9", nhs: str = NHS) -> Requester:
    return Requester(
        sub=nhs, role=None, org=None, client_kind=ClientKind.PATIENT, patient=nhs,
        proofing_level=level,
    )  # fmt: skip


def nopat_plan() -> dict[str, Any]:
    plan = care_plan("t-nopat", "community", "health", "RAT", "R")
    plan["meta"]["security"].append({"system": ACT, "code": "NOPAT"})
    return plan


def safeguarding_plan(*labels: str) -> dict[str, Any]:
    plan = care_plan("c-sg", "council", "social-care", "LA001", *labels)
    plan["category"] = [
        {
            "coding": [
                {"system": "urn:caregateway:care-plan-type", "code": "safeguarding-protection"}
            ]
        }
    ]
    plan["goal"] = [{"reference": "Goal/c-sg-g1"}]
    return plan


def test_the_person_sees_their_own_record_restricted_plans_included() -> None:
    d = decide(person(), "PATRQT", record(), (), POLICY, NOW, person=NHS)
    assert d.effect is Effect.PERMIT and d.reasons == ()
    shown = {r["id"] for c in d.visible(record()) for r in c.resources}
    assert "t-mh" in shown  # labelled R: protects from others, not from the person


def test_nopat_and_restricted_safeguarding_are_withheld_and_not_announced() -> None:
    goal = {"resourceType": "Goal", "id": "c-sg-g1", "meta": {}}
    council, community = record()
    contributions = (
        council.__class__(
            council.source,
            council.custodian,
            council.domain,
            (*council.resources, safeguarding_plan("R"), goal),
        ),
        trust(nopat_plan()),
    )
    d = decide(person(), "PATRQT", contributions, (), POLICY, NOW, person=NHS)
    assert d.effect is Effect.PERMIT_FILTERED and d.announce_withheld is False
    assert {w.key for w in d.withheld} == {"CarePlan/t-nopat", "CarePlan/c-sg", "Goal/c-sg-g1"}
    assert d.reasons == (Reason.WITHHELD_FROM_PATIENT,)
    assert "not announced" in d.matched_rule
    shown = {r["id"] for c in d.visible(contributions) for r in c.resources}
    assert not shown & {"t-nopat", "c-sg", "c-sg-g1"} and "c-cp1" in shown


def test_an_unrestricted_safeguarding_plan_is_shown() -> None:
    council, _ = record()
    contribution = council.__class__(
        council.source, council.custodian, council.domain, (*council.resources, safeguarding_plan())
    )
    d = decide(person(), "PATRQT", (contribution,), (), POLICY, NOW, person=NHS)
    assert d.effect is Effect.PERMIT


def test_the_persons_own_objection_does_not_stop_them_seeing_their_record() -> None:
    directives = parse_consent({**objection_body(NHS), "id": "x"})
    d = decide(person(), "PATRQT", record(), directives, POLICY, NOW, person=NHS)
    assert d.effect is Effect.PERMIT


@pytest.mark.parametrize(
    ("who", "purpose", "asked", "reason"),
    [
        (person(), "PATRQT", OTHER, Reason.NOT_OWN_RECORD),
        (person(), "TREAT", NHS, Reason.PURPOSE_NOT_PERMITTED),
        (person(), "ETREAT", NHS, Reason.PURPOSE_NOT_PERMITTED),  # no break-glass for oneself
        (person(), None, NHS, Reason.PURPOSE_MISSING),
        (person("P5"), "PATRQT", NHS, Reason.PROOFING_INSUFFICIENT),
        (person("P0"), "PATRQT", NHS, Reason.PROOFING_INSUFFICIENT),
        (person("P5"), "PATRQT", OTHER, Reason.NOT_OWN_RECORD),
    ],
)
def test_refusals(who: Requester, purpose: str | None, asked: str, reason: Reason) -> None:
    d = decide(who, purpose, record(), (), POLICY, NOW, person=asked)
    assert d.effect is Effect.DENY and d.reasons == (reason,)
    assert d.visible(record()) == ()


def test_without_a_patient_section_the_person_sees_nothing() -> None:
    raw = POLICY.model_dump(mode="json", exclude={"patient"})
    d = decide(person(), "PATRQT", record(), (), parse_policy(raw), NOW, person=NHS)
    assert d.effect is Effect.DENY and d.reasons == (Reason.ROLE_NOT_PERMITTED,)


def test_a_bad_patient_section_is_refused_naming_where() -> None:
    raw = POLICY.model_dump(mode="json")
    raw["patient"]["proofing"]["care_data"] = "P7"
    with pytest.raises(PolicyError, match="patient.proofing.care_data"):
        parse_policy(raw)


def test_the_person_reads_and_changes_only_their_own_directives() -> None:
    me = person()
    assert is_the_person(me, NHS) and not is_the_person(me, OTHER)
    assert not needs_relationship(me, "PATRQT", POLICY, OTHER)  # refused without looking
    targets = {"Consent/x/_history/1": parse_consent({**objection_body(NHS), "id": "x"})}
    for interaction in DirectiveInteraction:
        ok = decide_directive_access(me, "PATRQT", interaction, (), targets, POLICY, person=NHS)
        assert ok.effect is Effect.PERMIT, interaction
        theirs = decide_directive_access(
            me, "PATRQT", interaction, (), targets, POLICY, person=OTHER
        )
        assert theirs.reasons == (Reason.NOT_OWN_RECORD,)
    p5 = person("P5")
    assert directive_role_denial(p5, "PATRQT", POLICY, DirectiveInteraction.SEARCH) is None
    denial = directive_role_denial(p5, "PATRQT", POLICY, DirectiveInteraction.CREATE)
    assert denial is not None and denial.reasons == (Reason.PROOFING_INSUFFICIENT,)

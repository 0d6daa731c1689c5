"""decide(): one table row per rule and per default role, over the scenario record.

The record (tests/consent/factories.py): a council source (social care, custodian LA001)
and a community trust source (health, custodian RAT); the person is registered with GP
practice F81001; the trust holds a restricted (R) mental health plan ``t-mh``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from consent.decide import confidentiality, decide, legitimate_relationship
from consent.directives import Directive
from consent.model import Decision, Effect, Reason, Requester, SourceContribution
from consent.policy import Policy, load_policy, parse_policy
from tests.consent.factories import (
    COUNCIL,
    GP,
    NHS,
    NOW,
    STRANGER,
    TRUST,
    care_plan,
    care_team,
    council,
    meta,
    objection,
    patient,
    purpose,
    record,
    refuse,
    system_client,
    trust,
    user,
    withhold,
)

POLICY = load_policy()
ALL = {"c-p", "c-cp1", "c-ct", "t-p", "t-cp1", "t-mh"}
DEMOGRAPHICS = {"c-p", "c-ct", "t-p"}
COUNCIL_IDS = {"c-p", "c-cp1", "c-ct"}
R = Reason
BG = "unconscious in A&E, needs care history"


def visible_ids(decision: Decision, contributions: tuple[SourceContribution, ...]) -> set[str]:
    return {str(r["id"]) for c in decision.visible(contributions) for r in c.resources}


@dataclass(frozen=True)
class Case:
    name: str
    requester: Requester
    purpose: str | None
    effect: Effect
    reasons: tuple[Reason, ...]
    visible: set[str] = field(default_factory=set)
    directives: tuple[Directive, ...] = ()
    prior: timedelta | None = None  # how long ago the user last broke the glass
    contributions: tuple[SourceContribution, ...] = field(default_factory=record)
    break_glass: bool = False


CASES = [
    # --- each default role, ordinary direct care at the GP practice --------------------
    Case("R8000 GP sees all", user("R8000"), "TREAT", Effect.PERMIT, (), ALL),
    Case("R8001 nurse sees all", user("R8001"), "CAREMGT", Effect.PERMIT, (), ALL),
    Case("R8003 sees all", user("R8003"), "TREAT", Effect.PERMIT, (), ALL),
    Case(
        "LA-SW no R health plan",
        user("LA-SW", COUNCIL),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.LABEL_RESTRICTED,),
        ALL - {"t-mh"},
    ),
    Case(
        "R8008 demographics only",
        user("R8008"),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.LEVEL_DEMOGRAPHICS_ONLY,),
        DEMOGRAPHICS,
    ),
    Case("R0001 no care data", user("R0001"), "HOPERAT", Effect.DENY, (R.ROLE_NOT_PERMITTED,)),
    Case("R5105 no care data", user("R5105"), "HOPERAT", Effect.DENY, (R.ROLE_NOT_PERMITTED,)),
    Case(
        "system client N only",
        system_client(),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.LABEL_RESTRICTED,),
        ALL - {"t-mh"},
    ),
    # --- role and purpose -----------------------------------------------------------------
    Case("unknown role", user("R9999"), "TREAT", Effect.DENY, (R.ROLE_NOT_PERMITTED,)),
    Case("no role claim", user(None), "TREAT", Effect.DENY, (R.ROLE_NOT_PERMITTED,)),
    Case("purpose missing", user("R8000"), None, Effect.DENY, (R.PURPOSE_MISSING,)),
    Case("purpose empty", user("R8000"), "", Effect.DENY, (R.PURPOSE_MISSING,)),
    Case("R8000 HOPERAT", user("R8000"), "HOPERAT", Effect.DENY, (R.PURPOSE_NOT_PERMITTED,)),
    Case(
        "R8008 ETREAT", user("R8008", reason=BG), "ETREAT", Effect.DENY, (R.PURPOSE_NOT_PERMITTED,)
    ),
    Case("R0001 TREAT", user("R0001"), "TREAT", Effect.DENY, (R.PURPOSE_NOT_PERMITTED,)),
    Case("system CAREMGT", system_client(), "CAREMGT", Effect.DENY, (R.PURPOSE_NOT_PERMITTED,)),
    Case("system ETREAT", system_client(), "ETREAT", Effect.DENY, (R.PURPOSE_NOT_PERMITTED,)),
    # --- legitimate relationship --------------------------------------------------------
    Case(
        "stranger denied",
        user("R8000", STRANGER),
        "TREAT",
        Effect.DENY,
        (R.NO_LEGITIMATE_RELATIONSHIP,),
    ),
    Case("custodian has one", user("R8000", TRUST), "TREAT", Effect.PERMIT, (), ALL),
    Case(
        "care team member has one",
        user("R8000", "RYY"),
        "TREAT",
        Effect.PERMIT,
        (),
        ALL | {"x-ct"},
        contributions=(council(care_team("x-ct", "council", "social-care", "RYY")), trust()),
    ),
    Case(
        "plan author has one",
        user("R8000", "RZZ"),
        "TREAT",
        Effect.PERMIT,
        (),
        ALL | {"x-cp"},
        contributions=(council(care_plan("x-cp", "council", "social-care", "RZZ")), trust()),
    ),
    Case(
        "stranger ETREAT without reason is ordinary",
        user("R8000", STRANGER),
        "ETREAT",
        Effect.DENY,
        (R.NO_LEGITIMATE_RELATIONSHIP,),
    ),
    Case(
        "whitespace reason is no reason",
        user("R8000", STRANGER, reason="   "),
        "ETREAT",
        Effect.DENY,
        (R.NO_LEGITIMATE_RELATIONSHIP,),
    ),
    Case(
        "reason without ETREAT is ignored",
        user("R8000", STRANGER, reason=BG),
        "TREAT",
        Effect.DENY,
        (R.NO_LEGITIMATE_RELATIONSHIP,),
    ),
    # --- break-glass ----------------------------------------------------------------------
    Case(
        "stranger breaks glass",
        user("R8000", STRANGER, reason=BG),
        "ETREAT",
        Effect.PERMIT,
        (R.BREAK_GLASS,),
        ALL,
        break_glass=True,
    ),
    Case(
        "within window no reason needed",
        user("R8000", STRANGER),
        "ETREAT",
        Effect.PERMIT,
        (R.BREAK_GLASS,),
        ALL,
        prior=timedelta(minutes=59),
        break_glass=True,
    ),
    Case(
        "window expired",
        user("R8000", STRANGER),
        "ETREAT",
        Effect.DENY,
        (R.NO_LEGITIMATE_RELATIONSHIP,),
        prior=timedelta(minutes=60),
    ),
    Case(
        "prior in the future ignored",
        user("R8000", STRANGER),
        "ETREAT",
        Effect.DENY,
        (R.NO_LEGITIMATE_RELATIONSHIP,),
        prior=timedelta(minutes=-5),
    ),
    Case(
        "window needs ETREAT",
        user("R8000", STRANGER),
        "TREAT",
        Effect.DENY,
        (R.NO_LEGITIMATE_RELATIONSHIP,),
        prior=timedelta(minutes=5),
    ),
    Case(
        "break-glass with relationship still flagged",
        user("R8000", reason=BG),
        "ETREAT",
        Effect.PERMIT,
        (R.BREAK_GLASS,),
        ALL,
        break_glass=True,
    ),
    Case(
        "break-glass never overrides labels",
        user("LA-SW", STRANGER, reason=BG),
        "ETREAT",
        Effect.PERMIT_FILTERED,
        (R.BREAK_GLASS, R.LABEL_RESTRICTED),
        ALL - {"t-mh"},
        break_glass=True,
    ),
    # --- objection ----------------------------------------------------------------------------
    Case(
        "objection denies GP",
        user("R8000"),
        "TREAT",
        Effect.DENY,
        (R.PATIENT_OBJECTED,),
        directives=(objection(),),
    ),
    Case(
        "objection denies custodian",
        user("R8000", TRUST),
        "TREAT",
        Effect.DENY,
        (R.PATIENT_OBJECTED,),
        directives=(objection(),),
    ),
    Case(
        "break-glass overrides objection",
        user("R8000", STRANGER, reason=BG),
        "ETREAT",
        Effect.PERMIT,
        (R.BREAK_GLASS,),
        ALL,
        directives=(objection(),),
        break_glass=True,
    ),
    Case(
        "inactive objection ignored",
        user("R8000"),
        "TREAT",
        Effect.PERMIT,
        (),
        ALL,
        directives=(objection(status="inactive"),),
    ),
    Case(
        "entered-in-error objection ignored",
        user("R8000"),
        "TREAT",
        Effect.PERMIT,
        (),
        ALL,
        directives=(objection(status="entered-in-error"),),
    ),
    # --- refused recipient ---------------------------------------------------------------
    Case(
        "refused recipient",
        user("R8000"),
        "TREAT",
        Effect.DENY,
        (R.RECIPIENT_REFUSED_BY_PATIENT,),
        directives=(refuse(GP),),
    ),
    Case(
        "another recipient refused",
        user("R8000"),
        "TREAT",
        Effect.PERMIT,
        (),
        ALL,
        directives=(refuse(STRANGER),),
    ),
    Case(
        "break-glass overrides refusal",
        user("R8000", reason=BG),
        "ETREAT",
        Effect.PERMIT,
        (R.BREAK_GLASS,),
        ALL,
        directives=(refuse(GP),),
        break_glass=True,
    ),
    Case(
        "refusal for CAREMGT only, asked TREAT",
        user("R8000"),
        "TREAT",
        Effect.PERMIT,
        (),
        ALL,
        directives=(refuse(GP, purpose=purpose("CAREMGT")),),
    ),
    Case(
        "refusal for CAREMGT only, asked CAREMGT",
        user("R8000"),
        "CAREMGT",
        Effect.DENY,
        (R.RECIPIENT_REFUSED_BY_PATIENT,),
        directives=(refuse(GP, purpose=purpose("CAREMGT")),),
    ),
    Case(
        "refusal expired",
        user("R8000"),
        "TREAT",
        Effect.PERMIT,
        (),
        ALL,
        directives=(refuse(GP, period={"end": "2026-01-01"}),),
    ),
    # --- withheld source -----------------------------------------------------------------------
    Case(
        "trust withheld",
        user("R8000"),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.SOURCE_WITHHELD_BY_PATIENT,),
        COUNCIL_IDS,
        directives=(withhold(TRUST),),
    ),
    Case(
        "withheld source still shown to its custodian",
        user("R8000", TRUST),
        "TREAT",
        Effect.PERMIT,
        (),
        ALL,
        directives=(withhold(TRUST),),
    ),
    Case(
        "break-glass never overrides withholding",
        user("R8000", STRANGER, reason=BG),
        "ETREAT",
        Effect.PERMIT_FILTERED,
        (R.BREAK_GLASS, R.SOURCE_WITHHELD_BY_PATIENT),
        COUNCIL_IDS,
        directives=(withhold(TRUST),),
        break_glass=True,
    ),
    Case(
        "every source withheld",
        user("R8000"),
        "TREAT",
        Effect.DENY,
        (R.SOURCE_WITHHELD_BY_PATIENT,),
        directives=(withhold(TRUST), withhold(COUNCIL, cid="wh2")),
    ),
    Case(
        "withheld then demographics",
        user("R8008"),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.SOURCE_WITHHELD_BY_PATIENT, R.LEVEL_DEMOGRAPHICS_ONLY),
        {"c-p", "c-ct"},
        directives=(withhold(TRUST),),
    ),
    # --- labels ---------------------------------------------------------------------------
    Case(
        "LA-SW sees R social care",
        user("LA-SW", COUNCIL),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.LABEL_RESTRICTED,),
        (ALL - {"t-mh"}) | {"sg"},
        contributions=(council(care_plan("sg", "council", "social-care", COUNCIL, "R")), trust()),
    ),
    Case(
        "R8000 does not see R social care",
        user("R8000"),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.LABEL_RESTRICTED,),
        ALL,
        contributions=(council(care_plan("sg", "council", "social-care", COUNCIL, "R")), trust()),
    ),
    Case(
        "V seen by nobody",
        user("R8000"),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.LABEL_RESTRICTED,),
        ALL,
        contributions=(council(), trust(care_plan("v", "community", "health", TRUST, "V"))),
    ),
    Case(
        "L and M count as normal",
        user("R8008"),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.LEVEL_DEMOGRAPHICS_ONLY,),
        DEMOGRAPHICS | {"lp"},
        contributions=(council(patient("lp", "council", "social-care", GP, "L", "M")), trust()),
    ),
    Case(
        "resource tag beats source domain",
        user("LA-SW", COUNCIL),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.LABEL_RESTRICTED,),
        ALL - {"t-mh"},
        contributions=(
            council(),
            SourceContribution(
                "community",
                TRUST,
                "social-care",  # the tag on each resource says health
                trust().resources,
            ),
        ),
    ),
    Case(
        "restricted person: nothing visible is a deny",
        user("LA-SW", TRUST),
        "TREAT",
        Effect.DENY,
        (R.LABEL_RESTRICTED,),
        contributions=(
            SourceContribution(
                "community",
                TRUST,
                "health",
                (
                    patient("t-p", "community", "health", GP, "R"),
                    care_plan("t-mh", "community", "health", TRUST, "R"),
                ),
            ),
        ),
    ),
    Case(
        "unknown resource type beyond care level",
        user("R8000"),
        "TREAT",
        Effect.PERMIT_FILTERED,
        (R.ROLE_NOT_PERMITTED,),
        ALL,
        contributions=(council({"resourceType": "Observation", "id": "obs"}), trust()),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide(case: Case) -> None:
    prior = NOW - case.prior if case.prior is not None else None
    d = decide(
        case.requester, case.purpose, case.contributions, case.directives, POLICY, NOW, prior
    )
    assert d.effect is case.effect
    assert d.reasons == case.reasons
    assert visible_ids(d, case.contributions) == case.visible
    assert d.break_glass is case.break_glass
    assert d.policy_version == POLICY.version
    assert d.matched_rule.startswith("denied:" if case.effect is Effect.DENY else "permitted:")
    assert NHS not in d.matched_rule


def test_directives_applied_named() -> None:
    ds = (
        withhold(TRUST, cid="w1"),
        refuse(STRANGER, cid="r1"),
        objection(cid="o1", status="inactive"),
    )
    d = decide(user("R8000"), "TREAT", record(), ds, POLICY, NOW)
    assert d.directives_applied == ("w1",)
    assert d.withheld_sources == ("community",)
    assert [w.key for w in d.withheld] == ["source:community"]


def test_overridden_objection_is_recorded() -> None:
    d = decide(
        user("R8000", STRANGER, reason=BG), "ETREAT", record(), (objection(cid="o1"),), POLICY, NOW
    )
    assert d.directives_applied == ("o1",)
    assert d.break_glass_reason == BG
    assert d.break_glass_until == NOW + timedelta(minutes=60)
    assert "overrode no legitimate relationship, the person's objection" in d.matched_rule


def test_window_keeps_its_start() -> None:
    prior = NOW - timedelta(minutes=10)
    d = decide(user("R8000", STRANGER), "ETREAT", record(), (), POLICY, NOW, prior)
    assert d.break_glass and d.break_glass_reason is None
    assert d.break_glass_until == prior + timedelta(minutes=60)


def _policy(**break_glass: Any) -> Policy:
    data = POLICY.model_dump(mode="json")
    data["break_glass"].update(break_glass)
    return parse_policy(data)


@pytest.mark.parametrize(
    ("directive", "setting", "reason"),
    [
        (objection(), "overrides_objection", R.PATIENT_OBJECTED),
        (refuse(STRANGER), "overrides_recipient_refusal", R.RECIPIENT_REFUSED_BY_PATIENT),
    ],
)
def test_policy_can_forbid_break_glass_override(
    directive: Directive, setting: str, reason: Reason
) -> None:
    d = decide(
        user("R8000", STRANGER, reason=BG),
        "ETREAT",
        record(),
        (directive,),
        _policy(**{setting: False}),
        NOW,
    )
    assert d.effect is Effect.DENY
    assert d.reasons == (R.BREAK_GLASS, reason)
    assert d.break_glass and d.break_glass_until is None  # the attempt is still flagged


def test_duration_from_policy() -> None:
    p = _policy(duration_minutes=5)
    prior = NOW - timedelta(minutes=6)
    d = decide(user("R8000", STRANGER), "ETREAT", record(), (), p, NOW, prior)
    assert d.effect is Effect.DENY


def test_withheld_resource_without_id_keyed_by_position() -> None:
    anon = care_plan("x", "community", "health", TRUST, "V")
    del anon["id"]
    contributions = (trust(anon),)
    d = decide(user("R8000"), "TREAT", contributions, (), POLICY, NOW)
    assert [w.key for w in d.withheld] == ["CarePlan#3"]
    assert len(d.visible(contributions)[0].resources) == 3


def test_relationship_found_in_withheld_source() -> None:
    # The GP registration is a fact about the person's care even if that source is withheld.
    contributions = (trust(), council(gp=None))
    d = decide(user("R8000"), "TREAT", contributions, (withhold(TRUST),), POLICY, NOW)
    assert d.effect is Effect.PERMIT_FILTERED
    assert visible_ids(d, contributions) == COUNCIL_IDS


def test_legitimate_relationship_reasons() -> None:
    assert legitimate_relationship(GP, record()) == f"{GP} is the registered GP practice"
    assert legitimate_relationship(STRANGER, record()) is None
    # an empty contribution from a custodian is not a relationship
    assert legitimate_relationship("X", [SourceContribution("s", "X", "health", ())]) is None


@pytest.mark.parametrize(
    ("labels", "expected"),
    [((), "N"), (("L",), "N"), (("R",), "R"), (("N", "V", "R"), "V"), (("Q",), "N")],
)
def test_confidentiality(labels: tuple[str, ...], expected: str) -> None:
    assert confidentiality({"meta": meta("s", "health", *labels)}) == expected


def test_labels_from_other_systems_ignored() -> None:
    r = {"meta": {"security": [{"system": "http://example.org", "code": "V"}]}}
    assert confidentiality(r) == "N"


def _provenance(rid: str, target: str) -> dict[str, Any]:
    return {"resourceType": "Provenance", "id": rid, "target": [{"reference": target}]}


def test_what_would_betray_a_removed_plan_goes_with_it() -> None:
    plan = care_plan("t-mh", "community", "health", TRUST, "R")
    plan["goal"] = [{"reference": "Goal/g-mh"}]
    extra = (
        {"resourceType": "Goal", "id": "g-mh", "meta": meta("community", "health")},
        {"resourceType": "Goal", "id": "g-ok", "meta": meta("community", "health")},
        _provenance("pv-mh", "https://gw.example/fhir/CarePlan/t-mh/_history/2"),
        _provenance("pv-goal", "Goal/g-mh"),
        _provenance("pv-ok", "CarePlan/t-cp1"),
    )
    base = trust().resources
    contributions = (SourceContribution("community", TRUST, "health", (*base[:2], plan, *extra)),)
    sw = decide(user("LA-SW", TRUST), "TREAT", contributions, (), POLICY, NOW)
    assert visible_ids(sw, contributions) == {"t-p", "t-cp1", "g-ok", "pv-ok"}
    assert {w.reason for w in sw.withheld} == {R.LABEL_RESTRICTED}
    clinician = decide(user("R8000", TRUST), "TREAT", contributions, (), POLICY, NOW)
    assert clinician.effect is Effect.PERMIT
    admin = decide(user("R8008", TRUST), "TREAT", contributions, (), POLICY, NOW)
    assert visible_ids(admin, contributions) == {"t-p"}


def test_source_provenance_keeps_only_what_is_shown() -> None:
    base = trust().resources
    prov = _provenance("pv", "Patient/t-p")
    prov["target"] += [{"reference": "CarePlan/t-cp1"}, {"reference": "CarePlan/t-mh"}]
    contributions = (SourceContribution("community", TRUST, "health", (*base, prov)),)
    d = decide(user("LA-SW", TRUST), "TREAT", contributions, (), POLICY, NOW)
    (shown,) = d.visible(contributions)
    (kept,) = [r for r in shown.resources if r["resourceType"] == "Provenance"]
    assert kept["target"] == [{"reference": "Patient/t-p"}, {"reference": "CarePlan/t-cp1"}]
    assert len(prov["target"]) == 3  # the input is not changed

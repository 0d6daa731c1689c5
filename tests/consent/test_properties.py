"""Properties of decide() over generated records, requesters and directives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from consent.decide import confidentiality, decide, resource_domain
from consent.directives import Directive, DirectiveKind
from consent.model import (
    ClientKind,
    Decision,
    Effect,
    Reason,
    Requester,
    SourceContribution,
    resource_key,
)
from consent.policy import load_policy
from tests.consent.factories import NOW, meta, ods

POLICY = load_policy()
ORGS = ["F81001", "RAT", "LA001", "RXX"]
ROLES = [*POLICY.roles, "R9999", None]
CARE_ROLES = [r for r, rule in POLICY.roles.items() if "TREAT" in rule.purposes]
PURPOSES = ["TREAT", "ETREAT", "CAREMGT", "HOPERAT", None]
DOMAINS = ["health", "social-care"]

orgs = st.sampled_from(ORGS)
labels = st.lists(st.sampled_from(["N", "R", "V", "L"]), max_size=2)
no_labels = st.just(list[str]())


@st.composite
def resource(
    draw: st.DrawFn, source: str, domain: str, i: int, plain: bool = False
) -> dict[str, Any]:
    rtype = draw(st.sampled_from(["Patient", "CarePlan", "CareTeam", "Goal", "Observation"]))
    shown_labels = draw(st.booleans()) if plain else True
    r: dict[str, Any] = {
        "resourceType": rtype,
        "meta": meta(
            source,
            draw(st.sampled_from([domain, *DOMAINS])),
            *draw(labels if shown_labels else no_labels),
        ),
    }
    if draw(st.booleans()) or i == 0:
        r["id"] = f"{source}-{i}"
    if rtype == "Patient" and draw(st.booleans()):
        r["generalPractitioner"] = [ods(draw(orgs))]
    elif rtype == "CarePlan":
        r["author"] = ods(draw(orgs))
    elif rtype == "CareTeam":
        r["participant"] = [{"onBehalfOf": ods(draw(orgs))}]
    return r


@st.composite
def contribution(
    draw: st.DrawFn, source: str, custodian: str | None = None
) -> SourceContribution:
    """``custodian``: the source's organisation, holding at least one plain resource."""
    domain = draw(st.sampled_from(DOMAINS))
    n = draw(st.integers(0 if custodian is None else 1, 5))
    plain = custodian is not None
    rs = tuple(draw(resource(source, domain, i, plain)) for i in range(n))
    if len(rs) > 0 and draw(st.booleans()):  # a source Provenance, as the adapters make one
        targets = [{"reference": resource_key(r, i)} for i, r in enumerate(rs) if "id" in r]
        provenance = {"resourceType": "Provenance", "id": f"{source}-pv", "target": targets}
        rs = (*rs, provenance)
    return SourceContribution(source, custodian or draw(orgs), domain, rs)


@st.composite
def record(draw: st.DrawFn, custodian: str | None = None) -> tuple[SourceContribution, ...]:
    """``custodian``: the first source is that organisation's (a legitimate relationship)."""
    n = draw(st.integers(1, 3))
    return tuple(
        draw(contribution(f"src{i}", custodian if i == 0 else None)) for i in range(n)
    )


@st.composite
def directive(draw: st.DrawFn) -> Directive:
    kind = draw(st.sampled_from(list(DirectiveKind)))
    return Directive(
        consent_id=draw(st.sampled_from(["a", "b", "c"])),
        kind=kind,
        status=draw(st.sampled_from(["active", "active", "inactive", "proposed"])),
        org=None if kind is DirectiveKind.OBJECTION else draw(orgs),
        purposes=draw(st.none() | st.frozensets(st.sampled_from(["TREAT", "ETREAT", "CAREMGT"]))),
        start=draw(st.none() | st.just(NOW - timedelta(days=1)) | st.just(NOW + timedelta(days=1))),
    )


reasons = st.none() | st.sampled_from(["", "  ", "collapsed at home"])
reasons_of_carers = st.none() | st.just("collapsed at home")


@st.composite
def requester(draw: st.DrawFn, carer: bool = False) -> Requester:
    """``carer``: a user in a role that may give direct care (and, asking for emergency
    care, often with a reason: break-glass)."""
    return Requester(
        sub="u",
        role=draw(st.sampled_from(CARE_ROLES if carer else ROLES)),
        org=draw(orgs),
        client_kind=(
            ClientKind.USER
            if carer
            else draw(st.sampled_from([ClientKind.USER, ClientKind.USER, ClientKind.SYSTEM]))
        ),
        break_glass_reason=draw(reasons_of_carers if carer else reasons),
    )


Ask = tuple[Requester, str | None, tuple[SourceContribution, ...]]


@st.composite
def asks(draw: st.DrawFn, purpose: str | None = None) -> Ask:
    """Who asks, for which purpose, about which record. Half the draws are a carer asking
    for direct care at a source's custodian (most are permitted, some filtered, some refused
    by a directive); the other half draw each part alone, as anything (most are denied).
    Without the first half, nine in ten decisions were denials. ``purpose``: always that."""
    if draw(st.booleans()):
        who = draw(requester(carer=True))
        assert who.org is not None
        typical = draw(st.sampled_from(["TREAT", "TREAT", "CAREMGT", "ETREAT"]))
        return who, purpose or typical, draw(record(custodian=who.org))
    chosen = purpose or draw(st.sampled_from(PURPOSES))
    return draw(requester()), chosen, draw(record())


def record_effect(d: Decision) -> Decision:
    event(f"effect: {d.effect.value}")
    event("permitted" if d.effect is not Effect.DENY else "denied")
    return d


priors = st.none() | st.integers(-10, 120).map(lambda m: NOW - timedelta(minutes=m))
directive_lists = st.lists(directive(), max_size=4)


@dataclass(frozen=True)
class Situation:
    """One drawn ask, the person's directives and the caller's prior break-glass grant."""

    ask: Ask
    directives: list[Directive]
    prior: Any

    def decided(self) -> Decision:
        who, purpose, contributions = self.ask
        return record_effect(
            decide(who, purpose, contributions, self.directives, POLICY, NOW, self.prior)
        )


situations = st.builds(Situation, asks(), directive_lists, priors)


def shown(d: Decision, contributions: tuple[SourceContribution, ...]) -> set[tuple[str, str]]:
    return {
        (c.source, str(r.get("id") or f"{r['resourceType']}@{id(r)}"))
        for c in d.visible(contributions)
        for r in c.resources
    }


@settings(max_examples=300, deadline=None)
@given(asks(), directive_lists, directive(), priors)
def test_adding_a_deny_directive_never_widens_access(
    ask: Ask,
    directives: list[Directive],
    extra: Directive,
    prior: Any,
) -> None:
    who, purpose, contributions = ask
    before = record_effect(decide(who, purpose, contributions, directives, POLICY, NOW, prior))
    after = decide(who, purpose, contributions, [*directives, extra], POLICY, NOW, prior)
    assert shown(after, contributions) <= shown(before, contributions)
    if before.effect is Effect.DENY:
        assert after.effect is Effect.DENY


@settings(max_examples=300, deadline=None)
@given(asks(), directive_lists)
def test_break_glass_never_applies_without_a_reason(
    ask: Ask,
    directives: list[Directive],
) -> None:
    who, purpose, contributions = ask
    d = decide(who, purpose, contributions, directives, POLICY, NOW, prior_break_glass=None)
    record_effect(d)
    event("break-glass" if d.break_glass else "no break-glass")
    if d.break_glass:
        assert purpose == "ETREAT"
        assert (who.break_glass_reason or "").strip()
        assert d.break_glass_reason == (who.break_glass_reason or "").strip()
        assert Reason.BREAK_GLASS in d.reasons
    else:
        assert Reason.BREAK_GLASS not in d.reasons


@settings(max_examples=300, deadline=None)
@given(situations)
def test_withheld_never_visible_and_effect_consistent(drawn: Situation) -> None:
    who, _, contributions = drawn.ask
    d = drawn.decided()
    visible = d.visible(contributions)
    originals = {c.source: c.resources for c in contributions}
    keys = set()
    for v in visible:
        for r in v.resources:
            i = next(
                i
                for i, o in enumerate(originals[v.source])
                if o is r or (r["resourceType"] == "Provenance" and o.get("id") == r.get("id"))
            )
            keys.add((v.source, resource_key(r, i)))
    for w in d.withheld:
        assert (w.source, w.key) not in keys
    withheld = {(w.source, w.key) for w in d.withheld}
    for v in visible:
        for r in v.resources:
            for t in r.get("target", []) if r["resourceType"] == "Provenance" else []:
                assert (v.source, t["reference"]) not in withheld
    assert not {c.source for c in visible} & set(d.withheld_sources)

    rule = POLICY.rule_for(who)
    for c in visible:
        for r in c.resources:
            assert confidentiality(r) != "V"
            assert rule is not None
            assert rule.sees_label(resource_domain(r, c.domain), confidentiality(r))
            assert POLICY.level_spec(rule.level).allows(str(r["resourceType"]))

    n_visible = sum(len(c.resources) for c in visible)
    if d.effect is Effect.DENY:
        assert n_visible == 0 and d.reasons
    elif d.effect is Effect.PERMIT:
        assert n_visible and not d.withheld and not d.withheld_sources
    else:
        assert n_visible and (d.withheld or d.withheld_sources) and d.reasons


@settings(max_examples=200, deadline=None)
@given(situations)
def test_decisions_are_deterministic(drawn: Situation) -> None:
    who, purpose, contributions = drawn.ask
    first = drawn.decided()
    second = decide(who, purpose, contributions, list(drawn.directives), POLICY, NOW, drawn.prior)
    assert first == second
    assert first.visible(contributions) == second.visible(contributions)


@settings(max_examples=200, deadline=None)
@given(asks(purpose="TREAT"), directive_lists)
def test_no_permit_without_relationship_or_break_glass(
    ask: Ask, directives: list[Directive]
) -> None:
    from consent.decide import legitimate_relationship

    who, purpose, contributions = ask
    d = record_effect(decide(who, purpose, contributions, directives, POLICY, NOW))
    assert who.org is not None  # requester() always draws an organisation
    related = legitimate_relationship(who.org, contributions) is not None
    event("a legitimate relationship" if related else "no legitimate relationship")
    if not related:
        assert d.effect is Effect.DENY

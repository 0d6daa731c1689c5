"""The rules of the access decision, one function each, each naming the Caldicott principle
it implements. :func:`consent.decide.decide` runs them in order; they are pure and separately
testable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from consent.directives import Directive, DirectiveKind
from consent.model import (
    CARE_DOMAIN_SYSTEM,
    CONFIDENTIALITY_SYSTEM,
    ODS_SYSTEM,
    Level,
    Reason,
    Requester,
    Resource,
    SourceContribution,
    Withheld,
    reference_key,
    resource_key,
)
from consent.policy import BREAK_GLASS_PURPOSE, Policy, RoleRule

_CONFIDENTIALITY_RANK = {"U": 0, "L": 1, "M": 2, "N": 3, "R": 4, "V": 5}


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """Emergency access in use for this request."""

    reason: str | None  # None when continuing an earlier break-glass within its window
    until: datetime


@dataclass(frozen=True, slots=True)
class Denial:
    reason: Reason
    rule: str


def check_role_and_purpose(
    requester: Requester, purpose: str | None, rule: RoleRule | None
) -> Denial | None:
    """Caldicott principle 1 (justify the purpose) and 2 (use only when necessary): the role
    must be one the policy names, the request must state a purpose of use the role may use,
    and the role's level must give access to care data at all."""
    who = "system clients" if requester.client_kind == "system" else f"role {requester.role}"
    if rule is None:
        return Denial(Reason.ROLE_NOT_PERMITTED, f"{who} is not named in the policy")
    if not purpose:
        return Denial(Reason.PURPOSE_MISSING, "no purpose of use was stated")
    if not rule.allows_purpose(purpose):
        return Denial(Reason.PURPOSE_NOT_PERMITTED, f"{who} may not use purpose {purpose}")
    if rule.level is Level.NONE:
        return Denial(Reason.ROLE_NOT_PERMITTED, f"{who} has access level none: no care data")
    return None


def break_glass(
    requester: Requester,
    purpose: str,
    policy: Policy,
    now: datetime,
    prior_break_glass: datetime | None,
) -> BreakGlass | None:
    """Caldicott principle 7 (the duty to share information for individual care is as
    important as the duty to protect confidentiality): emergency access is purpose ETREAT
    with a stated reason, or ETREAT again within the policy's window after the same user
    broke the glass for the same person (``prior_break_glass``, supplied by the caller).
    Without a reason and without a live window there is no break-glass."""
    if purpose != BREAK_GLASS_PURPOSE:
        return None
    duration = policy.break_glass.duration
    reason = (requester.break_glass_reason or "").strip()
    if reason:
        return BreakGlass(reason, now + duration)
    if prior_break_glass is not None and prior_break_glass <= now < prior_break_glass + duration:
        return BreakGlass(None, prior_break_glass + duration)
    return None


def _is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, with the common case (a dict) first: the ABC check
    costs far more, and the policy asks it for every reference of every resource."""
    return type(value) is dict or isinstance(value, Mapping)


def _ods(ref: Any) -> str | None:
    if _is_map(ref):
        ident = ref.get("identifier")
        if _is_map(ident) and ident.get("system") == ODS_SYSTEM:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def legitimate_relationship(org: str, contributions: Iterable[SourceContribution]) -> str | None:
    """Caldicott principle 4 (need to know): the asking organisation must be part of the
    person's care. Returns how it is (for the matched rule), or ``None``.

    It is when it is the registered GP practice of the person (``Patient.generalPractitioner``),
    the custodian of a source that holds them, the author of one of their care plans, or on
    one of their care teams (a participant's ``onBehalfOf`` or an organisation member or the
    managing organisation — which covers the organisation employing an allocated worker).
    """
    for c in contributions:
        if c.custodian == org and c.resources:
            return f"{org} is the custodian of source {c.source}"
        for r in c.resources:
            rtype = r.get("resourceType")
            if rtype == "Patient":
                if any(_ods(gp) == org for gp in _list(r.get("generalPractitioner"))):
                    return f"{org} is the registered GP practice"
            elif rtype == "CarePlan":
                if _ods(r.get("author")) == org:
                    return f"{org} authored a care plan"
            elif rtype == "CareTeam":
                for p in _list(r.get("participant")):
                    if _is_map(p) and org in (
                        _ods(p.get("onBehalfOf")),
                        _ods(p.get("member")),
                    ):
                        return f"{org} is on a care team"
                if any(_ods(m) == org for m in _list(r.get("managingOrganization"))):
                    return f"{org} manages a care team"
    return None


def objection(directives: Iterable[Directive]) -> tuple[Directive, ...]:
    """Caldicott principle 8 (inform people how their information is used, and respect their
    choices) and principle 6 (comply with the law — the right to object): the in-force
    objections that refuse all sharing."""
    return tuple(d for d in directives if d.kind is DirectiveKind.OBJECTION)


def recipient_refused(org: str, directives: Iterable[Directive]) -> tuple[Directive, ...]:
    """Caldicott principles 8 and 6, as :func:`objection`: the in-force directives in which
    the person refused to let the requester's organisation see their record."""
    return tuple(d for d in directives if d.kind is DirectiveKind.REFUSE_RECIPIENT and d.org == org)


def withheld_sources(
    org: str, contributions: Iterable[SourceContribution], directives: Sequence[Directive]
) -> dict[str, tuple[Directive, ...]]:
    """Caldicott principles 8 and 6: sources whose custodian the person asked not to share,
    with the directives that said so. A source is not withheld from its own custodian."""
    out: dict[str, tuple[Directive, ...]] = {}
    for c in contributions:
        if c.custodian == org:
            continue
        hits = tuple(
            d
            for d in directives
            if d.kind is DirectiveKind.WITHHOLD_SOURCE and d.org == c.custodian
        )
        if hits:
            out[c.source] = hits
    return out


def resource_domain(resource: Resource, default: str) -> str:
    """The ``urn:caregateway:care-domain`` tag, else the source's domain."""
    meta = resource.get("meta")
    if _is_map(meta):
        for tag in _list(meta.get("tag")):
            if _is_map(tag) and tag.get("system") == CARE_DOMAIN_SYSTEM:
                code = tag.get("code")
                if isinstance(code, str):
                    return code
    return default


def confidentiality(resource: Resource) -> str:
    """The resource's most restrictive v3-Confidentiality label; unlabelled counts as ``N``,
    and ``U``/``L``/``M`` (less restrictive than normal) count as ``N`` too."""
    meta = resource.get("meta")
    codes = ["N"]
    if _is_map(meta):
        codes += [
            str(s.get("code"))
            for s in _list(meta.get("security"))
            if _is_map(s)
            and s.get("system") == CONFIDENTIALITY_SYSTEM
            and s.get("code") in _CONFIDENTIALITY_RANK
        ]
    return max(codes, key=_CONFIDENTIALITY_RANK.__getitem__)


def minimum_necessary(
    rule: RoleRule, policy: Policy, contribution: SourceContribution
) -> tuple[Withheld, ...]:
    """Caldicott principle 3 (use the minimum necessary) and 4 (need to know): remove the
    resource types the role's level does not include, and resources carrying a
    confidentiality label the role may not see in that resource's domain (break-glass
    never changes this).

    What would betray a removed resource goes with it, for the same reason: the goals
    of a removed ``CarePlan``, and a ``Provenance`` all of whose targets were removed (one
    that still speaks for something shown keeps only those targets: see
    :meth:`Decision.visible`).
    """
    key = (id(rule), id(policy), id(contribution.resources), contribution.source)
    held = _minimum_necessary_seen.get(key)
    if (
        held is not None
        and held[0] is rule
        and held[1] is policy
        and held[2] is contribution.resources
        and held[3] == contribution.domain
    ):
        return held[4]
    withheld = _minimum_necessary(rule, policy, contribution)
    _minimum_necessary_seen[key] = (
        rule,
        policy,
        contribution.resources,
        contribution.domain,
        withheld,
    )
    while len(_minimum_necessary_seen) > _MINIMUM_NECESSARY_REMEMBERED:
        del _minimum_necessary_seen[next(iter(_minimum_necessary_seen))]
    return withheld


# What minimum_necessary answered, by the identity of its arguments (bounded, oldest out).
# It is a pure function of them, and the gateway hands the same resource tuples for an
# unchanged cached record on every read, so a warm read does not walk every resource's labels
# again; a policy, rule or contribution that is not the very same object is decided afresh.
# The arguments are held, so an ``id`` is never mistaken for a later object's.
_MINIMUM_NECESSARY_REMEMBERED = 512
_minimum_necessary_seen: dict[
    tuple[int, int, int, str],
    tuple[RoleRule, Policy, tuple[Resource, ...] | Sequence[Resource], str, tuple[Withheld, ...]],
] = {}


def _minimum_necessary(
    rule: RoleRule, policy: Policy, contribution: SourceContribution
) -> tuple[Withheld, ...]:
    level = policy.level_spec(rule.level)
    level_reason = (
        Reason.LEVEL_DEMOGRAPHICS_ONLY
        if rule.level is Level.DEMOGRAPHICS
        else Reason.ROLE_NOT_PERMITTED
    )
    removed: dict[str, Reason] = {}
    keys = [resource_key(r, i) for i, r in enumerate(contribution.resources)]
    for key, r in zip(keys, contribution.resources, strict=True):
        if not level.allows(str(r.get("resourceType"))):
            removed[key] = level_reason
        elif not rule.sees_label(resource_domain(r, contribution.domain), confidentiality(r)):
            removed[key] = Reason.LABEL_RESTRICTED
    if not removed:
        return ()  # nothing removed: nothing depends on a removed resource either

    return with_dependents(contribution, removed, keys)


def with_dependents(
    contribution: SourceContribution,
    removed: Mapping[str, Reason],
    keys: Sequence[str] | None = None,
) -> tuple[Withheld, ...]:
    """``removed`` (resource key → reason) and what would betray it: the goals of a removed
    ``CarePlan``, and a ``Provenance`` all of whose targets were removed. ``keys`` are the
    contribution's resource keys when the caller has them already (they are not cheap)."""
    removed = dict(removed)
    if keys is None:
        keys = [resource_key(r, i) for i, r in enumerate(contribution.resources)]
    goals_of_removed_plans: dict[str, Reason] = {}
    for key, r in zip(keys, contribution.resources, strict=True):
        reason = removed.get(key)
        if reason is not None and r.get("resourceType") == "CarePlan":
            for goal in _list(r.get("goal")):
                gkey = reference_key(goal)
                if gkey is not None:
                    goals_of_removed_plans.setdefault(gkey, reason)
    for dependent_type in ("Goal", "Provenance"):
        for key, r in zip(keys, contribution.resources, strict=True):
            if key in removed or r.get("resourceType") != dependent_type:
                continue
            if dependent_type == "Goal" and key in goals_of_removed_plans:
                removed[key] = goals_of_removed_plans[key]
            elif dependent_type == "Provenance":
                targets = [reference_key(t) for t in _list(r.get("target"))]
                if targets and all(t in removed for t in targets):
                    removed[key] = removed[str(targets[0])]
    source = contribution.source
    return tuple(Withheld(key, removed[key], source) for key in keys if key in removed)

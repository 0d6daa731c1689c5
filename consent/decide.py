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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent.directives import Directive, DirectiveKind
from consent.model import (
    CARE_DOMAIN_SYSTEM,
    CONFIDENTIALITY_SYSTEM,
    ODS_SYSTEM,
    Decision,
    Effect,
    Level,
    Reason,
    Requester,
    Resource,
    SourceContribution,
    Withheld,
    reference_key,
    resource_key,
    source_key,
)
from consent.policy import BREAK_GLASS_PURPOSE, Policy, RoleRule

_CONFIDENTIALITY_RANK = {"U": 0, "L": 1, "M": 2, "N": 3, "R": 4, "V": 5}


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """Emergency access in use for this request."""

    reason: str | None  # None when continuing an earlier break-glass within its window
    until: datetime


@dataclass(frozen=True, slots=True)
class _Denial:
    reason: Reason
    rule: str


# --- rules --------------------------------------------------------------------------------


def check_role_and_purpose(
    requester: Requester, purpose: str | None, rule: RoleRule | None
) -> _Denial | None:
    """Caldicott principle 1 (justify the purpose) and 2 (use only when necessary): the role
    must be one the policy names, the request must state a purpose of use the role may use,
    and the role's level must give access to care data at all."""
    who = "system clients" if requester.client_kind == "system" else f"role {requester.role}"
    if rule is None:
        return _Denial(Reason.ROLE_NOT_PERMITTED, f"{who} is not named in the policy")
    if not purpose:
        return _Denial(Reason.PURPOSE_MISSING, "no purpose of use was stated")
    if not rule.allows_purpose(purpose):
        return _Denial(Reason.PURPOSE_NOT_PERMITTED, f"{who} may not use purpose {purpose}")
    if rule.level is Level.NONE:
        return _Denial(Reason.ROLE_NOT_PERMITTED, f"{who} has access level none: no care data")
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


def _ods(ref: Any) -> str | None:
    if isinstance(ref, Mapping):
        ident = ref.get("identifier")
        if isinstance(ident, Mapping) and ident.get("system") == ODS_SYSTEM:
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
                    if isinstance(p, Mapping) and org in (
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
    if isinstance(meta, Mapping):
        for tag in _list(meta.get("tag")):
            if isinstance(tag, Mapping) and tag.get("system") == CARE_DOMAIN_SYSTEM:
                code = tag.get("code")
                if isinstance(code, str):
                    return code
    return default


def confidentiality(resource: Resource) -> str:
    """The resource's most restrictive v3-Confidentiality label; unlabelled counts as ``N``,
    and ``U``/``L``/``M`` (less restrictive than normal) count as ``N`` too."""
    meta = resource.get("meta")
    codes = ["N"]
    if isinstance(meta, Mapping):
        codes += [
            str(s.get("code"))
            for s in _list(meta.get("security"))
            if isinstance(s, Mapping)
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
    level = policy.level_spec(rule.level)
    level_reason = (
        Reason.LEVEL_DEMOGRAPHICS_ONLY
        if rule.level is Level.DEMOGRAPHICS
        else Reason.ROLE_NOT_PERMITTED
    )
    source = contribution.source
    removed: dict[str, Reason] = {}
    for i, r in enumerate(contribution.resources):
        key = resource_key(r, i)
        if not level.allows(str(r.get("resourceType"))):
            removed[key] = level_reason
        elif not rule.sees_label(resource_domain(r, contribution.domain), confidentiality(r)):
            removed[key] = Reason.LABEL_RESTRICTED

    goals_of_removed_plans: dict[str, Reason] = {}
    for i, r in enumerate(contribution.resources):
        reason = removed.get(resource_key(r, i))
        if reason is not None and r.get("resourceType") == "CarePlan":
            for goal in _list(r.get("goal")):
                gkey = reference_key(goal)
                if gkey is not None:
                    goals_of_removed_plans.setdefault(gkey, reason)
    for dependent_type in ("Goal", "Provenance"):
        for i, r in enumerate(contribution.resources):
            key = resource_key(r, i)
            if key in removed or r.get("resourceType") != dependent_type:
                continue
            if dependent_type == "Goal" and key in goals_of_removed_plans:
                removed[key] = goals_of_removed_plans[key]
            elif dependent_type == "Provenance":
                targets = [reference_key(t) for t in _list(r.get("target"))]
                if targets and all(t in removed for t in targets):
                    removed[key] = removed[str(targets[0])]
    return tuple(
        Withheld(resource_key(r, i), removed[resource_key(r, i)], source)
        for i, r in enumerate(contribution.resources)
        if resource_key(r, i) in removed
    )


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
) -> Decision:
    """Decide what ``requester`` may see of one person's record for ``purpose`` at ``now``.

    ``contributions`` are every source's resources about the person (before merging);
    ``directives`` are the person's consent directives (any status: only those in force for
    this purpose and time apply); ``prior_break_glass`` is when this user last broke the glass
    for this person, if the caller knows. Pure: same arguments, same decision.
    """
    version = policy.version
    rule = policy.rule_for(requester)
    denial = check_role_and_purpose(requester, purpose, rule)
    if denial is not None or rule is None or not purpose:
        d = denial or _Denial(Reason.ROLE_NOT_PERMITTED, "no rule")
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

    relationship = legitimate_relationship(requester.org, contributions)
    if bg is not None:
        reasons.append(Reason.BREAK_GLASS)
    if relationship is None:
        if bg is None:
            return deny(
                Reason.NO_LEGITIMATE_RELATIONSHIP,
                f"{requester.org} has no legitimate relationship with the person",
            )
        overridden.append("no legitimate relationship")

    in_force = [d for d in directives if d.in_force(purpose, now)]

    objections = objection(in_force)
    if objections:
        applied += [d.consent_id for d in objections]
        if bg is None or not policy.break_glass.overrides_objection:
            return deny(Reason.PATIENT_OBJECTED, "the person has objected to sharing")
        overridden.append("the person's objection")

    refusals = recipient_refused(requester.org, in_force)
    if refusals:
        applied += [d.consent_id for d in refusals]
        if bg is None or not policy.break_glass.overrides_recipient_refusal:
            return deny(
                Reason.RECIPIENT_REFUSED_BY_PATIENT,
                f"the person has refused to let {requester.org} see their record",
            )
        overridden.append(f"the person's refusal of {requester.org}")

    dropped = withheld_sources(requester.org, contributions, in_force)
    withheld: list[Withheld] = []
    for source, hits in dropped.items():
        applied += [d.consent_id for d in hits]
        withheld.append(Withheld(source_key(source), Reason.SOURCE_WITHHELD_BY_PATIENT, source))
    shown = [c for c in contributions if c.source not in dropped]
    for c in shown:
        withheld += minimum_necessary(rule, policy, c)
    reasons += [w.reason for w in withheld]

    removed = {(w.source, w.key) for w in withheld}
    any_visible = any(
        (c.source, resource_key(r, i)) not in removed
        for c in shown
        for i, r in enumerate(c.resources)
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

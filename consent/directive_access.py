"""Who may read and change a person's consent directives: decided like any other access.

A person's directives say which organisations they refuse and whose records they withhold,
and changing one changes who sees their record. So the Consent API is decided here, by a
pure function, as reads of the record are by :func:`consent.decide.decide`::

    denial = directive_role_denial(requester, purpose, policy)   # before the body is read
    if needs_relationship(requester, purpose, policy):
        contributions = ...                                        # fetch the record
    decision = decide_directive_access(
        requester, purpose, DirectiveInteraction.UPDATE, contributions,
        {"Consent/abc/_history/2": parse_consent(stored)}, policy,
    )

Rules, in order; the first that denies decides:

1. the role is one the policy lets record directives, stating a purpose the role may use
   (``role-not-permitted``, ``purpose-missing``, ``purpose-not-permitted``);
2. a legitimate relationship with the person (:func:`consent.rules.legitimate_relationship`,
   the very rule of reads), unless the role does information governance work
   (``directives_without_relationship``) under ``HOPERAT``, or the caller is the person
   themself (:func:`is_the_person`; they are decided by :mod:`consent.patient` instead of a
   role: only their own directives, ``not-own-record`` otherwise, reading them at ``P5``,
   changing them at ``P9`` by default) — else ``no-legitimate-relationship``. Break-glass never
   stands in for it: emergency care needs the record, not the power to change its rules;
3. the organisation a directive refuses (an ``IRCP`` deny naming it, whatever the
   directive's status, period or purpose) can never read nor change that directive
   (``recipient-refused-by-patient``) — whoever asks for it there, IG roles included. A
   search leaves such directives out (``permit-filtered``: they are neither returned nor
   counted, as withheld records are not), where a read, a version read, a history or a
   change of one is refused.

Creating a directive is checked by rules 1 and 2 only: a person may tell the very
organisation they refuse that they refuse it, and it may write that down (its answer shows
it nothing it was not just told). Once stored, rule 3 applies to it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

from consent.directives import Directive, DirectiveKind
from consent.model import Decision, Effect, Reason, Requester, SourceContribution, Withheld
from consent.patient import PatientNeed, is_patient, patient_denial
from consent.policy import IG_PURPOSE, Policy, RoleRule
from consent.refusals import deny as _deny
from consent.refusals import no_relationship, role_with_purpose
from consent.refusals import who as _who
from consent.rules import legitimate_relationship

DIRECTIVES_SOURCE = "consent-directives"
"""``Withheld.source`` of a directive left out of a search (there is no source system)."""


class DirectiveInteraction(enum.StrEnum):
    READ = "read"  # read, vread and _history of one directive
    SEARCH = "search"  # a person's directives
    CREATE = "create"
    UPDATE = "update"  # a change, e.g. a withdrawal (status inactive)


def _rule(requester: Requester, purpose: str | None, policy: Policy) -> RoleRule | Decision:
    rule = role_with_purpose(
        requester, purpose, policy, lambda r: r.may_record_directives, "record directives"
    )
    if isinstance(rule, Decision) or (purpose and rule.allows_purpose(purpose)):
        return rule
    why = f"{_who(requester)} may not use purpose {purpose}"
    return _deny(Reason.PURPOSE_NOT_PERMITTED, why, policy)


def _patient_need(interaction: DirectiveInteraction | None) -> PatientNeed:
    changes = interaction in (DirectiveInteraction.CREATE, DirectiveInteraction.UPDATE)
    return PatientNeed.CHANGE_DIRECTIVES if changes else PatientNeed.DIRECTIVES


def directive_role_denial(
    requester: Requester,
    purpose: str | None,
    policy: Policy,
    interaction: DirectiveInteraction | None = None,
) -> Decision | None:
    """Rule 1 alone: the refusal when the role may not touch directives at all, else None.
    The API asks this before it reads a body, so a role with no business here learns nothing
    about what it sent. For the person themself: the ``patient`` section, their purpose and
    their identity proofing for ``interaction`` (:func:`consent.patient.patient_denial`)."""
    if is_patient(requester):
        return patient_denial(requester, purpose, None, policy, _patient_need(interaction))
    rule = _rule(requester, purpose, policy)
    return rule if isinstance(rule, Decision) else None


def is_the_person(requester: Requester, person: str | None) -> bool:
    """Whether the caller is the person the directives are about: a ``client_kind: patient``
    token (``specs/access-token.md``) whose own NHS number is ``person``."""
    return is_patient(requester) and requester.patient is not None and requester.patient == person


def _ig_work(rule: RoleRule, purpose: str | None) -> bool:
    return rule.directives_without_relationship and purpose == IG_PURPOSE


def needs_relationship(
    requester: Requester, purpose: str | None, policy: Policy, person: str | None = None
) -> bool:
    """Whether rule 2 must look at the person's record: false for IG work under ``HOPERAT``
    and for the person themself, so those need no source to answer."""
    if is_patient(requester):  # their own, or refused without looking (not-own-record)
        return False
    rule = policy.rule_for(requester)
    if rule is not None and _ig_work(rule, purpose):
        return False
    return not is_the_person(requester, person)


def refuses(org: str, directives: Sequence[Directive]) -> bool:
    """Whether these directives (one Consent's) refuse ``org`` as a recipient, in any status."""
    return any(d.kind is DirectiveKind.REFUSE_RECIPIENT and d.org == org for d in directives)


def decide_directive_access(
    requester: Requester,
    purpose: str | None,
    interaction: DirectiveInteraction,
    contributions: Sequence[SourceContribution],
    targets: Mapping[str, Sequence[Directive]],
    policy: Policy,
    *,
    person: str | None = None,
) -> Decision:
    """Decide whether ``requester`` may carry out ``interaction`` on a person's directives.

    ``contributions`` are the sources' records of the person (for the relationship; may be
    empty when :func:`needs_relationship` is false). ``targets`` are the directives concerned,
    keyed by reference (``Consent/{id}`` or ``Consent/{id}/_history/{v}``): each stored
    Consent (version) read, searched or about to be changed, parsed. For a search, the keys
    of those left out are in :attr:`Decision.withheld`. Pure: same arguments, same decision.
    """
    if is_patient(requester):
        denial = patient_denial(requester, purpose, person, policy, _patient_need(interaction))
        if denial is not None:
            return denial
        text = f"permitted: the person themself to {interaction} their own directives"
        return Decision(Effect.PERMIT, (), policy.version, text)
    rule = _rule(requester, purpose, policy)
    if isinstance(rule, Decision):
        return rule
    if not requester.org:
        return _deny(Reason.ROLE_NOT_PERMITTED, "the requester acts for no organisation", policy)
    org: str = requester.org
    who = f"{_who(requester)} at {org} for {purpose}"

    if _ig_work(rule, purpose):
        basis = "information governance work"
    elif is_the_person(requester, person):
        basis = "the person themself"
    else:
        found = legitimate_relationship(org, contributions)
        if found is None:
            return no_relationship(org, policy)
        basis = found

    refused = (
        []
        if interaction is DirectiveInteraction.CREATE
        else [key for key, directives in targets.items() if refuses(org, directives)]
    )
    applied = [d.consent_id for key in refused for d in targets[key][:1]]
    if refused and interaction is not DirectiveInteraction.SEARCH:
        return _deny(
            Reason.RECIPIENT_REFUSED_BY_PATIENT,
            f"the directive refuses {org}, which may neither read nor change it",
            policy,
            applied,
        )
    text = f"permitted: {who} to {interaction} directives; {basis}"
    if refused:
        return Decision(
            Effect.PERMIT_FILTERED,
            (Reason.RECIPIENT_REFUSED_BY_PATIENT,),
            policy.version,
            f"{text}; left out: directives refusing {org}",
            withheld=tuple(
                Withheld(key, Reason.RECIPIENT_REFUSED_BY_PATIENT, DIRECTIVES_SOURCE)
                for key in refused
            ),
            directives_applied=tuple(dict.fromkeys(applied)),
        )
    return Decision(Effect.PERMIT, (), policy.version, text)

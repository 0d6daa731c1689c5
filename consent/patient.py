"""The person's own access to their shared care record: decided like every other access.

A ``client_kind: patient`` token (NHS login, or the demo picker's person path) carries the
person's own NHS number. What they may reach and see is the policy file's ``patient``
section (:class:`consent.policy.PatientRule`), decided here, purely::

    denial = patient_denial(requester, purpose, person, policy, PatientNeed.CARE_DATA)
    decision = decide_for_patient(requester, purpose, contributions, policy, person=person)

Rules, in order; the first that denies decides:

1. the policy has a ``patient`` section and the purpose is one it allows (``PATRQT``)
   (``role-not-permitted``, ``purpose-missing``, ``purpose-not-permitted``);
2. the record is the person's own (``not-own-record``) — any other NHS number is refused
   whatever exists under it;
3. NHS login has proven who they are to the level this needs (``P9`` for care data and
   the access log, ``P5`` to see their own directives, ``P9`` to change them:
   ``identity-proofing-insufficient``). Asked after the record is fetched, so a person at
   ``P5`` learns that a record exists (``403``) or that none does (``404``), nothing more.

Then what is withheld from them (``withheld-from-patient``, for the audit trail): resource
types outside ``resource_types``, labels they may not see, anything carrying one of
``withhold_labels`` (``v3-ActCode#NOPAT``, "no disclosure to patient", as GP Connect marks
it), and restricted (``R``/``V``) resources of a ``withhold_restricted_categories`` category
(safeguarding). The goals and provenance of a withheld plan go with it.

What is withheld is **not announced** (``Decision.announce_withheld`` is false): no
``suppressed`` outcome, no ``403`` on a direct read, nothing counted — knowing that
something is hidden can itself cause the harm the withholding prevents (``specs/behaviour``).
Nothing visible at all is still a permit: the answer is then simply empty (``404``).

The person's own consent directives do not apply to their own access: an objection to
*sharing* their record does not stop them seeing it, and a withheld source is withheld from
others, not from the person it is about.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

from consent.model import (
    ClientKind,
    Decision,
    Effect,
    Reason,
    Requester,
    Resource,
    SourceContribution,
    Withheld,
    resource_key,
)
from consent.policy import PROOFING_RANK, Coding, PatientRule, Policy
from consent.rules import confidentiality, resource_domain, with_dependents

_RESTRICTED = frozenset({"R", "V"})


class PatientNeed(enum.StrEnum):
    """What the person is asking to do; each has its own proofing level in the policy."""

    CARE_DATA = "care-data"
    ACCESS_LOG = "access-log"
    DIRECTIVES = "directives"
    CHANGE_DIRECTIVES = "change-directives"


def is_patient(requester: Requester) -> bool:
    return requester.client_kind is ClientKind.PATIENT


def _deny(reason: Reason, why: str, policy: Policy) -> Decision:
    return Decision(Effect.DENY, (reason,), policy.version, f"denied: {why}")


def _needed_level(rule: PatientRule, need: PatientNeed) -> str:
    levels = rule.proofing
    return {
        PatientNeed.CARE_DATA: levels.care_data,
        PatientNeed.ACCESS_LOG: levels.access_log,
        PatientNeed.DIRECTIVES: levels.directives,
        PatientNeed.CHANGE_DIRECTIVES: levels.change_directives,
    }[need]


def own_record_denial(requester: Requester, person: str | None, policy: Policy) -> Decision | None:
    """Rule 2 alone: ``not-own-record`` when the person asks about anyone but themself.

    The gateway asks it before it looks the other NHS number up, so whether anybody is known
    under it is never told."""
    if person is None or requester.patient == person:
        return None
    return _deny(Reason.NOT_OWN_RECORD, "the person may reach only their own record", policy)


def patient_denial(
    requester: Requester,
    purpose: str | None,
    person: str | None,
    policy: Policy,
    need: PatientNeed,
    *,
    check_proofing: bool = True,
) -> Decision | None:
    """Rules 1-3 (``person`` ``None``: rule 2 is left for later; ``check_proofing`` false:
    rule 3 is). The refusal, or ``None`` when the person may go on."""
    rule = policy.patient
    if rule is None:
        return _deny(Reason.ROLE_NOT_PERMITTED, "the policy gives the person no access", policy)
    if not purpose:
        return _deny(Reason.PURPOSE_MISSING, "no purpose of use was stated", policy)
    if not rule.allows_purpose(purpose):
        return _deny(
            Reason.PURPOSE_NOT_PERMITTED, f"the person may not use purpose {purpose}", policy
        )
    if requester.patient is None:
        return _deny(Reason.NOT_OWN_RECORD, "the token names no person", policy)
    own = own_record_denial(requester, person, policy)
    if own is not None:
        return own
    if check_proofing:
        needed = _needed_level(rule, need)
        have = PROOFING_RANK.get(requester.proofing_level or "P0", 0)
        if have < PROOFING_RANK[needed]:
            return _deny(
                Reason.PROOFING_INSUFFICIENT,
                f"{need} needs identity proofing {needed}; the person's login has "
                f"{requester.proofing_level or 'P0'}",
                policy,
            )
    return None


def _codings(resource: Resource, field: str) -> list[Mapping[str, Any]]:
    if field == "security":
        meta = resource.get("meta")
        raw = meta.get("security") if isinstance(meta, Mapping) else None
        return [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []
    out: list[Mapping[str, Any]] = []
    concepts = resource.get("category")
    for concept in concepts if isinstance(concepts, list) else ():
        codings = concept.get("coding") if isinstance(concept, Mapping) else None
        out += [c for c in codings if isinstance(c, Mapping)] if isinstance(codings, list) else []
    return out


def _has(codings: Sequence[Mapping[str, Any]], wanted: Sequence[Coding]) -> bool:
    return any(
        c.get("system") == w.system and c.get("code") == w.code for c in codings for w in wanted
    )


def _withheld(
    rule: PatientRule, contribution: SourceContribution
) -> tuple[tuple[Withheld, ...], set[str]]:
    removed: dict[str, Reason] = {}
    why: set[str] = set()
    for i, r in enumerate(contribution.resources):
        key = resource_key(r, i)
        label = confidentiality(r)
        if not rule.allows_type(str(r.get("resourceType"))):
            why.add("resource type")
        elif _has(_codings(r, "security"), rule.withhold_labels):
            why.add("no-disclosure-to-patient label")
        elif label in _RESTRICTED and _has(
            _codings(r, "category"), rule.withhold_restricted_categories
        ):
            why.add("restricted category")
        elif not rule.sees_label(resource_domain(r, contribution.domain), label):
            why.add(f"label {label}")
        else:
            continue
        removed[key] = Reason.WITHHELD_FROM_PATIENT
    return with_dependents(contribution, removed), why


def decide_for_patient(
    requester: Requester,
    purpose: str | None,
    contributions: Sequence[SourceContribution],
    policy: Policy,
    *,
    person: str | None,
) -> Decision:
    """What the person may see of their own record (``person``): see the module docstring.
    Pure: same arguments, same decision."""
    denial = patient_denial(requester, purpose, person, policy, PatientNeed.CARE_DATA)
    if denial is not None:
        return denial
    rule = policy.patient
    assert rule is not None  # patient_denial refuses a policy without the section
    withheld: list[Withheld] = []
    why: set[str] = set()
    for c in contributions:
        found, reasons = _withheld(rule, c)
        withheld += found
        why |= reasons
    text = f"permitted: the person themself, their own record, for {purpose}"
    if withheld:
        text += f"; withheld from them (not announced): {', '.join(sorted(why))}"
    return Decision(
        Effect.PERMIT_FILTERED if withheld else Effect.PERMIT,
        (Reason.WITHHELD_FROM_PATIENT,) if withheld else (),
        policy.version,
        text,
        withheld=tuple(withheld),
        announce_withheld=False,
    )

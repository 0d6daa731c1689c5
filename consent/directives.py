"""A person's consent directives: FHIR R4 ``Consent`` dicts in, :class:`Directive` values out.

The encoding is ``specs/consent-directives.md``:

=============================  ===========================================================
the person says                 Consent
=============================  ===========================================================
do not share my record          ``policyRule`` OPTOUT, ``provision.type`` deny
do not share what X holds       ``policyRule`` OPTIN, ``provision`` permit with a nested deny
                                whose actor role is ``CST`` (custodian) and reference X
do not let Y see my record      the same with actor role ``IRCP`` (information recipient)
=============================  ===========================================================

A nested deny provision may narrow itself with ``purpose`` and ``period``.

Usage::

    problems = validate_consent(body)      # [] or messages for a 422
    directives = parse_consent(stored)     # tuple[Directive, ...]; raises InvalidConsent

Only ``active`` directives are enforced (:meth:`Directive.in_force`); ``inactive`` ones are
kept for the record, and ``proposed``/``rejected``/``entered-in-error``/``draft`` never apply.

Validation first checks the limits of :mod:`consent.limits` (one bounded walk), so nothing
after it recurses into or loops over an oversized resource; periods are read by
:func:`consent.instants.parse_instant`, which never overflows at the ends of the calendar.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent.instants import parse_instant
from consent.limits import limit_problems
from consent.model import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from consent.policy import PURPOSES_OF_USE
from vocabulary import ACT_CODE_SYSTEM as ACT_CODE_SYSTEM
from vocabulary import PURPOSE_SYSTEM as PURPOSE_SYSTEM

SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACCEPTED_CATEGORIES: frozenset[tuple[str, str]] = frozenset(
    {("http://loinc.org", "59284-0"), (ACT_CODE_SYSTEM, "INFA")}
)
STATUSES: frozenset[str] = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)


class DirectiveKind(enum.StrEnum):
    OBJECTION = "objection"  # OPTOUT: do not share my record
    WITHHOLD_SOURCE = "withhold-source"  # CST: do not share what this organisation holds
    REFUSE_RECIPIENT = "refuse-recipient"  # IRCP: do not let this organisation see it


@dataclass(frozen=True, slots=True)
class Directive:
    """One enforceable rule from a Consent (a Consent may yield several).

    ``org`` is the ODS code of the custodian or recipient (``None`` for an objection).
    ``purposes`` ``None`` means every purpose; ``start``/``end`` ``None`` mean open-ended.
    """

    consent_id: str
    kind: DirectiveKind
    status: str
    patient: str | None = None
    org: str | None = None
    purposes: frozenset[str] | None = None
    start: datetime | None = None
    end: datetime | None = None

    def in_force(self, purpose: str, now: datetime) -> bool:
        """Active, and the request's purpose and time fall within the provision."""
        if self.status != "active":
            return False
        if self.purposes is not None and purpose not in self.purposes:
            return False
        if self.start is not None and now < self.start:
            return False
        return not (self.end is not None and now > self.end)


class InvalidConsent(ValueError):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


# --- reading helpers ----------------------------------------------------------------------


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, Mapping)] if isinstance(codings, list) else []


def _has_coding(concept: Any, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in _codings(concept))


def _policy_rule_code(resource: Mapping[str, Any]) -> str | None:
    for c in _codings(resource.get("policyRule")):
        if c.get("system") == ACT_CODE_SYSTEM and c.get("code") in ("OPTOUT", "OPTIN"):
            return str(c["code"])
    return None


def _nhs_number_ok(value: str) -> bool:
    # ASCII only: str.isdigit() is also true of other scripts' digits, which int() reads.
    if len(value) != 10 or not (value.isascii() and value.isdigit()):
        return False
    total = sum(int(d) * w for d, w in zip(value[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(value[9])


def patient_nhs_number(resource: Mapping[str, Any]) -> str | None:
    """The NHS number in ``Consent.patient`` (identifier or ``Patient/{nhs}`` form)."""
    ref = resource.get("patient")
    if not isinstance(ref, Mapping):
        return None
    ident = ref.get("identifier")
    if isinstance(ident, Mapping) and ident.get("system") == NHS_NUMBER_SYSTEM:
        value = ident.get("value")
        return value if isinstance(value, str) else None
    return _referenced_nhs(ref)


def _referenced_nhs(ref: Mapping[str, Any]) -> str | None:
    reference = ref.get("reference")
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return reference.removeprefix("Patient/")
    return None


def _patient_disagrees(resource: Mapping[str, Any]) -> bool:
    """``Consent.patient`` names one person by identifier and another by reference (or a
    reference that is not ``Patient/{nhs}``): which of them the directive is about cannot
    be told, so it is refused rather than guessed."""
    ref = resource.get("patient")
    if not isinstance(ref, Mapping) or "reference" not in ref or "identifier" not in ref:
        return False
    return _referenced_nhs(ref) != patient_nhs_number(resource)


def _ods(reference: Any) -> str | None:
    if not isinstance(reference, Mapping):
        return None
    ident = reference.get("identifier")
    if isinstance(ident, Mapping) and ident.get("system") == ODS_SYSTEM:
        value = ident.get("value")
        return value if isinstance(value, str) and value else None
    return None


def _period(provision: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    period = provision.get("period")
    if not isinstance(period, Mapping):
        return None, None
    start = parse_instant(period["start"], end=False) if "start" in period else None
    end = parse_instant(period["end"], end=True) if "end" in period else None
    return start, end


def _purposes(provision: Mapping[str, Any]) -> frozenset[str] | None:
    raw = provision.get("purpose")
    if not isinstance(raw, list) or not raw:
        return None
    return frozenset(str(p.get("code")) for p in raw if isinstance(p, Mapping))


def _narrow(inner: frozenset[str] | None, outer: frozenset[str] | None) -> frozenset[str] | None:
    if inner is None:
        return outer
    return inner if outer is None else inner & outer


def _actor_role(actor: Mapping[str, Any]) -> str | None:
    for c in _codings(actor.get("role")):
        if c.get("system") == PARTICIPATION_SYSTEM and c.get("code") in ("CST", "IRCP"):
            return str(c["code"])
    return None


# --- validation ---------------------------------------------------------------------------


def _validate_provision_limits(provision: Mapping[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    raw_purposes = provision.get("purpose", [])
    if not isinstance(raw_purposes, list):
        problems.append(f"{where}.purpose must be a list of Codings")
    else:
        for i, p in enumerate(raw_purposes):
            code = p.get("code") if isinstance(p, Mapping) else None
            if code not in PURPOSES_OF_USE:
                problems.append(f"{where}.purpose[{i}]: {code!r} is not a PurposeOfUse code")
            elif p.get("system", PURPOSE_SYSTEM) != PURPOSE_SYSTEM:
                problems.append(f"{where}.purpose[{i}].system must be {PURPOSE_SYSTEM}")
    period = provision.get("period")
    if period is not None:
        if not isinstance(period, Mapping):
            problems.append(f"{where}.period must be a Period")
        else:
            try:
                start, end = _period(provision)
            except ValueError as exc:
                problems.append(f"{where}.period: not a valid FHIR dateTime ({exc})")
            else:
                if start is not None and end is not None and end < start:
                    problems.append(f"{where}.period: end is before start")
    return problems


def _validate_nested_deny(provision: Mapping[str, Any], where: str) -> list[str]:
    problems = _validate_provision_limits(provision, where)
    actors = provision.get("actor")
    if not isinstance(actors, list) or len(actors) != 1 or not isinstance(actors[0], Mapping):
        return [
            *problems,
            f"{where}.actor must hold exactly one actor: the custodian (CST) whose records "
            "are withheld or the recipient (IRCP) who is refused",
        ]
    actor = actors[0]
    if _actor_role(actor) is None:
        problems.append(f"{where}.actor[0].role must be {PARTICIPATION_SYSTEM} CST or IRCP")
    if _ods(actor.get("reference")) is None:
        problems.append(
            f"{where}.actor[0].reference must name an organisation by identifier "
            f"(system {ODS_SYSTEM})"
        )
    for unsupported in ("class", "code", "data", "dataPeriod", "securityLabel", "action"):
        if unsupported in provision:
            problems.append(f"{where}.{unsupported} is not supported in a directive")
    return problems


def validate_consent(resource: Any) -> list[str]:
    """Rule violations that make a well-formed Consent unusable (answer ``422``); ``[]`` if
    it can be stored and enforced. Messages name the element, never the person."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Consent":
        return ["resourceType must be Consent"]
    problems = limit_problems(resource)
    if problems:
        return problems
    status = resource.get("status")
    if status not in STATUSES:
        problems.append(f"Consent.status must be one of {', '.join(sorted(STATUSES))}")
    if not _has_coding(resource.get("scope"), SCOPE_SYSTEM, "patient-privacy"):
        problems.append(f"Consent.scope must be {SCOPE_SYSTEM}#patient-privacy")
    categories = resource.get("category")
    if not isinstance(categories, list) or not any(
        (c.get("system"), c.get("code")) in ACCEPTED_CATEGORIES
        for cat in categories
        for c in _codings(cat)
    ):
        problems.append(
            f"Consent.category must include http://loinc.org#59284-0 or {ACT_CODE_SYSTEM}#INFA"
        )
    nhs = patient_nhs_number(resource)
    if nhs is None:
        problems.append(
            f"Consent.patient must be an identifier with system {NHS_NUMBER_SYSTEM} "
            "or a reference Patient/{nhs}"
        )
    elif not _nhs_number_ok(nhs):
        problems.append("Consent.patient is not a valid NHS number")
    elif _patient_disagrees(resource):
        problems.append(
            "Consent.patient.reference and Consent.patient.identifier name different people"
        )

    has_policy = bool(resource.get("policy"))
    has_rule = "policyRule" in resource
    if has_policy == has_rule:
        problems.append("ppc-1: exactly one of Consent.policy and Consent.policyRule is required")
    if has_policy:
        problems.append(
            f"Consent.policyRule ({ACT_CODE_SYSTEM} OPTOUT or OPTIN) is required; "
            "Consent.policy is not supported"
        )
    rule = _policy_rule_code(resource)
    if has_rule and rule is None:
        problems.append(f"Consent.policyRule must be {ACT_CODE_SYSTEM}#OPTOUT or #OPTIN")

    provision = resource.get("provision")
    if not isinstance(provision, Mapping):
        problems.append("Consent.provision is required")
        return problems
    problems += _validate_provision_limits(provision, "Consent.provision")
    nested = provision.get("provision", [])
    if not isinstance(nested, list):
        problems.append("Consent.provision.provision must be a list")
        nested = []
    if rule == "OPTOUT":
        if provision.get("type") != "deny":
            problems.append("Consent.provision.type must be deny for an OPTOUT objection")
        if "actor" in provision or "class" in provision:
            problems.append("an OPTOUT objection has no actor or class")
    elif rule == "OPTIN":
        if provision.get("type") != "permit":
            problems.append("Consent.provision.type must be permit for OPTIN")
        denies = [n for n in nested if isinstance(n, Mapping) and n.get("type") == "deny"]
        if not denies:
            problems.append("an OPTIN directive needs at least one nested provision of type deny")
        for i, n in enumerate(nested):
            where = f"Consent.provision.provision[{i}]"
            if not isinstance(n, Mapping) or n.get("type") != "deny":
                problems.append(f"{where}.type must be deny")
                continue
            problems += _validate_nested_deny(n, where)
    return problems


# --- parsing ------------------------------------------------------------------------------


def parse_consent(resource: Mapping[str, Any]) -> tuple[Directive, ...]:
    """The directives a stored Consent expresses (any status; see :meth:`Directive.in_force`).

    Raises :class:`InvalidConsent` for a resource :func:`validate_consent` would refuse.
    """
    problems = validate_consent(resource)
    if problems:
        raise InvalidConsent(problems)
    cid = str(resource.get("id") or "")
    status = str(resource["status"])
    patient = patient_nhs_number(resource)
    provision: Mapping[str, Any] = resource["provision"]
    outer_start, outer_end = _period(provision)
    outer_purposes = _purposes(provision)

    if _policy_rule_code(resource) == "OPTOUT":
        return (
            Directive(
                cid, DirectiveKind.OBJECTION, status, patient, None,
                outer_purposes, outer_start, outer_end,
            ),
        )  # fmt: skip
    out: list[Directive] = []
    for n in provision.get("provision", []):
        actor = n["actor"][0]
        kind = (
            DirectiveKind.WITHHOLD_SOURCE
            if _actor_role(actor) == "CST"
            else DirectiveKind.REFUSE_RECIPIENT
        )
        start, end = _period(n)
        purposes = _purposes(n)
        out.append(
            Directive(
                consent_id=cid,
                kind=kind,
                status=status,
                patient=patient,
                org=_ods(actor["reference"]),
                # A nested provision lives within the outer one: both limits apply.
                purposes=_narrow(purposes, outer_purposes),
                start=max((s for s in (start, outer_start) if s), default=None),
                end=min((e for e in (end, outer_end) if e), default=None),
            )
        )
    return tuple(out)


def parse_consents(resources: Sequence[Mapping[str, Any]]) -> tuple[Directive, ...]:
    """All directives of a person's stored Consents, in order."""
    return tuple(d for r in resources for d in parse_consent(r))

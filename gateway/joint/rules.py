"""What a joint care plan must be: FHIR and UK Core (``400``), then the joint plan rules
(``422``), each problem answered with the element it names (``expression``).

Checked in this order, at the point of writing (``specs/joint-care-plans.md``):

1. valid R4 (the R4B ``CarePlan`` model, which also checks the contained resources) and the
   UK Core rules the adapters check (:func:`adapters.validation.resource_problems`: the
   profile, status, intent and activity status value sets, security labels, the id) — on
   the plan as it would be stored, so what the gateway adds is checked too → ``400``;
2. the joint plan rules (:func:`rule_problems`) → ``422``: ``intent`` = ``plan``; a status
   of :data:`JOINT_STATUSES`; a ``subject`` naming the person by a valid NHS number; a
   ``title``; each ``activity`` inline with ``detail.status`` and ``detail.description``,
   its performers named by ODS code; ``goal`` and ``careTeam`` pointing at contained
   resources; at most one lead professional (``participant.role`` coded
   ``urn:caregateway:care-team-role#lead-professional``) and exactly one while ``active``;
3. on a change, the status transition (:data:`TRANSITIONS`) and an unchanged subject.

The allowed status transitions (also in ``docs/policy.md``)::

    from \\ to         draft active on-hold completed revoked entered-in-error
    (new plan)         yes   yes    -       -         -       -
    draft              yes   yes    -       -         yes     yes
    active             -     yes    yes     yes       yes     yes
    on-hold            -     yes    yes     yes       yes     yes
    completed          -     -      -       yes       -       yes
    revoked            -     -      -       -         yes     yes
    entered-in-error   -     -      -       -         -       -

A plan goes back to ``draft`` never, once it was in use; a finished plan (``completed``,
``revoked``) may still take notes but not come back to life (a new plan is made instead);
``entered-in-error`` is final. Every version is kept, so nothing is lost by any of these.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from adapters import nhs_number, ukcore
from adapters.validation import coded_problems, resource_problems
from gateway.errors import BadRequest, UnprocessableEntity
from vocabulary import USER_SYSTEM

JOINT_SOURCE: Final = "joint"
JOINT_STATUSES: Final = ("draft", "active", "on-hold", "completed", "revoked", "entered-in-error")
INITIAL_STATUSES: Final = frozenset({"draft", "active"})
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "draft": frozenset({"draft", "active", "revoked", "entered-in-error"}),
    "active": frozenset({"active", "on-hold", "completed", "revoked", "entered-in-error"}),
    "on-hold": frozenset({"active", "on-hold", "completed", "revoked", "entered-in-error"}),
    "completed": frozenset({"completed", "entered-in-error"}),
    "revoked": frozenset({"revoked", "entered-in-error"}),
    "entered-in-error": frozenset(),
}
_MAX_PROBLEMS: Final = 20
_LOC_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


class Problem(tuple[str, str]):
    """``(expression, message)``: one broken rule and the element it is about."""

    __slots__ = ()

    def __new__(cls, expression: str, message: str) -> Problem:
        return super().__new__(cls, (expression, message))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _fhirpath(where: str) -> str:
    """``activity.0.detail`` or ``activity[0].detail`` → ``CarePlan.activity[0].detail``."""
    where = where.strip()
    if where in ("", "(root)", "CarePlan"):
        return "CarePlan"
    return "CarePlan." + _LOC_INDEX.sub(r"[\1]", where)


def _split(problem: str) -> Problem:
    where, sep, message = problem.partition(": ")
    if not sep:
        return Problem("CarePlan", problem)
    return Problem(_fhirpath(where), message)


def _raise(error: type[BadRequest], head: str, problems: Sequence[Problem]) -> None:
    shown = list(problems[:_MAX_PROBLEMS])
    raise error(
        head + "; ".join(f"{expr}: {msg}" for expr, msg in shown),
        expression=list(dict.fromkeys(expr for expr, _ in shown)),
    )


# --- 1: FHIR R4 and UK Core ----------------------------------------------------------------


def check_fhir(stored: Mapping[str, Any]) -> None:
    """``400`` unless the plan (as it would be stored) is valid R4 and meets UK Core."""
    problems = [_split(p) for p in resource_problems(stored)]
    for i, res in enumerate(_list(stored.get("contained"))):
        if isinstance(res, Mapping):
            problems += [
                Problem(f"CarePlan.contained[{i}].{e.removeprefix('CarePlan.')}", m)
                for e, m in (_split(p) for p in coded_problems(res))
            ]
    if problems:
        _raise(BadRequest, "The CarePlan is not a valid UK Core CarePlan (FHIR R4): ", problems)


# --- 2: the joint plan rules -----------------------------------------------------------------


def subject_nhs_number(plan: Mapping[str, Any]) -> str | None:
    """The NHS number ``subject`` names (``Patient/{nhs}`` and/or an NHS number identifier,
    which must agree), or None."""
    subject = plan.get("subject")
    if not isinstance(subject, Mapping):
        return None
    found: set[str] = set()
    ref = subject.get("reference")
    if isinstance(ref, str):
        if not ref.startswith("Patient/"):
            return None
        found.add(ref.removeprefix("Patient/"))
    ident = subject.get("identifier")
    if isinstance(ident, Mapping):
        if ident.get("system") != ukcore.NHS_NUMBER_SYSTEM:
            return None
        found.add(str(ident.get("value")))
    if len(found) != 1:
        return None
    value = found.pop()
    ok = len(value) == 10 and value.isascii() and value.isdigit() and nhs_number.is_valid(value)
    return value if ok else None


def _is_lead(participant: Any) -> bool:
    if not isinstance(participant, Mapping):
        return False
    return any(
        isinstance(c, Mapping)
        and c.get("system") == ukcore.CARE_TEAM_ROLE_SYSTEM
        and c.get("code") == ukcore.LEAD_PROFESSIONAL
        for role in _list(participant.get("role"))
        if isinstance(role, Mapping)
        for c in _list(role.get("coding"))
    )


def _care_teams(plan: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    return [
        (i, r)
        for i, r in enumerate(_list(plan.get("contained")))
        if isinstance(r, Mapping) and r.get("resourceType") == "CareTeam"
    ]


def lead_count(plan: Mapping[str, Any]) -> int:
    """How many lead professionals the plan's contained care team names."""
    return sum(
        1 for _, team in _care_teams(plan) for p in _list(team.get("participant")) if _is_lead(p)
    )


def _ods_ok(ref: Any) -> bool:
    ident = ref.get("identifier") if isinstance(ref, Mapping) else None
    return (
        isinstance(ident, Mapping)
        and ident.get("system") == ukcore.ODS_ORGANISATION_SYSTEM
        and isinstance(ident.get("value"), str)
        and bool(ident["value"].strip())
    )


def _contained_ids(plan: Mapping[str, Any], rtype: str) -> set[str]:
    return {
        f"#{r.get('id')}"
        for r in _list(plan.get("contained"))
        if isinstance(r, Mapping) and r.get("resourceType") == rtype
    }


def _activity_problems(plan: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    for i, activity in enumerate(_list(plan.get("activity"))):
        where = f"CarePlan.activity[{i}]"
        if not isinstance(activity, Mapping):
            continue
        if "reference" in activity:
            out.append(Problem(f"{where}.reference", "a joint plan's activities are inline"))
        detail = activity.get("detail")
        if not isinstance(detail, Mapping):
            out.append(Problem(f"{where}.detail", "an activity needs a detail"))
            continue
        text = detail.get("description")
        if not (isinstance(text, str) and text.strip()):
            out.append(Problem(f"{where}.detail.description", "an activity needs a description"))
        for j, performer in enumerate(_list(detail.get("performer"))):
            if not _ods_ok(performer):
                out.append(
                    Problem(
                        f"{where}.detail.performer[{j}]",
                        f"a performer is named by ODS code ({ukcore.ODS_ORGANISATION_SYSTEM})",
                    )
                )
    return out


def _team_problems(plan: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    teams = _contained_ids(plan, "CareTeam")
    care_team = _list(plan.get("careTeam"))
    if len(care_team) > 1:
        out.append(Problem("CarePlan.careTeam", "a joint plan has one care team"))
    for i, ref in enumerate(care_team):
        if not (isinstance(ref, Mapping) and ref.get("reference") in teams):
            out.append(Problem(f"CarePlan.careTeam[{i}]", "must point at a contained CareTeam"))
    goals = _contained_ids(plan, "Goal")
    for i, ref in enumerate(_list(plan.get("goal"))):
        if not (isinstance(ref, Mapping) and ref.get("reference") in goals):
            out.append(Problem(f"CarePlan.goal[{i}]", "must point at a contained Goal"))
    for i, res in enumerate(_list(plan.get("contained"))):
        if isinstance(res, Mapping) and res.get("resourceType") not in ("CareTeam", "Goal"):
            out.append(Problem(f"CarePlan.contained[{i}]", "only a CareTeam and Goals"))
    leads = [
        (i, j)
        for i, team in _care_teams(plan)
        for j, p in enumerate(_list(team.get("participant")))
        if _is_lead(p)
    ]
    if len(leads) > 1:
        out += [
            Problem(
                f"CarePlan.contained[{i}].participant[{j}].role",
                "a joint plan has exactly one lead professional; this one is not the only one",
            )
            for i, j in leads
        ]
    elif not leads and plan.get("status") == "active":
        out.append(
            Problem(
                "CarePlan.careTeam",
                "an active joint plan names exactly one lead professional: a care team "
                f"participant with role {ukcore.CARE_TEAM_ROLE_SYSTEM}#"
                f"{ukcore.LEAD_PROFESSIONAL}",
            )
        )
    for i, j in leads:
        participant = _list(_list(plan.get("contained"))[i].get("participant"))[j]
        if not isinstance(participant.get("member"), Mapping):
            out.append(
                Problem(
                    f"CarePlan.contained[{i}].participant[{j}].member",
                    "the lead professional must be named",
                )
            )
    return out


def rule_problems(plan: Mapping[str, Any]) -> list[Problem]:
    """The joint plan rules broken by ``plan`` (step 2 of the module docstring)."""
    out: list[Problem] = []
    if plan.get("intent") != "plan":
        out.append(Problem("CarePlan.intent", "a joint care plan has intent 'plan'"))
    if plan.get("status") not in JOINT_STATUSES:
        out.append(Problem("CarePlan.status", f"must be one of {', '.join(JOINT_STATUSES)}"))
    if subject_nhs_number(plan) is None:
        out.append(
            Problem(
                "CarePlan.subject",
                "must name the person by a valid NHS number (Patient/{nhs} or an identifier)",
            )
        )
    title = plan.get("title")
    if not (isinstance(title, str) and title.strip()):
        out.append(Problem("CarePlan.title", "a joint care plan needs a title"))
    return out + _activity_problems(plan) + _team_problems(plan)


def check_rules(plan: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> None:
    """``422`` with every broken rule; ``current`` is the stored plan a change replaces."""
    problems = rule_problems(plan)
    status = plan.get("status")
    if current is None:
        if status in JOINT_STATUSES and status not in INITIAL_STATUSES:
            problems.append(
                Problem("CarePlan.status", "a new joint plan starts as draft or active")
            )
    else:
        was = str(current.get("status"))
        if status in JOINT_STATUSES and status not in TRANSITIONS.get(was, frozenset()):
            problems.append(Problem("CarePlan.status", f"a {was} plan cannot become {status}"))
        if subject_nhs_number(plan) not in (None, subject_nhs_number(current)):
            problems.append(
                Problem("CarePlan.subject", "cannot change: make a new plan for another person")
            )
    if problems:
        _raise(UnprocessableEntity, "The CarePlan breaks the joint care plan rules: ", problems)


# --- what the gateway sets --------------------------------------------------------------------


def _instant(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key(ref: Mapping[str, Any]) -> tuple[str, str]:
    ident = ref.get("identifier")
    if not isinstance(ident, Mapping):
        return "", repr(sorted(ref.items()))
    return str(ident.get("system")), str(ident.get("value"))


def contributors(
    previous: Sequence[Any], org: str, sub: str, name: str | None
) -> list[dict[str, Any]]:
    """The plan's contributors so far, plus the caller's organisation and the caller."""
    user: dict[str, Any] = {"type": "Practitioner", "identifier": {"system": USER_SYSTEM,
                                                                   "value": sub}}  # fmt: skip
    if name:
        user["display"] = name
    added = [{"type": "Organization", "identifier": ukcore.ods_identifier(org)}, user]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ref in [*previous, *added]:
        if isinstance(ref, Mapping):
            out.setdefault(_key(ref), dict(ref))
    return list(out.values())


def stamped(
    body: Mapping[str, Any],
    *,
    plan_id: str,
    version: int,
    at: datetime,
    nhs: str | None,
    author_org: str,
    domain: str,
    contributor: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The plan as stored: the caller's body with the gateway's ``id``, ``meta`` (profile,
    version, time, source, care-domain tag; the caller's confidentiality labels kept),
    ``subject`` (``Patient/{nhs}``; the caller's own when ``nhs`` is None, for checking a
    body before its person is known), ``author`` and ``contributor``."""
    out: dict[str, Any] = copy.deepcopy(dict(body))
    given = body.get("meta")
    meta_in: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    security = [
        dict(s)
        for s in _list(meta_in.get("security"))
        if isinstance(s, Mapping) and s.get("system") == ukcore.CONFIDENTIALITY_SYSTEM
    ]
    meta: dict[str, Any] = {
        "versionId": str(version),
        "lastUpdated": _instant(at),
        "source": ukcore.source_uri(JOINT_SOURCE),
        "profile": [ukcore.PROFILE_CAREPLAN],
        "tag": [{"system": ukcore.CARE_DOMAIN_SYSTEM, "code": domain}],
    }
    if security:
        meta["security"] = security
    out.update(
        resourceType="CarePlan",
        id=plan_id,
        meta=meta,
        author={"type": "Organization", "identifier": ukcore.ods_identifier(author_org)},
        contributor=[dict(c) for c in contributor],
    )
    if nhs is not None:
        out["subject"] = {"reference": f"Patient/{nhs}"}
    return out

"""Council SupportPlan → UK Core CarePlan + Goals, Involvements → CareTeam (pure; the
choices are in :mod:`adapters.socialcare.mapping`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Final

from adapters import ukcore
from adapters.base import Resource
from adapters.socialcare._common import (
    Context,
    _items,
    _ods_reference,
    _period,
    _subject,
    _text,
    meta,
    plan_system,
    resource_id,
    staff_system,
)

__all__ = ["is_current", "map_involvements", "map_support_plan", "organisation_name"]

GOAL_PROFILE: Final = "http://hl7.org/fhir/StructureDefinition/Goal"
GOAL_ACHIEVEMENT_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
PLAN_STATUS: Final[dict[str, str]] = {
    "draft": "draft",
    "active": "active",
    "under-review": "active",
    "ended": "completed",
    "cancelled": "revoked",
}
SERVICE_STATUS: Final[dict[str, str]] = {
    "planned": "not-started",
    "scheduled": "scheduled",
    "active": "in-progress",
    "suspended": "on-hold",
    "on-hold": "on-hold",
    "ended": "completed",
    "completed": "completed",
    "cancelled": "cancelled",
    "stopped": "stopped",
}
OUTCOME_ACHIEVEMENT: Final[dict[str, str]] = {
    "in-progress": "In Progress",
    "achieved": "Achieved",
    "not-achieved": "Not Achieved",
}
KNOWN_PLAN_TYPES: Final = frozenset(
    {"care-and-support", "reablement", "carer-support", "safeguarding-protection"}
)
PERIOD_UNIT: Final[dict[str, str]] = {
    "day": "d",
    "daily": "d",
    "week": "wk",
    "weekly": "wk",
    "month": "mo",
    "monthly": "mo",
    "year": "a",
    "hour": "h",
}


# --- SupportPlan → CarePlan + Goals -------------------------------------------------------------


def map_support_plan(
    plan: Mapping[str, Any], person_id: str, nhs: str, ctx: Context
) -> tuple[Resource, list[Resource]]:
    """A UK Core CarePlan (id ``{source}.{personId}.{planId}``) and the Goals it references."""
    plan_id = str(plan["planId"])
    cid = resource_id(ctx.source, person_id, plan_id)
    restricted = plan.get("confidentiality") == "restricted"
    status = PLAN_STATUS.get(str(plan.get("status")))
    if status is None:
        ctx.issue(
            "unknown-code",
            "a support plan status is not recognised; recorded as unknown",
            about="CarePlan",
        )
        status = "unknown"
    care_plan: Resource = {
        "resourceType": "CarePlan",
        "id": cid,
        "meta": meta(
            ukcore.PROFILE_CAREPLAN,
            ctx,
            last_updated=plan.get("lastUpdated"),
            restricted=restricted,
        ),
        "identifier": [{"system": plan_system(ctx.source), "value": plan_id}],
        "status": status,
        "intent": "plan",
    }
    if category := _category(plan.get("planType")):
        care_plan["category"] = [category]
    if title := _text(plan.get("title")):
        care_plan["title"] = title
    care_plan["subject"] = _subject(nhs)
    if period := _period(plan.get("start"), plan.get("end"), ctx, "CarePlan"):
        care_plan["period"] = period
    care_plan["author"] = _ods_reference(ctx.organisation, ctx.organisation_name)
    if contributor := _worker(plan.get("createdBy"), ctx):
        care_plan["contributor"] = [contributor]
    goals = [
        _goal(outcome, f"{cid}.g{n}", nhs, restricted, ctx)
        for n, outcome in enumerate(
            (o for o in _items(plan.get("outcomes")) if isinstance(o, Mapping)), start=1
        )
    ]
    if goals:
        care_plan["goal"] = [{"reference": f"Goal/{g['id']}"} for g in goals]
    activities = [_activity(s, ctx) for s in _items(plan.get("services")) if isinstance(s, Mapping)]
    if activities:
        care_plan["activity"] = activities
    notes = [_need_note(n) for n in _items(plan.get("needs")) if isinstance(n, Mapping)]
    if notes := [n for n in notes if n]:
        care_plan["note"] = [{"text": n} for n in notes]
    return care_plan, goals


def _category(plan_type: Any) -> Resource | None:
    word = _text(plan_type)
    if word is None:
        return None
    concept: Resource = {"coding": [{"system": ukcore.CARE_PLAN_TYPE_SYSTEM, "code": word}]}
    if word not in KNOWN_PLAN_TYPES:
        concept["text"] = word
    return concept


def _worker(worker: Any, ctx: Context) -> Resource | None:
    if not isinstance(worker, Mapping):
        return None
    ref: Resource = {}
    if staff := _text(worker.get("staffId")):
        ref["identifier"] = {"system": staff_system(ctx.source), "value": staff}
    if name := _text(worker.get("name")):
        ref["display"] = name
    return ref or None


def _need_note(need: Mapping[str, Any]) -> str | None:
    domain, description = _text(need.get("domain")), _text(need.get("description"))
    if not domain and not description:
        return None
    return f"Assessed need — {domain or 'unspecified'}: {description or ''}".rstrip(": ")


def _goal(
    outcome: Mapping[str, Any], gid: str, nhs: str, restricted: bool, ctx: Context
) -> Resource:
    goal: Resource = {
        "resourceType": "Goal",
        "id": gid,
        "meta": meta(GOAL_PROFILE, ctx, restricted=restricted),
        "lifecycleStatus": "active",
    }
    status = _text(outcome.get("status"))
    if status in OUTCOME_ACHIEVEMENT:
        goal["achievementStatus"] = {
            "coding": [
                {
                    "system": GOAL_ACHIEVEMENT_SYSTEM,
                    "code": status,
                    "display": OUTCOME_ACHIEVEMENT[status],
                }
            ]
        }
    elif status is not None:
        ctx.issue("unknown-code", "an outcome status is not recognised; kept as text", about="Goal")
        goal["achievementStatus"] = {"text": status}
    goal["description"] = {"text": _text(outcome.get("description")) or "Outcome"}
    goal["subject"] = _subject(nhs)
    return goal


def _activity(service: Mapping[str, Any], ctx: Context) -> Resource:
    raw_status = _text(service.get("status"))
    status = SERVICE_STATUS.get(raw_status or "")
    if status is None:
        ctx.issue(
            "unknown-code",
            "a service status is not recognised; recorded as unknown",
            about="CarePlan",
        )
        status = "unknown"
    detail: Resource = {"kind": "ServiceRequest"}
    if kind := _text(service.get("serviceType")):
        detail["code"] = {"text": kind}
    detail["status"] = status
    detail.update(
        _schedule(
            service.get("frequency"),
            _period(service.get("start"), service.get("end"), ctx, "CarePlan"),
        )
    )
    provider = service.get("provider")
    if isinstance(provider, Mapping) and (pname := _text(provider.get("name"))):
        performer: Resource = {"display": pname}
        if cqc := _text(provider.get("cqcLocationId")):
            performer["identifier"] = {"system": ukcore.CQC_LOCATION_SYSTEM, "value": cqc}
        detail["performer"] = [performer]
    if description := _text(service.get("description")):
        detail["description"] = description
    return {"detail": detail}


def _schedule(frequency: Any, bounds: Resource | None) -> Resource:
    if isinstance(frequency, Mapping):
        count, unit = frequency.get("count"), PERIOD_UNIT.get(str(frequency.get("period")))
        if isinstance(count, int) and not isinstance(count, bool) and count > 0 and unit:
            repeat: Resource = {"frequency": count, "period": 1, "periodUnit": unit}
            if bounds:
                repeat["boundsPeriod"] = bounds
            return {"scheduledTiming": {"repeat": repeat}}
        return {"scheduledString": f"{count} per {frequency.get('period')}"}
    if free := _text(frequency):
        return {"scheduledString": free}
    return {"scheduledPeriod": bounds} if bounds else {}


# --- Involvements → CareTeam --------------------------------------------------------------------


def is_current(involvement: Mapping[str, Any], today: date) -> bool:
    """An involvement is current unless its ``end`` is before ``today``."""
    end = _text(involvement.get("end"))
    if end is None:
        return True
    try:
        return date.fromisoformat(end[:10]) >= today
    except ValueError:
        return True  # an unreadable end date: keep the worker rather than hide them


def organisation_name(involvements: Iterable[Mapping[str, Any]], ods: str) -> str | None:
    """The source organisation's name as its own involvements give it, if they do."""
    for inv in involvements:
        org = inv.get("organisation")
        if (
            isinstance(org, Mapping)
            and org.get("odsCode") == ods
            and (name := _text(org.get("name")))
        ):
            return name
    return None


def map_involvements(
    involvements: Sequence[Mapping[str, Any]],
    person_id: str,
    nhs: str,
    ctx: Context,
    today: date,
) -> Resource | None:
    """One CareTeam (id ``{source}.{personId}.careteam``) of the current workers, or None."""
    participants = [_participant(i, ctx) for i in involvements if is_current(i, today)]
    if not participants:
        return None
    return {
        "resourceType": "CareTeam",
        "id": resource_id(ctx.source, person_id, "careteam"),
        "meta": meta(ukcore.PROFILE_CARETEAM, ctx),
        "status": "active",
        "subject": _subject(nhs),
        "participant": participants,
        "managingOrganization": [_ods_reference(ctx.organisation, ctx.organisation_name)],
    }


def _participant(inv: Mapping[str, Any], ctx: Context) -> Resource:
    participant: Resource = {}
    role: Resource = {}
    if inv.get("isLead") is True:
        role["coding"] = [
            {
                "system": ukcore.CARE_TEAM_ROLE_SYSTEM,
                "code": ukcore.LEAD_PROFESSIONAL,
                "display": "Lead professional",
            }
        ]
    if text := _text(inv.get("role")):
        role["text"] = text
    if role:
        participant["role"] = [role]
    if member := _worker(inv, ctx):
        participant["member"] = member
    org = inv.get("organisation")
    if isinstance(org, Mapping) and (ods := _text(org.get("odsCode"))):
        participant["onBehalfOf"] = _ods_reference(ods, _text(org.get("name")))
    if period := _period(inv.get("start"), inv.get("end"), ctx, "CareTeam"):
        participant["period"] = period
    return participant

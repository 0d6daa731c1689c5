"""STU3 CarePlan and CareTeam → UK Core R4 (pure; see :mod:`adapters.community.mapping`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters import ukcore
from adapters.base import Resource
from adapters.community._common import (
    IDENTIFIER_KEYS,
    PERIOD_KEYS,
    Context,
    ConversionError,
    codeable,
    copy_keys,
    copy_list,
    find_target,
    head,
    logical_ref,
    make_id,
    organisation_ref,
    parse_stu3,
    put_list,
    relative_reference,
)

CAREPLAN_STATUS_STU3_TO_R4 = {"suspended": "on-hold", "cancelled": "revoked"}
PLAN_TYPE_HEALTH = "health"


# --- CarePlan --------------------------------------------------------------------------


def map_care_plan(raw: Any, patient_id: str, nhs: str, ctx: Context) -> Resource:
    """A STU3 CarePlan as a UK Core CarePlan with id ``{source}.{patient id}.{plan id}``."""
    if isinstance(raw, dict) and not raw.get("intent"):
        # STU3 makes intent 1..1, yet some systems leave it out: "plan unless the source
        # says otherwise" (specs/mappings.md).
        raw = {**raw, "intent": "plan"}
    raw = parse_stu3(raw, "CarePlan")
    status = CAREPLAN_STATUS_STU3_TO_R4.get(raw["status"], raw["status"])
    if status not in ukcore.CAREPLAN_STATUS:
        raise ConversionError("STU3 CarePlan status has no R4 equivalent")
    intent = raw["intent"]
    if intent not in ukcore.CAREPLAN_INTENT:
        raise ConversionError("STU3 CarePlan intent has no R4 equivalent")
    out = head(raw, ukcore.PROFILE_CAREPLAN, ctx, patient_id)
    copy_list(raw, out, "identifier", IDENTIFIER_KEYS)
    _instantiates(raw.get("definition") or (), out, ctx.source)
    out["status"] = status
    out["intent"] = intent
    categories = [codeable(c) for c in raw.get("category") or ()]
    out["category"] = [
        {"coding": [{"system": ukcore.CARE_PLAN_TYPE_SYSTEM, "code": PLAN_TYPE_HEALTH}]},
        *(c for c in categories if c),
    ]
    for key in ("title", "description"):
        if raw.get(key):
            out[key] = raw[key]
    out["subject"] = {"reference": f"Patient/{nhs}"}
    encounter = _encounter(raw.get("context"), ctx)
    if encounter is not None:
        out["encounter"] = encounter
    period = copy_keys(raw.get("period"), PERIOD_KEYS)
    if period:
        out["period"] = period
    out["author"] = {"type": "Organization", **_source_organisation(raw, ctx)}
    contributors = [logical_ref(a, raw, ctx) for a in raw.get("author") or ()]
    contributors = [c for c in contributors if c and c.get("identifier") != _ods(ctx)]
    if contributors:
        out["contributor"] = contributors
    teams = [_care_team_ref(r, patient_id, ctx) for r in raw.get("careTeam") or ()]
    put_list(out, "careTeam", teams)
    put_list(out, "activity", [_activity(a, raw, ctx) for a in raw.get("activity") or ()])
    put_list(out, "note", [_note(n) for n in raw.get("note") or ()])
    return out


def _ods(ctx: Context) -> Resource:
    return ukcore.ods_identifier(ctx.organisation)


def _source_organisation(raw: Resource, ctx: Context) -> Resource:
    """The source organisation by ODS code, with its name when the plan's authors give it."""
    out: Resource = {"identifier": _ods(ctx)}
    for author in raw.get("author") or ():
        target = find_target(author, raw, ctx)
        if target is not None and target.get("resourceType") == "Organization":
            ref = organisation_ref(target) or {}
            if ref.get("identifier") == out["identifier"] and ref.get("display"):
                out["display"] = ref["display"]
    return out


def _instantiates(definitions: Sequence[Any], out: Resource, source: str) -> None:
    """STU3 ``definition`` references → R4 ``instantiatesCanonical`` / ``instantiatesUri``.

    An absolute URL is the definition's canonical; a relative reference is only a location
    on the source server, which no client of ours can reach (and which would read as a
    location on the gateway), so it is kept as a URN naming the source
    (``urn:caregateway:source:{name}:ActivityDefinition/x``). A display-only reference is
    dropped.
    """
    canonical: list[str] = []
    uris: list[str] = []
    for definition in definitions:
        ref = definition.get("reference") if isinstance(definition, dict) else None
        if not isinstance(ref, str) or not ref or ref.startswith("#"):
            continue
        if "://" in ref or ref.startswith("urn:"):
            canonical.append(ref)
        else:
            uris.append(f"{ukcore.source_uri(source)}:{ref}")
    if canonical:
        out["instantiatesCanonical"] = canonical
    if uris:
        out["instantiatesUri"] = uris


def _encounter(context: Any, ctx: Context) -> Resource | None:
    """STU3 ``context`` → R4 ``encounter`` when it names an Encounter.

    R4 CarePlan has no element for an EpisodeOfCare, so such a context is dropped. The
    Encounter is kept as a logical reference: the gateway does not serve source Encounters.
    """
    if not isinstance(context, dict):
        return None
    key = relative_reference(str(context.get("reference") or ""))
    if key is None or not key.startswith("Encounter/"):
        return None
    return {
        "type": "Encounter",
        "identifier": {
            "system": f"{ukcore.source_uri(ctx.source)}:encounter-id",
            "value": key.split("/", 1)[1],
        },
    }


def _care_team_ref(reference: Any, patient_id: str, ctx: Context) -> Resource | None:
    if not isinstance(reference, dict):
        return None
    key = relative_reference(str(reference.get("reference") or ""))
    if key is None or not key.startswith("CareTeam/"):
        return None
    return {"reference": "CareTeam/" + make_id(ctx.source, patient_id, key.split("/", 1)[1])}


def _activity(activity: Any, plan: Resource, ctx: Context) -> Resource | None:
    """Only ``activity.detail`` maps (STU3 has no ``kind``; its ``category`` is dropped)."""
    detail = activity.get("detail") if isinstance(activity, dict) else None
    if not isinstance(detail, dict):
        return None
    out: Resource = {}
    definition = detail.get("definition")
    if definition:
        _instantiates([definition], out, ctx.source)
    code = codeable(detail.get("code"))
    if code:
        out["code"] = code
    put_list(out, "reasonCode", [codeable(r) for r in detail.get("reasonCode") or ()])
    status = detail["status"]
    if status not in ukcore.CAREPLAN_ACTIVITY_STATUS:
        ctx.issue("unknown-code", "care plan activity status not recognised", about="CarePlan")
        status = "unknown"
    out["status"] = status
    if detail.get("statusReason"):
        out["statusReason"] = {"text": detail["statusReason"]}
    if isinstance(detail.get("prohibited"), bool):
        out["doNotPerform"] = detail["prohibited"]
    for key in ("scheduledTiming", "scheduledPeriod", "scheduledString"):  # same in R4
        if detail.get(key):
            out[key] = detail[key]
    put_list(out, "performer", [logical_ref(p, plan, ctx) for p in detail.get("performer") or ()])
    if detail.get("description"):
        out["description"] = detail["description"]
    result: Resource = {"detail": out}
    put_list(result, "progress", [_note(n) for n in activity.get("progress") or ()])
    return result


def _note(note: Any) -> Resource | None:
    """An Annotation without its ``authorReference`` (it would dangle in our answer)."""
    return copy_keys(note, ("authorString", "time", "text"))


# --- CareTeam --------------------------------------------------------------------------


def map_care_team(raw: Any, patient_id: str, nhs: str, ctx: Context) -> Resource:
    """A STU3 CareTeam as a UK Core CareTeam with id ``{source}.{patient id}.{team id}``."""
    raw = parse_stu3(raw, "CareTeam")
    out = head(raw, ukcore.PROFILE_CARETEAM, ctx, patient_id)
    copy_list(raw, out, "identifier", IDENTIFIER_KEYS)
    status = raw.get("status")
    if status is not None:
        if status not in ukcore.CARETEAM_STATUS:
            raise ConversionError("STU3 CareTeam status has no R4 equivalent")
        out["status"] = status
    put_list(out, "category", [codeable(c) for c in raw.get("category") or ()])
    if raw.get("name"):
        out["name"] = raw["name"]
    out["subject"] = {"reference": f"Patient/{nhs}"}
    period = copy_keys(raw.get("period"), PERIOD_KEYS)
    if period:
        out["period"] = period
    put_list(out, "participant", [_participant(p, raw, ctx) for p in raw.get("participant") or ()])
    managers = [logical_ref(m, raw, ctx) for m in raw.get("managingOrganization") or ()]
    put_list(out, "managingOrganization", managers)
    put_list(out, "note", [_note(n) for n in raw.get("note") or ()])
    return out


def _participant(participant: Any, team: Resource, ctx: Context) -> Resource | None:
    if not isinstance(participant, dict):
        return None
    out: Resource = {}
    role = codeable(participant.get("role"))
    if role:
        out["role"] = [role]
    member = logical_ref(participant.get("member"), team, ctx)
    if member:
        out["member"] = member
    on_behalf = logical_ref(participant.get("onBehalfOf"), team, ctx)
    if on_behalf:
        out["onBehalfOf"] = on_behalf
    period = copy_keys(participant.get("period"), PERIOD_KEYS)
    if period:
        out["period"] = period
    return out or None

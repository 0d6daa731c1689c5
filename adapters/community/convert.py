"""Pure STU3 (CareConnect) → UK Core R4 conversion for the community source.

Each function takes one STU3 resource as the source sent it (a dict), checks it against the
``fhir.resources.STU3`` model, and returns a plain R4 dict in the gateway's UK Core shape
(see :mod:`adapters.base` for the conventions and ``specs/mappings.md`` for the rules).
Anything without a mapping is dropped, never guessed; codes we cannot map are kept as text
and reported as :class:`~adapters.base.DataIssue` values on the :class:`Context`.

>>> ctx = Context(source="community", organisation="RWX", domain="health")
>>> patient = convert_patient(stu3_patient, ctx)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters import nhs_number, ukcore
from adapters.base import Resource
from adapters.community._common import (
    PERIOD_KEYS,
    Context,
    ConversionError,
    codeable,
    copy_keys,
    find_target,
    local_id,
    logical_ref,
    make_id,
    meta,
    organisation_ref,
    parse_stu3,
    practitioner_ref,
    relative_reference,
)

__all__ = [
    "ConversionError",
    "Context",
    "convert_care_plan",
    "convert_care_team",
    "convert_patient",
    "make_provenance",
    "patient_nhs_number",
]

PROVENANCE_PARTICIPANT_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
CAREPLAN_STATUS_STU3_TO_R4 = {"suspended": "on-hold", "cancelled": "revoked"}
PLAN_TYPE_HEALTH = "health"

_NAME_KEYS = ("use", "text", "family", "given", "prefix", "suffix", "period")
_ADDRESS_KEYS = (
    "use", "type", "text", "line", "city", "district", "state", "postalCode", "country", "period",
)  # fmt: skip
_TELECOM_KEYS = ("system", "value", "use", "rank", "period")
_IDENTIFIER_KEYS = ("use", "type", "system", "value", "period")


# --- Patient ---------------------------------------------------------------------------


def patient_nhs_number(raw: Resource) -> str | None:
    """The patient's valid NHS number (normalised), or ``None`` when there is none."""
    for ident in raw.get("identifier") or ():
        value = ident.get("value")
        if ident.get("system") == ukcore.NHS_NUMBER_SYSTEM and isinstance(value, str):
            if nhs_number.is_valid(value):
                return nhs_number.normalise(value)
    return None


def convert_patient(raw: Any, ctx: Context) -> Resource:
    """A CareConnect-Patient-1 as a UK Core Patient with id ``{source}.{patient id}``."""
    raw = parse_stu3(raw, "Patient")
    pid = local_id(raw)
    out: Resource = {
        "resourceType": "Patient",
        "id": make_id(ctx.source, pid),
        "meta": meta(raw, ukcore.PROFILE_PATIENT, ctx),
    }
    ethnic = _ethnic_category(raw, ctx)
    if ethnic is not None:
        out["extension"] = [{"url": ukcore.EXT_ETHNIC_CATEGORY, "valueCodeableConcept": ethnic}]
    out["identifier"] = _patient_identifiers(raw, pid, ctx)
    if isinstance(raw.get("active"), bool):
        out["active"] = raw["active"]
    _copy_list(raw, out, "name", _NAME_KEYS)
    _copy_list(raw, out, "telecom", _TELECOM_KEYS)
    for key in ("gender", "birthDate", "deceasedBoolean", "deceasedDateTime"):
        if raw.get(key) is not None:
            out[key] = raw[key]
    _copy_list(raw, out, "address", _ADDRESS_KEYS)
    gps = [_general_practitioner(ref, raw, ctx) for ref in raw.get("generalPractitioner") or ()]
    if any(gps):
        out["generalPractitioner"] = [g for g in gps if g]
    return out


def _copy_list(raw: Resource, out: Resource, key: str, keys: Sequence[str]) -> None:
    items = [copy_keys(item, keys) for item in raw.get(key) or ()]
    if any(items):
        out[key] = [i for i in items if i]


def _patient_identifiers(raw: Resource, pid: str, ctx: Context) -> list[Resource]:
    """One NHS number (if valid) with its verification status, then local ids as sent."""
    nhs: Resource | None = None
    local: list[Resource] = [{"system": ukcore.person_id_system(ctx.source), "value": pid}]
    for ident in raw.get("identifier") or ():
        if ident.get("system") != ukcore.NHS_NUMBER_SYSTEM:
            kept = copy_keys(ident, _IDENTIFIER_KEYS)
            if kept and kept.get("value") and kept not in local:
                local.append(kept)
            continue
        value = ident.get("value")
        if not isinstance(value, str) or not nhs_number.is_valid(value):
            ctx.issue("invalid-nhs-number", "a patient record holds an invalid NHS number")
            continue
        if nhs is not None:
            if nhs["value"] != nhs_number.normalise(value):
                ctx.issue("conflicting-nhs-number", "a patient record holds two NHS numbers")
            continue
        nhs = {"system": ukcore.NHS_NUMBER_SYSTEM, "value": nhs_number.normalise(value)}
        status = _verification(ident, ctx)
        if status is not None:
            nhs["extension"] = [status]
    return [nhs, *local] if nhs else local


def _verification(identifier: Resource, ctx: Context) -> Resource | None:
    for ext in identifier.get("extension") or ():
        if ext.get("url") not in ukcore.STU3_NHS_VERIFICATION_EXTENSIONS:
            continue
        cc = ext.get("valueCodeableConcept") or {}
        for coding in cc.get("coding") or ():
            code = coding.get("code")
            if coding.get("system") not in ukcore.STU3_NHS_VERIFICATION_SYSTEMS:
                continue
            if code in ukcore.NHS_VERIFICATION_DISPLAY:
                return {
                    "url": ukcore.EXT_NHS_VERIFICATION,
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": ukcore.NHS_VERIFICATION_SYSTEM,
                                "code": code,
                                "display": ukcore.NHS_VERIFICATION_DISPLAY[code],
                            }
                        ]
                    },
                }
        ctx.issue("unknown-code", "NHS number verification status not recognised")
    return None


def _ethnic_category(raw: Resource, ctx: Context) -> Resource | None:
    """CareConnect ethnic category → UK Core; local sub-codes map by their first letter."""
    for ext in raw.get("extension") or ():
        if ext.get("url") != ukcore.STU3_EXT_ETHNIC_CATEGORY:
            continue
        cc = ext.get("valueCodeableConcept") or {}
        for coding in cc.get("coding") or ():
            if coding.get("system") not in ukcore.STU3_ETHNIC_CATEGORY_SYSTEMS:
                continue
            code = coding.get("code")
            if not isinstance(code, str):
                continue
            original = copy_keys(coding, ("system", "code", "display"))
            if code in ukcore.ETHNIC_CATEGORY_DISPLAY:
                out: Resource = {"coding": [_ethnic_coding(code)]}
            elif len(code) == 2 and code[0] in ukcore.ETHNIC_CATEGORY_DISPLAY:
                out = {"coding": [_ethnic_coding(code[0]), original]}
            else:
                continue
            if cc.get("text"):
                out["text"] = cc["text"]
            return out
        text = cc.get("text") or next(
            (c.get("display") or c.get("code") for c in cc.get("coding") or ()), None
        )
        ctx.issue("unknown-code", "ethnic category code not in UKCore-EthnicCategoryEngland")
        return {"text": str(text)} if text else None
    return None


def _ethnic_coding(code: str) -> Resource:
    return {
        "system": ukcore.ETHNIC_CATEGORY_SYSTEM,
        "code": code,
        "display": ukcore.ETHNIC_CATEGORY_DISPLAY[code],
    }


def _general_practitioner(reference: Any, raw: Resource, ctx: Context) -> Resource | None:
    target = find_target(reference, raw, ctx)
    if target is not None and target.get("resourceType") == "Organization":
        return organisation_ref(target)
    if target is not None and target.get("resourceType") == "Practitioner":
        return practitioner_ref(target)
    if not isinstance(reference, dict):
        return None
    out: Resource = {}
    ident = reference.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        out["identifier"] = copy_keys(ident, ("system", "value"))
    if reference.get("display"):
        out["display"] = reference["display"]
    return out or None


# --- CarePlan --------------------------------------------------------------------------


def convert_care_plan(raw: Any, patient_id: str, nhs: str, ctx: Context) -> Resource:
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
    out: Resource = {
        "resourceType": "CarePlan",
        "id": make_id(ctx.source, patient_id, local_id(raw)),
        "meta": meta(raw, ukcore.PROFILE_CAREPLAN, ctx),
    }
    idents = [copy_keys(i, _IDENTIFIER_KEYS) for i in raw.get("identifier") or ()]
    if any(idents):
        out["identifier"] = [i for i in idents if i]
    _instantiates(raw.get("definition") or (), out)
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
    if any(teams):
        out["careTeam"] = [t for t in teams if t]
    activities = [_activity(a, raw, ctx) for a in raw.get("activity") or ()]
    if any(activities):
        out["activity"] = [a for a in activities if a]
    notes = [_note(n) for n in raw.get("note") or ()]
    if any(notes):
        out["note"] = [n for n in notes if n]
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


def _instantiates(definitions: Sequence[Any], out: Resource) -> None:
    """STU3 ``definition`` references → R4 ``instantiatesCanonical`` / ``instantiatesUri``.

    An absolute URL is the definition's canonical; a relative reference is only a location
    on the source server, so it is kept as a URI. A display-only reference is dropped.
    """
    canonical: list[str] = []
    uris: list[str] = []
    for definition in definitions:
        ref = definition.get("reference") if isinstance(definition, dict) else None
        if not isinstance(ref, str) or not ref or ref.startswith("#"):
            continue
        (canonical if "://" in ref or ref.startswith("urn:") else uris).append(ref)
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
        _instantiates([definition], out)
    code = codeable(detail.get("code"))
    if code:
        out["code"] = code
    reasons = [codeable(r) for r in detail.get("reasonCode") or ()]
    if any(reasons):
        out["reasonCode"] = [r for r in reasons if r]
    status = detail["status"]
    if status not in ukcore.CAREPLAN_ACTIVITY_STATUS:
        ctx.issue("unknown-code", "care plan activity status not recognised")
        status = "unknown"
    out["status"] = status
    if detail.get("statusReason"):
        out["statusReason"] = {"text": detail["statusReason"]}
    if isinstance(detail.get("prohibited"), bool):
        out["doNotPerform"] = detail["prohibited"]
    for key in ("scheduledTiming", "scheduledPeriod", "scheduledString"):  # same in R4
        if detail.get(key):
            out[key] = detail[key]
    performers = [logical_ref(p, plan, ctx) for p in detail.get("performer") or ()]
    if any(performers):
        out["performer"] = [p for p in performers if p]
    if detail.get("description"):
        out["description"] = detail["description"]
    result: Resource = {"detail": out}
    progress = [_note(n) for n in activity.get("progress") or ()]
    if any(progress):
        result["progress"] = [p for p in progress if p]
    return result


def _note(note: Any) -> Resource | None:
    """An Annotation without its ``authorReference`` (it would dangle in our answer)."""
    return copy_keys(note, ("authorString", "time", "text"))


# --- CareTeam --------------------------------------------------------------------------


def convert_care_team(raw: Any, patient_id: str, nhs: str, ctx: Context) -> Resource:
    """A STU3 CareTeam as a UK Core CareTeam with id ``{source}.{patient id}.{team id}``."""
    raw = parse_stu3(raw, "CareTeam")
    out: Resource = {
        "resourceType": "CareTeam",
        "id": make_id(ctx.source, patient_id, local_id(raw)),
        "meta": meta(raw, ukcore.PROFILE_CARETEAM, ctx),
    }
    idents = [copy_keys(i, _IDENTIFIER_KEYS) for i in raw.get("identifier") or ()]
    if any(idents):
        out["identifier"] = [i for i in idents if i]
    status = raw.get("status")
    if status is not None:
        if status not in ukcore.CARETEAM_STATUS:
            raise ConversionError("STU3 CareTeam status has no R4 equivalent")
        out["status"] = status
    categories = [codeable(c) for c in raw.get("category") or ()]
    if any(categories):
        out["category"] = [c for c in categories if c]
    if raw.get("name"):
        out["name"] = raw["name"]
    out["subject"] = {"reference": f"Patient/{nhs}"}
    period = copy_keys(raw.get("period"), PERIOD_KEYS)
    if period:
        out["period"] = period
    participants = [_participant(p, raw, ctx) for p in raw.get("participant") or ()]
    if any(participants):
        out["participant"] = [p for p in participants if p]
    managers = [logical_ref(m, raw, ctx) for m in raw.get("managingOrganization") or ()]
    if any(managers):
        out["managingOrganization"] = [m for m in managers if m]
    notes = [_note(n) for n in raw.get("note") or ()]
    if any(notes):
        out["note"] = [n for n in notes if n]
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


# --- Provenance ------------------------------------------------------------------------


def make_provenance(
    patient_id: str, targets: Sequence[Resource], recorded: datetime, ctx: Context
) -> Resource:
    """One UK Core Provenance per source patient, naming the source organisation by ODS."""
    if recorded.tzinfo is None:
        raise ValueError("recorded must be timezone-aware")
    return {
        "resourceType": "Provenance",
        "id": make_id(ctx.source, patient_id, "provenance"),
        "meta": meta({}, ukcore.PROFILE_PROVENANCE, ctx),
        "target": [{"reference": f"{t['resourceType']}/{t['id']}"} for t in targets],
        "recorded": recorded.isoformat(),
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": PROVENANCE_PARTICIPANT_SYSTEM,
                            "code": "author",
                            "display": "Author",
                        }
                    ]
                },
                "who": {"type": "Organization", "identifier": _ods(ctx)},
            }
        ],
    }

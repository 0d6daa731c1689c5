"""Pure mapping from the council's JSON (Person, SupportPlan, Involvement) to UK Core R4.

``specs/mappings.md`` decides; choices it leaves open, made here:

* **Needs become notes.** ``needs[]`` → ``CarePlan.note`` entries
  ``"Assessed need — {domain}: {description}"``. A need is an assessment finding, not
  something the person is working towards, so it is not a ``Goal``; a note keeps it with
  its plan and visible wherever the plan is shown.
* **Outcomes become Goals.** ``outcomes[]`` → ``Goal`` (id ``{plan id}.g{n}``, ``n`` from 1,
  ``lifecycleStatus`` ``active``, ``achievementStatus`` from HL7 goal-achievement)
  referenced from ``CarePlan.goal``. Goals carry their plan's security labels.
* **Unknown codes are kept as text, never guessed,** and reported as a ``DataIssue``
  (``unknown-code``): a gender or ethnicity code outside the table is left out; an unknown
  plan status becomes ``unknown``; an unknown service status becomes activity ``unknown``;
  an unknown ``planType`` is still the category code (the spec allows the source's own word)
  with the word as ``text``; an unknown NHS number status keeps the number with
  verification ``02`` (present, not traced), the most we can claim.
* **Services** → ``activity[].detail`` with ``kind`` ``ServiceRequest``, ``code.text`` =
  the service type, ``scheduledTiming.repeat`` (frequency/period/periodUnit, and
  ``boundsPeriod`` from the service dates) for ``{count, period}``, ``scheduledString`` for
  free text, ``scheduledPeriod`` when there is no frequency.
* **One CareTeam per person** from the involvements that are current on ``today`` (``end``
  null or not before today); none is made when no involvement is current.
* **Security labels.** ``confidentiality: restricted`` → ``R`` on the plan and its Goals; a
  Person with ``restricted: true`` → ``R`` on every resource made for that person (the
  adapter applies :func:`add_label` to all of them).
* **Dates that are not FHIR dates are left out** (``bad-date``) rather than failing the
  resource: a typo in an address's start date must not hide the person. A ``lastUpdated``
  that is not an RFC 3339 instant is simply not copied.
* The source organisation's display name is not in the configuration; it is taken from an
  involvement whose organisation has the source's ODS code, when there is one.

DataIssue texts never contain NHS numbers, names or other values from the record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from adapters import nhs_number, ukcore
from adapters.base import DataIssue, Domain, Resource

GOAL_PROFILE: Final = "http://hl7.org/fhir/StructureDefinition/Goal"
GOAL_ACHIEVEMENT_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
PROVENANCE_PARTICIPANT_SYSTEM: Final = (
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
)

NHS_STATUS_TO_VERIFICATION: Final[dict[str, str]] = {"verified": "01", "unverified": "02"}
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
ADDRESS_USE: Final = frozenset({"home", "work", "temp", "old", "billing"})
TELECOM_SYSTEM: Final = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
TELECOM_USE: Final = frozenset({"home", "work", "temp", "old", "mobile"})
_FHIR_DATE: Final = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_FHIR_INSTANT: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})"
)


@dataclass
class Context:
    """What every mapping needs to know about the source, and where issues are collected."""

    source: str
    organisation: str
    domain: Domain
    organisation_name: str | None = None
    issues: list[DataIssue] = field(default_factory=list)

    def issue(self, code: str, text: str) -> None:
        found = DataIssue(code, text)
        if found not in self.issues:
            self.issues.append(found)


# --- shared pieces --------------------------------------------------------------------------


def resource_id(source: str, *parts: str) -> str:
    return ".".join((source, *parts))


def staff_system(source: str) -> str:
    return f"urn:caregateway:source:{source}:staff-id"


def plan_system(source: str) -> str:
    return f"urn:caregateway:source:{source}:plan-id"


def meta(
    profile: str, ctx: Context, *, last_updated: Any = None, restricted: bool = False
) -> Resource:
    made: Resource = {
        "profile": [profile],
        "source": ukcore.source_uri(ctx.source),
        "tag": [{"system": ukcore.CARE_DOMAIN_SYSTEM, "code": ctx.domain}],
    }
    if (instant := _instant(last_updated)) is not None:
        made["lastUpdated"] = instant
    if restricted:
        made["security"] = [ukcore.security_label("R")]
    return made


def add_label(resource: Resource, code: str = "R") -> None:
    """Add a v3 Confidentiality label to ``resource`` (in place, once)."""
    security: list[Resource] = resource.setdefault("meta", {}).setdefault("security", [])
    if not any(
        s.get("system") == ukcore.CONFIDENTIALITY_SYSTEM and s.get("code") == code for s in security
    ):
        security.append(ukcore.security_label(code))


def _items(value: Any, single: type | None = None) -> list[Any]:
    """A JSON list as a list; a lone ``single`` value (e.g. one string) as a list of one."""
    if isinstance(value, list):
        return value
    if single is not None and isinstance(value, single):
        return [value]
    return []


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _date(value: Any, ctx: Context) -> str | None:
    """A FHIR date (``YYYY``, ``YYYY-MM`` or a real ``YYYY-MM-DD``); anything else is left out."""
    text = _text(value)
    if text is None:
        return None
    if _FHIR_DATE.fullmatch(text):
        try:
            if len(text) == 10:
                date.fromisoformat(text)
            return text
        except ValueError:
            pass
    ctx.issue("bad-date", "a date in the record is not a valid date and was left out")
    return None


def _instant(value: Any) -> str | None:
    """An RFC 3339 timestamp with seconds and an offset (FHIR ``instant``), else None."""
    text = _text(value)
    if text is None or not _FHIR_INSTANT.fullmatch(text):
        return None
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return text


def _period(start: Any, end: Any, ctx: Context) -> Resource | None:
    period = {
        k: v for k, v in (("start", _date(start, ctx)), ("end", _date(end, ctx))) if v is not None
    }
    return period or None


def _ods_reference(code: str, display: str | None) -> Resource:
    ref: Resource = {"identifier": ukcore.ods_identifier(code)}
    if display:
        ref["display"] = display
    return ref


def _subject(nhs: str) -> Resource:
    return {"reference": f"Patient/{nhs}"}


# --- Person → Patient -------------------------------------------------------------------------


def person_nhs_number(person: Mapping[str, Any]) -> str | None:
    """The person's NHS number, normalised, when it is valid and not marked missing."""
    raw = person.get("nhsNumber")
    if not isinstance(raw, str) or person.get("nhsNumberStatus") == "missing":
        return None
    digits = nhs_number.normalise(raw)
    # ASCII only: nhs_number.is_valid also accepts other scripts' digits (e.g. Arabic-Indic).
    return digits if digits.isascii() and nhs_number.is_valid(digits) else None


def map_person(person: Mapping[str, Any], ctx: Context) -> Resource:
    """A UK Core Patient for one council Person (id ``{source}.{personId}``)."""
    pid = str(person["personId"])
    patient: Resource = {
        "resourceType": "Patient",
        "id": resource_id(ctx.source, pid),
        "meta": meta(ukcore.PROFILE_PATIENT, ctx, last_updated=person.get("lastUpdated")),
    }
    extensions = _ethnicity(person.get("ethnicity"), ctx)
    if extensions:
        patient["extension"] = extensions
    identifiers = _nhs_identifier(person, ctx)
    identifiers.append({"system": ukcore.person_id_system(ctx.source), "value": pid})
    patient["identifier"] = identifiers
    names = _names(person.get("name"))
    if names:
        patient["name"] = names
    telecom = _telecom(person.get("telecom"))
    if telecom:
        patient["telecom"] = telecom
    gender = person.get("gender")
    if gender is not None:
        if str(gender) in ukcore.DD_GENDER_TO_FHIR:
            patient["gender"] = ukcore.DD_GENDER_TO_FHIR[str(gender)]
        else:
            ctx.issue("unknown-code", "a person's gender code is not a Data Dictionary code")
    if birth := _date(person.get("birthDate"), ctx):
        patient["birthDate"] = birth
    if death := _date(person.get("deathDate"), ctx):
        patient["deceasedDateTime"] = death
    addresses = _addresses(person.get("addresses"), ctx)
    if addresses:
        patient["address"] = addresses
    gp = person.get("gp")
    if isinstance(gp, Mapping) and (ods := _text(gp.get("odsCode"))):
        patient["generalPractitioner"] = [_ods_reference(ods, _text(gp.get("name")))]
    return patient


def _nhs_identifier(person: Mapping[str, Any], ctx: Context) -> list[Resource]:
    raw = person.get("nhsNumber")
    status = person.get("nhsNumberStatus")
    if status == "missing" or raw is None:
        return []
    digits = person_nhs_number(person)
    if digits is None:
        ctx.issue("invalid-nhs-number", "a person's NHS number is not valid and was left out")
        return []
    code = NHS_STATUS_TO_VERIFICATION.get(str(status))
    if code is None:
        ctx.issue("unknown-code", "an NHS number status is not recognised; recorded as not traced")
        code = "02"
    return [
        {
            "extension": [
                {
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
            ],
            "system": ukcore.NHS_NUMBER_SYSTEM,
            "value": digits,
        }
    ]


def _ethnicity(code: Any, ctx: Context) -> list[Resource]:
    if code is None or code == "":
        return []
    if str(code) not in ukcore.ETHNIC_CATEGORY_DISPLAY:
        ctx.issue("unknown-code", "a person's ethnic category code is not recognised")
        return []
    return [
        {
            "url": ukcore.EXT_ETHNIC_CATEGORY,
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": ukcore.ETHNIC_CATEGORY_SYSTEM,
                        "code": str(code),
                        "display": ukcore.ETHNIC_CATEGORY_DISPLAY[str(code)],
                    }
                ]
            },
        }
    ]


def _names(name: Any) -> list[Resource]:
    if not isinstance(name, Mapping):
        return []
    official: Resource = {"use": "official"}
    if family := _text(name.get("family")):
        official["family"] = family
    given = [g for g in (_text(x) for x in _items(name.get("given"), str)) if g]
    if given:
        official["given"] = given
    if title := _text(name.get("title")):
        official["prefix"] = [title]
    names = [official] if len(official) > 1 else []
    if preferred := _text(name.get("preferred")):
        usual: Resource = {"use": "usual", "given": [preferred]}
        if "family" in official:
            usual["family"] = official["family"]
        names.append(usual)
    return names


def _addresses(addresses: Any, ctx: Context) -> list[Resource]:
    made: list[Resource] = []
    for a in addresses if isinstance(addresses, list) else ():
        if not isinstance(a, Mapping):
            continue
        address: Resource = {}
        if (use := _text(a.get("use"))) in ADDRESS_USE:
            address["use"] = use
        lines = [x for x in (_text(line) for line in _items(a.get("lines"), str)) if x]
        if lines:
            address["line"] = lines
        if town := _text(a.get("town")):
            address["city"] = town
        if postcode := _text(a.get("postcode")):
            address["postalCode"] = postcode
        if period := _period(a.get("from"), a.get("to"), ctx):
            address["period"] = period
        if address:
            made.append(address)
    return made


def _telecom(telecom: Any) -> list[Resource]:
    made: list[Resource] = []
    for t in telecom if isinstance(telecom, list) else ():
        if not isinstance(t, Mapping) or not (value := _text(t.get("value"))):
            continue
        system = _text(t.get("system"))
        point: Resource = {"system": system if system in TELECOM_SYSTEM else "other"}
        point["value"] = value
        if (use := _text(t.get("use"))) in TELECOM_USE:
            point["use"] = use
        made.append(point)
    return made


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
        ctx.issue("unknown-code", "a support plan status is not recognised; recorded as unknown")
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
    if period := _period(plan.get("start"), plan.get("end"), ctx):
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
        ctx.issue("unknown-code", "an outcome status is not recognised; kept as text")
        goal["achievementStatus"] = {"text": status}
    goal["description"] = {"text": _text(outcome.get("description")) or "Outcome"}
    goal["subject"] = _subject(nhs)
    return goal


def _activity(service: Mapping[str, Any], ctx: Context) -> Resource:
    raw_status = _text(service.get("status"))
    status = SERVICE_STATUS.get(raw_status or "")
    if status is None:
        ctx.issue("unknown-code", "a service status is not recognised; recorded as unknown")
        status = "unknown"
    detail: Resource = {"kind": "ServiceRequest"}
    if kind := _text(service.get("serviceType")):
        detail["code"] = {"text": kind}
    detail["status"] = status
    detail.update(
        _schedule(service.get("frequency"), _period(service.get("start"), service.get("end"), ctx))
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
    if period := _period(inv.get("start"), inv.get("end"), ctx):
        participant["period"] = period
    return participant


# --- Provenance ---------------------------------------------------------------------------------


def make_provenance(
    person_id: str, targets: Sequence[Resource], recorded: datetime, ctx: Context
) -> Resource:
    """One UK Core Provenance per source person, naming the source organisation by ODS code."""
    if recorded.tzinfo is None:
        raise ValueError("recorded must be timezone-aware")
    return {
        "resourceType": "Provenance",
        "id": resource_id(ctx.source, person_id, "provenance"),
        "meta": meta(ukcore.PROFILE_PROVENANCE, ctx),
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
                "who": {
                    "type": "Organization",
                    **_ods_reference(ctx.organisation, ctx.organisation_name),
                },
            }
        ],
    }

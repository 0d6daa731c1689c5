"""The community simulator's records rendered as FHIR STU3 (3.0.2) JSON, CareConnect style."""

from __future__ import annotations

from typing import Any

from adapters.nhs_number import NHS_NUMBER_SYSTEM
from simulators import _vocab as v
from simulators._http import iso_date, rfc3339
from simulators.model import (
    Coding,
    CommunityCarePlan,
    CommunityCareTeam,
    CommunityOrganization,
    CommunityPatient,
    CommunityPractitioner,
    Frequency,
    Population,
)
from vocabulary import SDS_USER_SYSTEM

CARECONNECT_PATIENT = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Patient-1"
CARECONNECT_ORGANIZATION = (
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Organization-1"
)
CARECONNECT_PRACTITIONER = (
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Practitioner-1"
)
CARE_PLAN_ID_SYSTEM = "https://fhir.thurrock-community.example.nhs.uk/Id/care-plan"
CARE_TEAM_ID_SYSTEM = "https://fhir.thurrock-community.example.nhs.uk/Id/care-team"
_PERIOD_UNITS = {"day": "d", "week": "wk", "month": "mo"}


def _coding(c: Coding) -> dict[str, str]:
    out = {"system": c.system, "code": c.code}
    if c.display:
        out["display"] = c.display
    return out


def _concept(c: Coding) -> dict[str, Any]:
    return {"coding": [_coding(c)]}


def _period(start: Any, end: Any) -> dict[str, str]:
    out = {"start": iso_date(start)}
    if end is not None:
        out["end"] = iso_date(end)
    return {k: val for k, val in out.items() if val is not None}


def patient(p: CommunityPatient) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = []
    if p.nhs_number is not None:
        nhs: dict[str, Any] = {"system": NHS_NUMBER_SYSTEM, "value": p.nhs_number}
        if p.verification is not None:
            nhs["extension"] = [
                {"url": p.verification_extension,
                 "valueCodeableConcept": _concept(p.verification)}
            ]
        identifiers.append(nhs)
    identifiers.extend({"system": c.system, "value": c.code} for c in p.local_ids)
    name: dict[str, Any] = {"use": "official", "family": p.name.family,
                            "given": list(p.name.given), "prefix": [p.name.title]}
    out: dict[str, Any] = {
        "resourceType": "Patient",
        "id": p.patient_id,
        "meta": {"versionId": "1", "lastUpdated": rfc3339(p.last_updated),
                 "profile": [CARECONNECT_PATIENT]},
    }
    if p.ethnicity is not None:
        out["extension"] = [
            {"url": v.STU3_ETHNIC_EXTENSION, "valueCodeableConcept": _concept(p.ethnicity)}
        ]
    out.update(
        {
            "identifier": identifiers,
            "active": True,
            "name": [name],
            "gender": p.gender,
            "birthDate": p.birth_date.isoformat(),
            "address": [
                {"use": p.address.use, "line": list(p.address.lines), "city": p.address.town,
                 "postalCode": p.address.postcode}
            ],
        }
    )
    if p.phone:
        out["telecom"] = [{"system": "phone", "value": p.phone, "use": "home"}]
    if p.deceased is not None:
        out["deceasedDateTime"] = p.deceased.isoformat()
    if p.gp is not None:
        out["generalPractitioner"] = [
            {"reference": f"Organization/org-{p.gp.ods_code}", "display": p.gp.name}
        ]
    out["managingOrganization"] = {"reference": f"Organization/org-{v.COMMUNITY_ODS}",
                                   "display": v.COMMUNITY_NAME}
    return out


def organization(o: CommunityOrganization) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": o.org_id,
        "meta": {"profile": [CARECONNECT_ORGANIZATION]},
        "identifier": [{"system": v.ODS_ORGANISATION_SYSTEM, "value": o.ods_code}],
        "active": True,
        "name": o.name,
    }


def practitioner(p: CommunityPractitioner) -> dict[str, Any]:
    name: dict[str, Any] = {"family": p.family, "given": [p.given]}
    if p.prefix:
        name["prefix"] = [p.prefix]
    return {
        "resourceType": "Practitioner",
        "id": p.practitioner_id,
        "meta": {"profile": [CARECONNECT_PRACTITIONER]},
        "identifier": [{"system": SDS_USER_SYSTEM, "value": p.sds_user_id}],
        "active": True,
        "name": [name],
    }


def _display(p: CommunityPractitioner) -> str:
    return " ".join(x for x in (p.prefix, p.given, p.family) if x)


def _ref(kind: str, rid: str, contained: bool, display: str) -> dict[str, str]:
    return {"reference": f"#{rid}" if contained else f"{kind}/{rid}", "display": display}


def care_plan(cp: CommunityCarePlan, pop: Population) -> dict[str, Any]:
    author = pop.practitioners[cp.author_practitioner_id]
    org = pop.organizations[cp.author_org_id]
    meta: dict[str, Any] = {"versionId": "1", "lastUpdated": rfc3339(cp.last_updated)}
    if cp.security:
        display = v.STU3_CONFIDENTIALITY_DISPLAY.get(cp.security, cp.security)
        meta["security"] = [{"system": v.STU3_CONFIDENTIALITY_SYSTEM, "code": cp.security,
                             "display": display}]
    if cp.handling:  # as GP Connect marks "no disclosure to patient" (STU3 system)
        meta.setdefault("security", []).extend(
            {"system": v.STU3_ACT_CODE_SYSTEM, "code": code} for code in cp.handling
        )
    out: dict[str, Any] = {"resourceType": "CarePlan", "id": cp.plan_id, "meta": meta}
    if cp.contained:
        out["contained"] = [practitioner(author), organization(org)]
    out["identifier"] = [{"system": CARE_PLAN_ID_SYSTEM, "value": cp.plan_id.upper()}]
    if cp.definition:
        out["definition"] = [{"reference": cp.definition}]
    out.update(
        {
            "status": cp.status,
            "intent": "plan",
            "category": [_concept(cp.category)],
            "title": cp.title,
            "description": cp.description,
            "subject": {"reference": f"Patient/{cp.patient_id}"},
            "period": _period(cp.start, cp.end),
            "author": [
                _ref("Practitioner", author.practitioner_id, cp.contained, _display(author)),
                _ref("Organization", org.org_id, cp.contained, org.name),
            ],
        }
    )
    if cp.context:
        out["context"] = {"reference": cp.context}
    if cp.care_team_id:
        out["careTeam"] = [{"reference": f"CareTeam/{cp.care_team_id}"}]
    activities = []
    for act in cp.activities:
        detail: dict[str, Any] = {"status": act.status, "description": act.description}
        if act.definition:
            detail["definition"] = {"reference": act.definition}
        if isinstance(act.scheduled, Frequency):
            detail["scheduledTiming"] = {
                "repeat": {"frequency": act.scheduled.count, "period": 1,
                           "periodUnit": _PERIOD_UNITS[act.scheduled.period]}
            }
        elif act.scheduled:
            detail["scheduledString"] = act.scheduled
        activities.append({"detail": detail})
    out["activity"] = activities
    return out


def care_team(ct: CommunityCareTeam, pop: Population) -> dict[str, Any]:
    org = pop.organizations[ct.managing_org_id]
    members = [pop.practitioners[m.practitioner_id] for m in ct.members]
    out: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": ct.team_id,
        "meta": {"versionId": "1", "lastUpdated": rfc3339(ct.last_updated)},
    }
    if ct.contained:
        out["contained"] = [*(practitioner(p) for p in members), organization(org)]
    on_behalf = _ref("Organization", org.org_id, ct.contained, org.name)
    out.update(
        {
            "identifier": [{"system": CARE_TEAM_ID_SYSTEM, "value": ct.team_id.upper()}],
            "status": ct.status,
            "category": [_concept(ct.category)],
            "name": ct.name,
            "subject": {"reference": f"Patient/{ct.patient_id}"},
            "period": _period(ct.start, ct.end),
            "participant": [
                {
                    "role": _concept(m.role),
                    "member": _ref("Practitioner", p.practitioner_id, ct.contained, _display(p)),
                    "onBehalfOf": on_behalf,
                    **({"period": _period(m.start, None)} if m.start else {}),
                }
                for m, p in zip(ct.members, members, strict=True)
            ],
            "managingOrganization": [on_behalf],
        }
    )
    return out


def operation_outcome(code: str, diagnostics: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }

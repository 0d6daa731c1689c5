"""Builders for the plain R4 dicts and values the consent tests need, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consent.directives import Directive, parse_consent
from consent.model import ClientKind, Requester, SourceContribution

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "9434765919"  # valid Modulus 11 test number
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

# The scenario: a council (social care) and a community trust (health); GP practice F81001.
COUNCIL, TRUST, GP, STRANGER = "LA001", "RAT", "F81001", "RXX"


def ods(code: str) -> dict[str, Any]:
    return {"identifier": {"system": ODS, "value": code}}


def meta(source: str, domain: str, *labels: str) -> dict[str, Any]:
    m: dict[str, Any] = {
        "source": f"urn:caregateway:source:{source}",
        "tag": [{"system": "urn:caregateway:care-domain", "code": domain}],
    }
    if labels:
        m["security"] = [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": c}
            for c in labels
        ]
    return m


def patient(
    rid: str, source: str, domain: str, gp: str | None = None, *labels: str
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Patient",
        "id": rid,
        "meta": meta(source, domain, *labels),
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
    }
    if gp:
        r["generalPractitioner"] = [ods(gp)]
    return r


def care_plan(rid: str, source: str, domain: str, author: str, *labels: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": rid,
        "meta": meta(source, domain, *labels),
        "status": "active",
        "intent": "plan",
        "author": ods(author),
    }


def care_team(rid: str, source: str, domain: str, *orgs: str) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "id": rid,
        "meta": meta(source, domain),
        "participant": [{"onBehalfOf": ods(o)} for o in orgs],
    }


@dataclass(frozen=True)
class Held:
    """A source (its name, organisation and care domain) and the resources it holds."""

    source: str
    org: str
    domain: str

    def patient(self, rid: str, gp: str | None) -> dict[str, Any]:
        return patient(rid, self.source, self.domain, gp)

    def care_plan(self, rid: str, *labels: str) -> dict[str, Any]:
        return care_plan(rid, self.source, self.domain, self.org, *labels)

    def care_team(self, rid: str) -> dict[str, Any]:
        return care_team(rid, self.source, self.domain, self.org)

    def contribution(self, *resources: dict[str, Any]) -> SourceContribution:
        return SourceContribution(self.source, self.org, self.domain, resources)


def council(*extra: dict[str, Any], gp: str | None = GP) -> SourceContribution:
    at = Held("council", COUNCIL, "social-care")
    return at.contribution(
        at.patient("c-p", gp), at.care_plan("c-cp1"), at.care_team("c-ct"), *extra
    )


def trust(*extra: dict[str, Any]) -> SourceContribution:
    at = Held("community", TRUST, "health")
    return at.contribution(
        at.patient("t-p", GP), at.care_plan("t-cp1"), at.care_plan("t-mh", "R"), *extra
    )


def record() -> tuple[SourceContribution, ...]:
    return (council(), trust())


def user(role: str | None = "R8000", org: str = GP, reason: str | None = None) -> Requester:
    return Requester(sub=f"user-{role}", role=role, org=org, break_glass_reason=reason)


def system_client(org: str = GP) -> Requester:
    return Requester(sub="epr", role=None, org=org, client_kind=ClientKind.SYSTEM)


# --- Consent resources --------------------------------------------------------------------

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PART = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def consent_body(
    nhs: str, rule: str, provision: dict[str, Any] | None = None, status: str = "active"
) -> dict[str, Any]:
    """A privacy Consent for ``nhs`` as a client would send it (no id, no dateTime)."""
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}},
        "policyRule": {"coding": [{"system": ACT, "code": rule}]},
    }
    if provision is not None:
        body["provision"] = provision
    return body


def objection_body(nhs: str, status: str = "active") -> dict[str, Any]:
    """The person objects to all sharing (OPTOUT, deny)."""
    return consent_body(nhs, "OPTOUT", {"type": "deny"}, status)


def consent_base(cid: str, rule: str, status: str = "active") -> dict[str, Any]:
    return {
        **consent_body(NHS, rule, status=status),
        "id": cid,
        "dateTime": "2026-11-01T09:00:00Z",
    }


def objection_consent(cid: str = "obj", status: str = "active", **provision: Any) -> dict[str, Any]:
    r = consent_base(cid, "OPTOUT", status)
    r["provision"] = {"type": "deny", **provision}
    return r


def org_consent(
    cid: str, role: str, org: str, status: str = "active", **nested: Any
) -> dict[str, Any]:
    r = consent_base(cid, "OPTIN", status)
    r["provision"] = {
        "type": "permit",
        "provision": [
            {
                "type": "deny",
                "actor": [
                    {"role": {"coding": [{"system": PART, "code": role}]}, "reference": ods(org)}
                ],
                **nested,
            }
        ],
    }
    return r


def withhold_consent(org: str, cid: str = "wh", **nested: Any) -> dict[str, Any]:
    return org_consent(cid, "CST", org, **nested)


def refuse_consent(org: str, cid: str = "rf", **nested: Any) -> dict[str, Any]:
    return org_consent(cid, "IRCP", org, **nested)


def objection(**kw: Any) -> Directive:
    return parse_consent(objection_consent(**kw))[0]


def withhold(org: str, **kw: Any) -> Directive:
    return parse_consent(withhold_consent(org, **kw))[0]


def refuse(org: str, **kw: Any) -> Directive:
    return parse_consent(refuse_consent(org, **kw))[0]


def purpose(*codes: str) -> list[dict[str, str]]:
    return [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": c} for c in codes
    ]

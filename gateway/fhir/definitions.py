"""The gateway's own ``urn:caregateway:`` extensions and code systems, as FHIR resources.

Answers carry codes and extensions of our own (a withheld-data reason, the care domain, the
source an OperationOutcome issue is about). A validator that meets one looks its definition
up by canonical URL; these resources are those definitions, served at
``/fhir/StructureDefinition/{id}`` and ``/fhir/CodeSystem/{id}`` (no token: they hold no
patient data) and listed in the CapabilityStatement.

Where the set of codes is open — a source's own care plan type, a finding a source adapter
reports — the CodeSystem says so (``content`` ``fragment``): the codes listed are those the
gateway itself emits, and others may appear.
"""

from __future__ import annotations

from typing import Any, Final

from adapters import ukcore
from consent.model import REASON_SYSTEM, Reason
from gateway.fhir.responses import EXT_ISSUE_SOURCE
from gateway.records.merge import DEMOGRAPHICS_CONFLICT, MERGE_WARNING_SYSTEM

PUBLISHER: Final = "caregateway"
DATE: Final = "2026-12-01"
_EXTRA_REASONS: Final = (
    ("source-unavailable", "A source did not answer, so the decision could not be made"),
    ("scope-insufficient", "The token's scopes do not cover the interaction"),
    ("body-too-large", "The request body is over the limit"),
    ("header-too-large", "A request header is over the limit"),
    ("uri-too-long", "The request URI is over the limit"),
)


def _id(url: str) -> str:
    """``urn:caregateway:care-domain`` → ``caregateway-care-domain`` (a FHIR id)."""
    return "caregateway-" + url.removeprefix("urn:caregateway:").replace(":", "-")


def _published(resource_type: str, url: str, title: str, description: str) -> dict[str, Any]:
    """What every definition the gateway publishes opens with, in this order: its id and
    name from its ``url``, active, not experimental, dated and published by us."""
    return {
        "resourceType": resource_type,
        "id": _id(url),
        "url": url,
        "name": "".join(w.capitalize() for w in _id(url).split("-")),
        "title": title,
        "status": "active",
        "experimental": False,
        "date": DATE,
        "publisher": PUBLISHER,
        "description": description,
    }


def _code_system(
    url: str, title: str, description: str, codes: list[tuple[str, str]], *, complete: bool
) -> dict[str, Any]:
    return {
        **_published("CodeSystem", url, title, description),
        "caseSensitive": True,
        "content": "complete" if complete else "fragment",
        "count": len(codes),
        "concept": [{"code": c, "display": d} for c, d in codes],
    }


def _extension(
    url: str, title: str, description: str, context: list[str], value_type: str
) -> dict[str, Any]:
    return {
        **_published("StructureDefinition", url, title, description),
        "fhirVersion": "4.0.1",
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": c} for c in context],
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint",
        "differential": {
            "element": [
                {"id": "Extension", "path": "Extension", "short": title, "definition": description},
                {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
                {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                {
                    "id": "Extension.value[x]",
                    "path": "Extension.value[x]",
                    "min": 1,
                    "type": [{"code": value_type}],
                },
            ]
        },
    }


CODE_SYSTEMS: Final = (
    _code_system(
        ukcore.CARE_DOMAIN_SYSTEM,
        "Care domain",
        "Whether a resource came from a social care or a health source (meta.tag).",
        [("social-care", "Social care"), ("health", "Health")],
        complete=True,
    ),
    _code_system(
        ukcore.CARE_PLAN_TYPE_SYSTEM,
        "Care plan type",
        "The kind of care plan (CarePlan.category); a source's own word may also appear.",
        [
            ("care-and-support", "Care and support plan"),
            ("reablement", "Reablement plan"),
            ("carer-support", "Carer support plan"),
            ("safeguarding-protection", "Safeguarding protection plan"),
            ("health", "Health care plan"),
        ],
        complete=False,
    ),
    _code_system(
        ukcore.CARE_TEAM_ROLE_SYSTEM,
        "Care team role",
        "Roles in a care team that no national code system names.",
        [("lead-professional", "Lead professional")],
        complete=True,
    ),
    _code_system(
        REASON_SYSTEM,
        "Access decision reason",
        "Why a request was refused or an answer filtered (OperationOutcome details).",
        [(r.value, r.value.replace("-", " ").capitalize()) for r in Reason] + list(_EXTRA_REASONS),
        complete=False,
    ),
    _code_system(
        MERGE_WARNING_SYSTEM,
        "Merge warning",
        "Findings about the source data of a merged record (OperationOutcome details).",
        [
            (DEMOGRAPHICS_CONFLICT, "Sources disagree on a demographic element"),
            ("duplicate-person", "Two source records share one NHS number"),
            ("invalid-nhs-number", "A source record's NHS number fails Modulus 11"),
            ("nhs-number-mismatch", "A source returned another person's record"),
            ("unknown-code", "A source code could not be mapped"),
            ("bad-date", "A source date could not be read"),
            ("bad-record", "A source record could not be read"),
            ("unresolved-reference", "A source reference names nothing the source holds"),
        ],
        complete=False,
    ),
)

STRUCTURE_DEFINITIONS: Final = (
    _extension(
        EXT_ISSUE_SOURCE,
        "Issue source",
        "The source an OperationOutcome issue is about, as the meta.source URI of its resources.",
        ["OperationOutcome.issue"],
        "uri",
    ),
    _extension(
        "urn:caregateway:extension:decision-effect",
        "Decision effect",
        "The access decision's effect (permit, permit-filtered, deny, indeterminate).",
        ["AuditEvent"],
        "code",
    ),
    _extension(
        "urn:caregateway:extension:decision-reason",
        "Decision reason",
        "One reason of the access decision (urn:caregateway:decision-reason).",
        ["AuditEvent"],
        "Coding",
    ),
    _extension(
        "urn:caregateway:extension:break-glass-reason",
        "Break-glass reason",
        "The reason a user gave for emergency access.",
        ["AuditEvent.agent"],
        "string",
    ),
    _extension(
        "urn:caregateway:extension:alert-user",
        "Alerted user",
        "The user a privacy monitoring alert is about.",
        ["DetectedIssue"],
        "Identifier",
    ),
)

BY_TYPE: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "CodeSystem": {r["id"]: r for r in CODE_SYSTEMS},
    "StructureDefinition": {r["id"]: r for r in STRUCTURE_DEFINITIONS},
}

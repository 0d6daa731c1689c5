"""The CapabilityStatement: what this server really supports, kept beside the routes."""

from __future__ import annotations

from typing import Any

from adapters import ukcore
from adapters.base import Resource
from gateway.fhir.definitions import CODE_SYSTEMS, STRUCTURE_DEFINITIONS
from gateway.fhir.search import INCLUDES

SOFTWARE_VERSION = "0.1.0"


def _result_params() -> list[Resource]:
    """The result parameters every search takes (:mod:`gateway.fhir.search`)."""
    return [
        {"name": "_count", "type": "number", "documentation": "Page size; 0: the total only"},
        {"name": "_offset", "type": "number", "documentation": "Paging (next/previous links)"},
        {"name": "_lastUpdated", "type": "date"},
        {"name": "_sort", "type": "special", "documentation": "_lastUpdated, date, status"},
        {"name": "_summary", "type": "token", "documentation": "count, true, data, false"},
        {"name": "_elements", "type": "special"},
        {"name": "_total", "type": "token", "documentation": "none, estimate, accurate"},
    ]


def _includes(resource_type: str) -> tuple[list[str], list[str]]:
    include = sorted(f"{s}:{p}" for (s, p) in INCLUDES if s == resource_type)
    revinclude = sorted(
        f"{s}:{p}"
        for (s, p), (_, t) in INCLUDES.items()
        if t in ("*", resource_type) and s != resource_type
    )
    return include, revinclude


def _searchable(resource_type: str, params: list[Resource], **extra: Any) -> Resource:
    """A read- and searchable type: interactions, parameters and (rev)includes."""
    include, revinclude = _includes(resource_type)
    out: Resource = {
        "type": resource_type,
        **extra,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [*params, *_result_params()],
    }
    if include:
        out["searchInclude"] = include
    if revinclude:
        out["searchRevInclude"] = revinclude
    return out


_PATIENT_REF = [
    {"name": "patient", "type": "reference", "documentation": "{nhs}, Patient/{nhs} or absolute"},
    {"name": "patient.identifier", "type": "token"},
]
_SUBJECT = {"name": "subject", "type": "reference"}


def _definitions() -> Resource:
    return {
        "documentation": "Our own definitions: "
        + ", ".join(f"{r['resourceType']}/{r['id']} ({r['url']})" for r in _own()),
    }


def _own() -> list[Resource]:
    return [*STRUCTURE_DEFINITIONS, *CODE_SYSTEMS]


def capability_statement(
    base_url: str, oauth_uris: Resource | None = None, *, cors: bool = False
) -> Resource:
    """``oauth_uris``: the SMART ``oauth-uris`` extension, when our authorization server runs;
    ``cors``: whether browser origins are allowed (``CAREGW_CORS_ORIGINS``)."""
    smart = {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities",
        "valueCode": "permission-v2",
    }
    return {
        "resourceType": "CapabilityStatement",
        "id": "caregateway",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "caregateway",
        "kind": "instance",
        "software": {"name": "caregateway", "version": SOFTWARE_VERSION},
        "implementation": {"description": "Shared care record gateway", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": cors,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [smart] if oauth_uris is None else [oauth_uris, smart],
                    "description": (
                        "Bearer JWT (RS256/RS384/ES256/ES384) with SMART v1 or v2 scopes; every "
                        "request states a purpose of use (X-Purpose-Of-Use or the token's "
                        "purpose_of_use claim). X-Break-Glass-Reason with ETREAT requests "
                        "emergency access."
                    ),
                },
                "resource": [
                    {
                        **_searchable(
                            "Patient",
                            [
                                {
                                    "name": "identifier",
                                    "type": "token",
                                    "documentation": "NHS number only: "
                                    + ukcore.NHS_NUMBER_SYSTEM
                                    + "|{nhs}",
                                }
                            ],
                            profile=ukcore.PROFILE_PATIENT,
                        ),
                        "operation": [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                                "documentation": "GET or POST; _count, _offset, _type.",
                            },
                            {
                                "name": "access-report",
                                "definition": "urn:caregateway:OperationDefinition/access-report",
                                "documentation": "AuditEvents about this person (IG roles); "
                                "_format=text/csv for CSV.",
                            },
                            {
                                "name": "access-check",
                                "definition": "urn:caregateway:OperationDefinition/access-check",
                                "documentation": "The access decision (effect, reasons, policy "
                                "version) for the calling principal; no patient data. GET or POST.",
                            },
                        ],
                    },
                    {
                        **_searchable(
                            "CarePlan",
                            [
                                *_PATIENT_REF,
                                _SUBJECT,
                                {"name": "status", "type": "token"},
                                {"name": "category", "type": "token"},
                            ],
                            profile=ukcore.PROFILE_CAREPLAN,
                            documentation="Source systems' plans are read-only (PUT/DELETE: "
                            "405 naming the owner). Joint care plans (ids joint.*) are written "
                            'here: PUT needs If-Match: W/"<versionId>" (428 without, 412 when '
                            "it is no longer current); every version is kept.",
                            versioning="versioned-update",
                        ),
                        "interaction": [
                            {"code": "read"},
                            {"code": "vread", "documentation": "joint care plans"},
                            {"code": "history-instance", "documentation": "joint care plans"},
                            {"code": "search-type"},
                            {"code": "create", "documentation": "a joint care plan"},
                            {"code": "update", "documentation": "joint care plans only"},
                        ],
                    },
                    _searchable(
                        "CareTeam",
                        [*_PATIENT_REF, _SUBJECT, {"name": "status", "type": "token"}],
                        profile=ukcore.PROFILE_CARETEAM,
                    ),
                    _searchable("Goal", [*_PATIENT_REF, _SUBJECT]),
                    _searchable("Provenance", _PATIENT_REF, profile=ukcore.PROFILE_PROVENANCE),
                    {
                        "type": "Consent",
                        "profile": ukcore.PROFILE_CONSENT,
                        "documentation": 'PUT takes If-Match: W/"<versionId>" (412 when '
                        "it is no longer current); without If-Match it updates the current "
                        "version. POST takes If-None-Exist (patient, status, identifier, _id); "
                        "POST and PUT take Prefer: return=minimal|representation|"
                        "OperationOutcome.",
                        "conditionalCreate": True,
                        "versioning": "versioned-update",
                        "interaction": [
                            {"code": "read"},
                            {"code": "vread", "documentation": "every version is kept"},
                            {"code": "history-instance"},
                            {"code": "search-type"},
                            {"code": "create"},
                            {"code": "update"},
                        ],
                        "searchParam": [
                            {"name": "patient", "type": "reference"},
                            {"name": "patient.identifier", "type": "token"},
                            {"name": "status", "type": "token"},
                            *_result_params(),
                        ],
                    },
                    {
                        "type": "AuditEvent",
                        "profile": ukcore.PROFILE_AUDITEVENT,
                        "documentation": "IG roles only (policy), purpose HOPERAT.",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            {"name": "patient", "type": "reference"},
                            {"name": "agent", "type": "reference"},
                            {"name": "date", "type": "date"},
                            {"name": "outcome", "type": "token"},
                            {"name": "purpose", "type": "token"},
                            {"name": "agent-org", "type": "token", "documentation": "ODS code"},
                            {"name": "break-glass", "type": "token", "documentation": "true"},
                            {"name": "_count", "type": "number"},
                            {"name": "_offset", "type": "number"},
                        ],
                        "operation": [
                            {
                                "name": "review",
                                "definition": "urn:caregateway:OperationDefinition/review",
                            }
                        ],
                    },
                    {
                        "type": "StructureDefinition",
                        "interaction": [{"code": "read"}],
                        **_definitions(),
                    },
                    {"type": "CodeSystem", "interaction": [{"code": "read"}], **_definitions()},
                ],
                "operation": [
                    {
                        "name": "privacy-alerts",
                        "definition": "urn:caregateway:OperationDefinition/privacy-alerts",
                    },
                    {
                        "name": "break-glass-queue",
                        "definition": "urn:caregateway:OperationDefinition/break-glass-queue",
                    },
                    {
                        "name": "joint-care-summary",
                        "definition": "urn:caregateway:OperationDefinition/joint-care-summary",
                        "documentation": "MeasureReport of joint care plans (counts only; "
                        "1-4 suppressed); roles the policy lets read_summaries, HOPERAT.",
                    },
                ],
            }
        ],
    }

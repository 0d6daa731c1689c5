"""The CapabilityStatement: what this server really supports, kept beside the routes."""

from __future__ import annotations

from adapters import ukcore
from adapters.base import Resource

SOFTWARE_VERSION = "0.1.0"


def capability_statement(base_url: str, oauth_uris: Resource | None = None) -> Resource:
    """``oauth_uris``: the SMART ``oauth-uris`` extension, when our authorization server runs."""
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
                    "cors": False,
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
                        "type": "Patient",
                        "profile": ukcore.PROFILE_PATIENT,
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {
                                "name": "identifier",
                                "type": "token",
                                "documentation": "NHS number only: "
                                + ukcore.NHS_NUMBER_SYSTEM
                                + "|{nhs}",
                            }
                        ],
                        "operation": [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
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
                                "version) for the calling principal; no patient data.",
                            },
                        ],
                    },
                    {
                        "type": "CarePlan",
                        "profile": ukcore.PROFILE_CAREPLAN,
                        "documentation": "Source systems' plans are read-only (PUT/DELETE: "
                        "405 naming the owner). Joint care plans (ids joint.*) are written "
                        'here: PUT needs If-Match: W/"<versionId>" (428 without, 412 when '
                        "it is no longer current); every version is kept.",
                        "versioning": "versioned-update",
                        "interaction": [
                            {"code": "read"},
                            {"code": "vread", "documentation": "joint care plans"},
                            {"code": "history-instance", "documentation": "joint care plans"},
                            {"code": "search-type"},
                            {"code": "create", "documentation": "a joint care plan"},
                            {"code": "update", "documentation": "joint care plans only"},
                        ],
                        "searchParam": [
                            {"name": "patient", "type": "reference"},
                            {"name": "subject", "type": "reference"},
                            {"name": "status", "type": "token"},
                            {"name": "category", "type": "token"},
                            {"name": "_count", "type": "number"},
                            {
                                "name": "_offset",
                                "type": "number",
                                "documentation": "Paging offset (used by next/previous links)",
                            },
                            {"name": "patient.identifier", "type": "token"},
                        ],
                        "searchInclude": [],
                    },
                    {
                        "type": "Consent",
                        "profile": ukcore.PROFILE_CONSENT,
                        "documentation": 'PUT takes If-Match: W/"<versionId>" (412 when '
                        "it is no longer current); without If-Match it updates the current "
                        "version.",
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
                    {"type": "CareTeam", "profile": ukcore.PROFILE_CARETEAM},
                    {"type": "Goal"},
                    {"type": "Provenance", "profile": ukcore.PROFILE_PROVENANCE},
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

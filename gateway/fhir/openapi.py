"""The OpenAPI document (``/openapi.json``), built from one table of operations.

FastAPI would derive a document from the handlers' signatures, but the handlers take the
raw :class:`~starlette.requests.Request` (parameters are read by the one strict parser in
:mod:`gateway.fhir.params`), so it would show no parameters, no bodies, ``application/json``
and no security. :data:`~gateway.fhir.openapi_table.OPERATIONS` says instead, for every
route, what it really takes and answers:

* query, path and header parameters with the shapes the parser accepts (NHS numbers
  ``^[0-9]{10}$``, FHIR ids, dates, ``_count``/``_offset`` ranges);
* request bodies as ``application/fhir+json`` (a ``Consent`` shaped as a usable directive;
  ``Parameters`` for ``$review``);
* answers as ``application/fhir+json``, every refusal an ``OperationOutcome``;
* the ``bearer`` scheme (HTTP bearer, JWT) on every ``/fhir`` route but ``/fhir/metadata``;
  ``/health`` needs no token.

:func:`install_openapi` puts the document in place of FastAPI's (``app.openapi``); FastAPI
still serves it at ``/openapi.json`` as ``application/json``, the type OpenAPI documents
are served as. ``tests/gateway/test_openapi.py`` checks that the table and the app's routes
agree and drives every operation with schemathesis.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI

from consent.directives import ACT_CODE_SYSTEM, PARTICIPATION_SYSTEM, SCOPE_SYSTEM, STATUSES
from consent.model import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from gateway.fhir.openapi_table import (
    COMMON,
    GATED,
    ID_PATTERN,
    LIMITS,
    NHS_PATTERN,
    OPERATIONS,
    Operation,
)

FHIR_JSON: Final = "application/fhir+json"
SECURITY_SCHEME: Final = "bearer"


# --- schemas --------------------------------------------------------------------------------


def _resource(name: str, required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resourceType", *required],
        "properties": {"resourceType": {"const": name}, "id": {"type": "string"}, **props},
    }


_CODING = {
    "type": "object",
    "properties": {"system": {"type": "string"}, "code": {"type": "string"}},
}
_CODEABLE = {"type": "object", "properties": {"coding": {"type": "array", "items": _CODING}}}


def _closed(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    """An object with only these properties: the R4 model refuses unknown elements (400)."""
    return {
        "type": "object",
        "required": list(required),
        "properties": props,
        "additionalProperties": False,
    }


def _one_coding(system: str, *codes: str) -> dict[str, Any]:
    """A CodeableConcept holding exactly one of ``system``'s ``codes``."""
    codings = [{"system": system, "code": c} for c in codes]
    return _closed(
        ("coding",),
        coding={"type": "array", "minItems": 1, "maxItems": 1, "items": {"enum": codings}},
    )


def _identifier(system: str, pattern: str) -> dict[str, Any]:
    """A Reference by identifier: ``{"identifier": {"system": ..., "value": ...}}``."""
    value = {"type": "string", "pattern": pattern}
    return _closed(
        ("identifier",),
        identifier=_closed(("system", "value"), system={"const": system}, value=value),
    )


# FHIR R4 dateTime (http://hl7.org/fhir/R4/datatypes.html#dateTime): a time needs seconds
# and a zone.
FHIR_DATETIME: Final = (
    "^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:"
    "([0-5][0-9]|60)(\\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$"
)
_PERIOD = _closed(
    start={"type": "string", "pattern": FHIR_DATETIME},
    end={"type": "string", "pattern": FHIR_DATETIME},
)
_ACTORS = {
    "type": "array",
    "minItems": 1,
    "maxItems": 1,
    "items": _closed(
        ("role", "reference"),
        role=_one_coding(PARTICIPATION_SYSTEM, "CST", "IRCP"),
        reference=_identifier(ODS_SYSTEM, "^[A-Z0-9]{3,8}$"),
    ),
}
_DENY_ORG = _closed(("type", "actor"), type={"const": "deny"}, period=_PERIOD, actor=_ACTORS)


def _consent(rule: str, provision: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        ("resourceType", "status", "scope", "category", "patient", "policyRule", "provision"),
        resourceType={"const": "Consent"},
        id={"type": "string", "pattern": ID_PATTERN},
        status={"enum": sorted(STATUSES)},
        scope=_one_coding(SCOPE_SYSTEM, "patient-privacy"),
        category={
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": _one_coding("http://loinc.org", "59284-0"),
        },
        patient=_identifier(NHS_NUMBER_SYSTEM, NHS_PATTERN),
        dateTime={"type": "string", "pattern": FHIR_DATETIME},
        policyRule=_one_coding(ACT_CODE_SYSTEM, rule),
        provision=provision,
    )


# The two directives consent.validate_consent accepts (consent/directives.py): an objection
# (OPTOUT, deny) and an OPTIN permit whose nested denies name organisations. The gateway
# takes any R4 Consent and answers 400 / 422 for one it cannot use.
_CONSENT = {
    "anyOf": [
        _consent("OPTOUT", _closed(("type",), type={"const": "deny"}, period=_PERIOD)),
        _consent(
            "OPTIN",
            _closed(
                ("type", "provision"),
                type={"const": "permit"},
                period=_PERIOD,
                provision={"type": "array", "minItems": 1, "maxItems": 3, "items": _DENY_ORG},
            ),
        ),
    ]
}

SCHEMAS: Final[dict[str, Any]] = {
    "OperationOutcome": _resource(
        "OperationOutcome",
        ("issue",),
        issue={
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "details": _CODEABLE,
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    ),
    "Bundle": _resource(
        "Bundle",
        ("type",),
        type={"enum": ["searchset", "collection", "history"]},
        total={"type": "integer", "minimum": 0},
        link={"type": "array", "items": {"type": "object", "required": ["relation", "url"]}},
        entry={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"resource": {"type": "object", "required": ["resourceType"]}},
            },
        },
    ),
    "CapabilityStatement": _resource("CapabilityStatement", ("status", "fhirVersion")),
    "Patient": _resource("Patient"),
    "CarePlan": _resource("CarePlan"),
    "Goal": _resource("Goal"),
    "CareTeam": _resource("CareTeam"),
    "Provenance": _resource("Provenance"),
    "StructureDefinition": _resource("StructureDefinition", ("url",)),
    "CodeSystem": _resource("CodeSystem", ("url",)),
    "JointCarePlan": _resource("CarePlan", ("status", "intent", "subject")),
    "MeasureReport": _resource("MeasureReport", ("status", "type")),
    "Consent": _resource("Consent", ("status", "patient")),
    "ConsentDirective": _CONSENT,
    "Parameters": _resource(
        "Parameters",
        parameter={
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        },
    ),
    "ReviewParameters": _resource(
        "Parameters",
        ("parameter",),
        parameter={
            "type": "array",
            "maxItems": 4,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"enum": ["outcome", "note"]},
                    "valueCode": {"enum": ["appropriate", "inappropriate"]},
                    "valueString": {"type": "string", "maxLength": 4000},
                },
            },
        },
    ),
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["ok", "degraded", "unavailable"]}},
    },
}

_REASONS: Final = {
    400: "The request is not valid (a parameter, the NHS number, the body).",
    401: "No usable access token (Bearer JWT).",
    403: "Refused: scope, purpose of use, role, or the person's consent and relationship.",
    404: "Nothing to show under this id.",
    405: "Not allowed here: a source system's record is read-only (the answer names its owner).",
    409: "The change conflicts with the stored state.",
    412: "If-Match names a version that is no longer current.",
    413: "The request body is larger than the gateway accepts.",
    414: "The query is longer than the gateway accepts.",
    415: "The body is not application/fhir+json.",
    422: "A valid FHIR resource the gateway cannot use (e.g. an unknown NHS number).",
    428: "If-Match is required: send the ETag of the version you are changing.",
    431: "A header is larger than the gateway accepts.",
    503: "A source, the database or the audit trail did not answer; no data is released.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _outcome_response(status: int) -> dict[str, Any]:
    return {
        "description": _REASONS[status],
        "content": {FHIR_JSON: {"schema": _ref("OperationOutcome")}},
    }


def _operation(op: Operation) -> dict[str, Any]:
    params = list(op.params)
    if op.path.startswith("/fhir/") and op.secured:
        names = {p.name for p in params}
        params += [p for p in COMMON if p.name not in names]
    ok_content: dict[str, Any] = {FHIR_JSON: {"schema": _ref(op.ok_schema)}}
    if op.csv:
        ok_content["text/csv"] = {"schema": {"type": "string"}}
    ok: dict[str, Any] = {"description": op.summary, "content": ok_content}
    if op.ok_headers:
        ok["headers"] = op.ok_headers
    responses: dict[str, Any] = {str(op.ok): ok}
    if op.ok_schema == "Health":
        responses["503"] = {
            "description": "The database cannot be reached.",
            "content": {FHIR_JSON: {"schema": _ref("Health")}},
        }
    errors = set(op.errors) | set(LIMITS)
    if op.secured:
        errors |= set(GATED)
    if op.path.startswith("/fhir/"):
        errors.add(400)
    for status in sorted(errors):
        if str(status) not in responses:
            responses[str(status)] = _outcome_response(status)
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [p.as_openapi() for p in params],
        "responses": responses,
        "security": [{SECURITY_SCHEME: []}] if op.secured else [],
    }
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {FHIR_JSON: {"schema": _ref(op.body)}},
        }
    return out


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The whole document, from :data:`OPERATIONS` and :data:`SCHEMAS`."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    info: dict[str, Any] = {"title": app.title, "version": app.version}
    if app.summary:
        info["summary"] = app.summary
    return {
        "openapi": "3.1.0",
        "info": info,
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from the trusted identity provider "
                    "(specs/access-token.md): ES256/ES384/RS256/RS384, with sub, org, role "
                    "and SMART scopes.",
                }
            },
        },
    }


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`openapi_document` at ``/openapi.json`` instead of FastAPI's own."""
    document: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal document
        if document is None:
            document = openapi_document(app)
        return document

    app.openapi = openapi  # type: ignore[method-assign]

"""The table the OpenAPI document is built from: every route, what it takes and answers.

One :class:`Operation` per route; its parameters are the shapes the strict parser in
:mod:`gateway.fhir.params` accepts, so a client (or a fuzzer) generating from the document
sends what the gateway would accept. :mod:`gateway.fhir.openapi` turns this into the
document; ``tests/gateway/test_openapi.py`` checks it matches the app's routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from adapters import ukcore
from gateway.auth import PURPOSES_OF_USE
from gateway.fhir.params import MAX_COUNT, MAX_DIGITS, MAX_OFFSET, MAX_TEXT, TEXT_CHARS
from vocabulary import NHS_NUMBER_PATTERN

NHS_PATTERN: Final = f"^{NHS_NUMBER_PATTERN}$"
ID_PATTERN: Final = "^[A-Za-z0-9\\-.]{1,64}$"
# FHIR date / dateTime as the parser reads it (gateway.fhir.params.date_range).
DATE_PATTERN: Final = (
    "^[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?"
    "(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?$"
)
SEARCH_DATE_PATTERN: Final = "^(eq|ge|gt|le|lt)?" + DATE_PATTERN[1:]
# [system|]code, each part text as the parser accepts it (gateway.fhir.params.token).
TOKEN_PATTERN: Final = f"^({TEXT_CHARS[:-1]}|]*\\|)?{TEXT_CHARS[:-1]}|]+$"


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # query | path | header
    schema: dict[str, Any]
    description: str
    required: bool = False

    def as_openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "description": self.description,
            "schema": self.schema,
        }
        if self.schema.get("type") == "array":
            out.update(style="form", explode=True)
        return out


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    ok: int
    ok_schema: str
    params: tuple[Param, ...] = ()
    body: str | None = None
    errors: tuple[int, ...] = ()
    secured: bool = True
    csv: bool = False  # the answer may also be text/csv
    description: str = ""
    ok_headers: dict[str, Any] = field(default_factory=dict)


def _token(max_chars: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": TOKEN_PATTERN}


NHS_PATH = Param(
    "nhs", "path", {"type": "string", "pattern": NHS_PATTERN}, "The person's NHS number."
)
PATIENT_QUERY = (
    Param(
        "patient",
        "query",
        {"type": "string", "pattern": "^(.*/)?(Patient/)?[0-9]{10}$"},
        "The person: NHS number, Patient/{nhs} or {base}/Patient/{nhs}.",
    ),
    Param(
        "patient.identifier",
        "query",
        {"type": "string", "pattern": "^(https://fhir\\.nhs\\.uk/Id/nhs-number\\|)?[0-9]{10}$"},
        "The person by identifier: [https://fhir.nhs.uk/Id/nhs-number|]{nhs}.",
    ),
)
COUNT = Param(
    "_count",
    "query",
    {"type": "integer", "minimum": 0, "maximum": 10**MAX_DIGITS - 1},
    f"Page size (0: the total only; more than {MAX_COUNT} is served as {MAX_COUNT}).",
)
OFFSET = Param(
    "_offset", "query", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}, "Entries to skip."
)
FORMAT = Param(
    "_format",
    "query",
    {"type": "string", "enum": ["json", "application/json", "application/fhir+json"]},
    "Only JSON is served.",
)
PRETTY = Param(
    "_pretty", "query", {"type": "string", "enum": ["true", "false"]}, "Accepted; ignored."
)
PURPOSE = Param(
    "X-Purpose-Of-Use",
    "header",
    {"type": "string", "enum": sorted(PURPOSES_OF_USE)},
    "HL7 v3 PurposeOfUse; defaults to the token's purpose_of_use claim.",
)
BREAK_GLASS = Param(
    "X-Break-Glass-Reason",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": "^[ -~]+$"},
    "Emergency access: the reason, with X-Purpose-Of-Use ETREAT. Audited and reviewed.",
)
REQUEST_ID = Param(
    "X-Request-ID",
    "header",
    {"type": "string", "pattern": "^[A-Za-z0-9._\\-]{1,64}$"},
    "The caller's correlation id, echoed back and recorded in the AuditEvent.",
)
PREFER = Param(
    "Prefer",
    "header",
    {"type": "string", "enum": ["handling=lenient", "handling=strict"]},
    "handling=lenient ignores unsupported search parameters.",
)
COMMON: Final = (FORMAT, PRETTY, PURPOSE, BREAK_GLASS, REQUEST_ID, PREFER)
# Every /fhir answer may be one of these besides the route's own (see gateway.errors).
GATED: Final = (400, 401, 403, 503)
# Size limits (request body, header values, query length): the answer names the limit.
LIMITS: Final = (413, 414, 431)
PAGING = (COUNT, OFFSET)
_SORT_KEY = "-?(_lastUpdated|date|status)"
_INCLUDE = {"type": "string", "pattern": "^[A-Za-z]+:[a-z\\-]+(:[A-Za-z]+)?$", "maxLength": 80}
RESULT = (
    *PAGING,
    Param(
        "_summary", "query", {"type": "string", "enum": ["count", "data", "false", "true"]},
        "count: the total only; true: summary elements; data: without narrative.",
    ),
    Param(
        "_elements", "query",
        {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]*(,[A-Za-z][A-Za-z0-9]*)*$"},
        "Top-level elements to return (id and meta always).",
    ),
    Param("_total", "query", {"type": "string", "enum": ["none", "estimate", "accurate"]}, "-"),
    Param(
        "_sort", "query",
        {"type": "string", "pattern": f"^{_SORT_KEY}(,{_SORT_KEY})*$"},
        "Sort keys, '-' for descending.",
    ),
    Param(
        "_lastUpdated", "query",
        {"type": "array", "maxItems": 10,
         "items": {"type": "string", "pattern": SEARCH_DATE_PATTERN, "maxLength": 40}},
        "[eq|ge|gt|le|lt]date on meta.lastUpdated; repeatable, all must hold.",
    ),
    Param("_include", "query", {"type": "array", "maxItems": 10, "items": _INCLUDE}, "Type:param."),
    Param(
        "_revinclude", "query", {"type": "array", "maxItems": 10, "items": _INCLUDE}, "Type:param."
    ),
)  # fmt: skip

VERSION_PATH = Param(
    "version_id", "path", {"type": "string", "pattern": "^[0-9]{1,9}$"}, "Version."
)


def _versions(
    resource_type: str,
    id_path: Param,
    tag: str,
    *,
    history: tuple[str, str],
    vread: tuple[str, str],
) -> tuple[Operation, Operation]:
    """``_history`` and ``_history/{version_id}`` of a type the gateway versions (Consent,
    joint CarePlan: :mod:`gateway.fhir.versioned`); ``history``/``vread``: id and summary."""
    path = f"/fhir/{resource_type}/{{{id_path.name}}}/_history"
    return (
        Operation("get", path, *history, tag, 200, "Bundle", (id_path,), errors=(404,)),
        Operation(
            "get",
            f"{path}/{{version_id}}",
            *vread,
            tag,
            200,
            resource_type,
            (id_path, VERSION_PATH),
            errors=(404,),
        ),
    )


_BASE_OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "get",
        "/fhir/metadata",
        "metadata",
        "The CapabilityStatement",
        "fhir",
        200,
        "CapabilityStatement",
        secured=False,
    ),
    Operation(
        "get",
        "/fhir/Patient/{nhs}",
        "readPatient",
        "Read a person's Patient resource",
        "fhir",
        200,
        "Patient",
        (NHS_PATH,),
        errors=(404,),
    ),
    Operation(
        "get",
        "/fhir/Patient",
        "searchPatient",
        "Find a person by NHS number",
        "fhir",
        200,
        "Bundle",
        (
            Param(
                "identifier",
                "query",
                {
                    "type": "string",
                    "pattern": "^(https://fhir\\.nhs\\.uk/Id/nhs-number\\|)?[0-9]{10}$",
                },
                "https://fhir.nhs.uk/Id/nhs-number|{nhs}",
                required=True,
            ),
            *RESULT,
        ),
    ),
    Operation(
        "get",
        "/fhir/CarePlan",
        "searchCarePlan",
        "A person's care plans",
        "fhir",
        200,
        "Bundle",
        (
            *PATIENT_QUERY,
            Param(
                "subject",
                "query",
                {"type": "string", "pattern": "^(Patient/)?[0-9]{10}$"},
                "As patient. Give exactly one of patient, subject, patient.identifier.",
            ),
            Param(
                "status",
                "query",
                {
                    "type": "string",
                    "pattern": "^({0})(,({0}))*$".format("|".join(sorted(ukcore.CAREPLAN_STATUS))),
                },
                "Comma-separated CarePlan statuses.",
            ),
            Param("category", "query", _token(), "[system|]code"),
            *RESULT,
        ),
    ),
    Operation(
        "get",
        "/fhir/CarePlan/{plan_id}",
        "readCarePlan",
        "Read one care plan",
        "fhir",
        200,
        "CarePlan",
        (Param("plan_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A FHIR id."),),
        errors=(404,),
    ),
    Operation(
        "get",
        "/fhir/Patient/{nhs}/$everything",
        "patientEverything",
        "Everything the caller may see about a person",
        "fhir",
        200,
        "Bundle",
        (
            NHS_PATH,
            *PAGING,
            Param(
                "_type",
                "query",
                {"type": "string", "pattern": "^[A-Za-z]+(,[A-Za-z]+)*$"},
                "Only these resource types (Patient, CarePlan, Goal, CareTeam, Provenance).",
            ),
        ),
        errors=(404,),
    ),
    Operation(
        "post",
        "/fhir/CarePlan",
        "createJointCarePlan",
        "Create a joint care plan (partners write it together; the gateway keeps it)",
        "fhir",
        201,
        "CarePlan",
        body="JointCarePlan",
        errors=(404, 415, 422),
        ok_headers={
            "Location": {"schema": {"type": "string"}},
            "ETag": {"schema": {"type": "string"}},
        },
    ),
    Operation(
        "put",
        "/fhir/CarePlan/{plan_id}",
        "updateJointCarePlan",
        "Change a joint care plan (If-Match required); a source system's plan is 405",
        "fhir",
        200,
        "CarePlan",
        (
            Param("plan_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A CarePlan id."),
            Param(
                "If-Match",
                "header",
                {"type": "string", "pattern": '^(W/)?"[1-9][0-9]{0,8}"$'},
                'Required: update only this version, e.g. W/"3".',
            ),
        ),
        body="JointCarePlan",
        errors=(404, 405, 412, 415, 422, 428),
    ),
    Operation(
        "delete",
        "/fhir/CarePlan/{plan_id}",
        "deleteCarePlan",
        "Plans are never deleted: a joint plan is ended by its status, a source's is 405",
        "fhir",
        405,
        "OperationOutcome",
        (Param("plan_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A CarePlan id."),),
        errors=(404, 405),
    ),
    *_versions(
        "CarePlan",
        Param("plan_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A CarePlan id."),
        "fhir",
        history=("historyJointCarePlan", "Every version of a joint care plan, newest first"),
        vread=("vreadJointCarePlan", "One version of a joint care plan"),
    ),
    Operation(
        "get",
        "/fhir/$joint-care-summary",
        "jointCareSummary",
        "People with a joint care plan and a lead professional (counts; 1-4 suppressed)",
        "audit",
        200,
        "MeasureReport",
    ),
    Operation(
        "post",
        "/fhir/Consent",
        "createConsent",
        "Record a consent directive",
        "consent",
        201,
        "Consent",
        body="ConsentDirective",
        errors=(404, 412, 415, 422),
        ok_headers={
            "Location": {"schema": {"type": "string"}},
            "ETag": {"schema": {"type": "string"}},
        },
    ),
    Operation(
        "get",
        "/fhir/Consent",
        "searchConsent",
        "A person's consent directives",
        "consent",
        200,
        "Bundle",
        (
            *PATIENT_QUERY,
            Param(
                "status",
                "query",
                {"type": "string", "pattern": "^[a-z\\-]+(,[a-z\\-]+)*$"},
                "Comma-separated Consent statuses.",
            ),
            *RESULT,
        ),
    ),
    Operation(
        "put",
        "/fhir/Consent/{consent_id}",
        "updateConsent",
        "Change a consent directive (e.g. withdraw it)",
        "consent",
        200,
        "Consent",
        (
            Param("consent_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A FHIR id."),
            Param(
                "If-Match",
                "header",
                {"type": "string", "pattern": '^(\\*|(W/)?"[1-9][0-9]{0,8}")$'},
                'Update only this version, e.g. W/"3".',
            ),
        ),
        body="ConsentDirective",
        errors=(404, 409, 412, 415, 422),
    ),
    Operation(
        "get",
        "/fhir/Consent/{consent_id}",
        "readConsent",
        "Read a consent directive",
        "consent",
        200,
        "Consent",
        (Param("consent_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A FHIR id."),),
        errors=(404,),
    ),
    *_versions(
        "Consent",
        Param("consent_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A FHIR id."),
        "consent",
        history=("historyConsent", "Every kept version of a consent directive, newest first"),
        vread=("vreadConsent", "Read one version of a consent directive"),
    ),
    Operation(
        "get",
        "/fhir/Patient/{nhs}/$access-check",
        "accessCheck",
        "What the policy would decide for the caller (no patient data)",
        "consent",
        200,
        "Parameters",
        (NHS_PATH,),
        errors=(404,),
    ),
    Operation(
        "get",
        "/fhir/AuditEvent",
        "searchAuditEvent",
        "Search the audit trail",
        "audit",
        200,
        "Bundle",
        (
            Param(
                "patient",
                "query",
                {
                    "type": "string",
                    "pattern": "^(https://fhir\\.nhs\\.uk/Id/nhs-number\\|)?(Patient/)?[0-9]{10}$",
                },
                "The person the events are about.",
            ),
            Param("agent", "query", _token(255), "The user's token sub, [system|]sub."),
            Param("agent-org", "query", _token(), "The user's organisation (ODS code)."),
            Param(
                "date",
                "query",
                {
                    "type": "array",
                    "maxItems": 10,
                    "items": {"type": "string", "pattern": SEARCH_DATE_PATTERN, "maxLength": 40},
                },
                "When recorded: [eq|ge|gt|le|lt]date; a date without time is its whole "
                "year, month or day in UTC. Repeatable; all must hold.",
            ),
            Param(
                "outcome", "query", {"type": "string", "enum": ["0", "4", "8", "12"]}, "Outcome."
            ),
            Param("purpose", "query", _token(), "PurposeOfUse code."),
            Param("break-glass", "query", {"type": "string", "enum": ["true", "false"]}, "BTG."),
            *PAGING,
        ),
    ),
    Operation(
        "get",
        "/fhir/Patient/{nhs}/$access-report",
        "accessReport",
        "Every AuditEvent about a person (subject access request)",
        "audit",
        200,
        "Bundle",
        (
            NHS_PATH,
            Param(
                "_format",
                "query",
                {"type": "string", "enum": ["json", "application/fhir+json", "text/csv", "csv"]},
                "text/csv for a spreadsheet.",
            ),
        ),
        csv=True,
    ),
    Operation(
        "post",
        "/fhir/AuditEvent/{event_id}/$review",
        "reviewAuditEvent",
        "Record a review of an audited access",
        "audit",
        200,
        "Parameters",
        (Param("event_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A FHIR id."),),
        body="ReviewParameters",
        errors=(404, 415),
    ),
    Operation(
        "get",
        "/fhir/$break-glass-queue",
        "breakGlassQueue",
        "Break-glass accesses without a review, oldest first",
        "audit",
        200,
        "Bundle",
        PAGING,
    ),
    Operation(
        "get",
        "/fhir/$privacy-alerts",
        "privacyAlerts",
        "Monitoring alerts (DetectedIssue)",
        "audit",
        200,
        "Bundle",
        (
            Param(
                "since",
                "query",
                {"type": "string", "pattern": DATE_PATTERN, "maxLength": 40},
                "Events recorded from then on (default: the last 24 hours).",
            ),
        ),
    ),
    Operation(
        "get",
        "/health/live",
        "live",
        "The process answers",
        "health",
        200,
        "Health",
        secured=False,
    ),
    Operation(
        "get",
        "/health/ready",
        "ready",
        "Database, sources and cache",
        "health",
        200,
        "Health",
        errors=(503,),
        secured=False,
    ),
)


def _reads_and_searches(kind: str, subjects: tuple[Param, ...]) -> tuple[Operation, ...]:
    """``GET {kind}/{id}`` and ``GET {kind}?patient=`` for a per-source resource type."""
    return (
        Operation(
            "get",
            f"/fhir/{kind}/{{resource_id}}",
            f"read{kind}",
            f"Read one {kind}",
            "fhir",
            200,
            kind,
            (
                Param(
                    "resource_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A FHIR id."
                ),
            ),
            errors=(404,),
        ),
        Operation(
            "get",
            f"/fhir/{kind}",
            f"search{kind}",
            f"A person's {kind} resources",
            "fhir",
            200,
            "Bundle",
            (*subjects, *RESULT),
        ),
    )


_SUBJECT = Param(
    "subject",
    "query",
    {"type": "string", "pattern": "^(.*/)?(Patient/)?[0-9]{10}$"},
    "As patient. Give exactly one of patient, subject, patient.identifier.",
)
_CARETEAM_STATUS = Param(
    "status", "query", {"type": "string", "pattern": "^[a-z\\-]+(,[a-z\\-]+)*$"}, "Statuses."
)
_REFERENCED: Final = (
    *_reads_and_searches("Goal", (*PATIENT_QUERY, _SUBJECT)),
    *_reads_and_searches("CareTeam", (*PATIENT_QUERY, _SUBJECT, _CARETEAM_STATUS)),
    *_reads_and_searches("Provenance", PATIENT_QUERY),
    Operation(
        "get",
        "/fhir/StructureDefinition/{definition_id}",
        "readStructureDefinition",
        "One of the gateway's own extensions",
        "fhir",
        200,
        "StructureDefinition",
        (Param("definition_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A FHIR id."),),
        errors=(404,),
        secured=False,
    ),
    Operation(
        "get",
        "/fhir/CodeSystem/{definition_id}",
        "readCodeSystem",
        "One of the gateway's own code systems",
        "fhir",
        200,
        "CodeSystem",
        (Param("definition_id", "path", {"type": "string", "pattern": ID_PATTERN}, "A FHIR id."),),
        errors=(404,),
        secured=False,
    ),
)


def _posted(op: Operation) -> Operation:
    """The ``POST`` form of a search (``{path}/_search``) or operation (same path): the same
    parameters, sent in the query (or as a form / ``Parameters`` body)."""
    search = not op.path.rsplit("/", 1)[-1].startswith("$")
    return replace(
        op,
        method="post",
        path=f"{op.path}/_search" if search else op.path,
        operation_id=f"{op.operation_id}Post",
        summary=f"{op.summary} (POST)",
        errors=(*op.errors, 415),
    )


_POSTED: Final = frozenset(
    {
        "searchPatient",
        "searchCarePlan",
        "searchConsent",
        "searchGoal",
        "searchCareTeam",
        "searchProvenance",
        "patientEverything",
        "accessCheck",
    }
)
OPERATIONS: Final[tuple[Operation, ...]] = tuple(
    op
    for base in (*_BASE_OPERATIONS, *_REFERENCED)
    for op in ((base, _posted(base)) if base.operation_id in _POSTED else (base,))
)

"""The OpenAPI document, and a bounded schemathesis run driving every operation it declares.

The run is against a real gateway on loopback in front of the real simulators, with its own
SQLite file (the Consent writes it makes stay there), and a valid token and purpose for each
operation's audience so the cases get past the gate. Per operation it sends at most
:data:`EXAMPLES` derandomised cases and checks: no 5xx, the status code is documented, the
content type is declared, the body conforms to the declared schema.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi.openapi.utils import get_openapi
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from consent.model import NHS_NUMBER_SYSTEM
from gateway.fhir.openapi import FHIR_JSON
from gateway.fhir.openapi_table import OPERATIONS
from simulators.population import SCENARIOS
from tests.gateway.harness import Gateway
from tests.gateway.patient_support import directive

pytestmark = pytest.mark.socket  # driven by a sync client in a worker thread: over a socket

EXAMPLES = 40  # cases per operation (about 30 s for all of them here)
FEWER = {"privacyAlerts": 8}  # each one reads the trail and asks the sources  # the slow ones
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_gateway(gw: Gateway) -> Gateway:
    """The module's own gateway (``tests/gateway/conftest.py``), named for what it is for."""
    return gw


def _origin(gw: Gateway) -> str:
    return gw.base_url.removesuffix("/fhir")


# --- the document -------------------------------------------------------------------------


async def _document(gw: Gateway) -> tuple[httpx.Response, dict[str, Any]]:
    resp = await gw.client.get(f"{_origin(gw)}/openapi.json")
    assert resp.status_code == 200
    doc: dict[str, Any] = resp.json()
    return resp, doc


async def test_document_is_served_as_json_and_covers_every_route(fuzz_gateway: Gateway) -> None:
    resp, doc = await _document(fuzz_gateway)
    assert resp.headers["content-type"] == "application/json"
    declared = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    # What FastAPI itself finds among the app's routes (the document it would have served).
    derived = get_openapi(title="x", version="0", routes=fuzz_gateway.app.routes)["paths"]
    routed = {(m.upper(), p) for p, ops in derived.items() for m in ops}
    assert declared == routed
    assert len({op.operation_id for op in OPERATIONS}) == len(OPERATIONS)


async def test_bearer_security_on_fhir_routes_only(fuzz_gateway: Gateway) -> None:
    _, doc = await _document(fuzz_gateway)
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            public = ("/fhir/metadata", "/fhir/StructureDefinition/", "/fhir/CodeSystem/")
            secured = path.startswith("/fhir/") and not path.startswith(public)
            assert op["security"] == ([{"bearer": []}] if secured else []), path
            if secured:
                assert {"401", "403"} <= set(op["responses"]), path


async def test_parameters_bodies_and_media_types(fuzz_gateway: Gateway) -> None:
    _, doc = await _document(fuzz_gateway)
    paths = doc["paths"]
    nhs = next(p for p in paths["/fhir/Patient/{nhs}"]["get"]["parameters"] if p["name"] == "nhs")
    assert nhs["in"] == "path" and nhs["required"] and nhs["schema"]["pattern"] == "^[0-9]{10}$"
    careplan = {p["name"]: p for p in paths["/fhir/CarePlan"]["get"]["parameters"]}
    assert {"patient", "subject", "patient.identifier", "status", "_count", "_offset"} <= set(
        careplan
    )
    assert careplan["_count"]["schema"]["type"] == "integer"
    audit = {p["name"]: p for p in paths["/fhir/AuditEvent"]["get"]["parameters"]}
    assert audit["date"]["schema"]["type"] == "array" and audit["date"]["explode"] is True
    assert re.fullmatch(audit["date"]["schema"]["items"]["pattern"], "ge2026-11-01T10:00:00+14:00")
    bodies = {
        (path, method): op["requestBody"]["content"]
        for path, ops in paths.items()
        for method, op in ops.items()
        if "requestBody" in op
    }
    assert bodies == {
        ("/fhir/Consent", "post"): {
            FHIR_JSON: {"schema": {"$ref": "#/components/schemas/ConsentDirective"}}
        },
        ("/fhir/Consent/{consent_id}", "put"): {
            FHIR_JSON: {"schema": {"$ref": "#/components/schemas/ConsentDirective"}}
        },
        ("/fhir/AuditEvent/{event_id}/$review", "post"): {
            FHIR_JSON: {"schema": {"$ref": "#/components/schemas/ReviewParameters"}}
        },
        ("/fhir/CarePlan", "post"): {
            FHIR_JSON: {"schema": {"$ref": "#/components/schemas/JointCarePlan"}}
        },
        ("/fhir/CarePlan/{plan_id}", "put"): {
            FHIR_JSON: {"schema": {"$ref": "#/components/schemas/JointCarePlan"}}
        },
    }
    for path, ops in paths.items():
        for op in ops.values():
            for status, response in op["responses"].items():
                assert FHIR_JSON in response["content"], (path, status)
                if status.startswith(("4", "5")) and not path.startswith("/health"):
                    schema = response["content"][FHIR_JSON]["schema"]
                    assert schema == {"$ref": "#/components/schemas/OperationOutcome"}


# --- the schemathesis run -------------------------------------------------------------------


@dataclass
class Run:
    cases: int = 0
    statuses: dict[str, set[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _headers_for(gw: Gateway, tag: str) -> dict[str, str]:
    """A token and purpose that get past the gate for the operation's audience."""
    if tag == "audit":
        token = gw.token(
            role="R0001",
            org="X26",
            purpose="HOPERAT",
            sub="ig-fuzz",
            scopes=("user/AuditEvent.rs", "user/AuditEvent.c"),
        )
        purpose = "HOPERAT"
    else:
        token = gw.token(scopes=("user/*.cruds",), sub="clinician-fuzz")
        purpose = "TREAT"
    return {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": purpose}


def _describe(case: Any) -> str:
    parts = [f"{case.method} {case.formatted_path}"]
    if case.query:
        parts.append(f"query={case.query!r}")
    if case.body is not None and not isinstance(case.body, type(None)):
        parts.append(f"body={str(case.body)[:300]}")
    return " ".join(parts)


KNOWN_PEOPLE = sorted({s.nhs_number for s in SCENARIOS.values() if s.nhs_number})


def _known_person(case: Any, nhs: str) -> Any:
    """The case about a person the simulators hold: NHS number in the path, the subject
    parameters and a Consent's patient (random ten digits are almost never valid)."""
    if "nhs" in (case.path_parameters or {}):
        case.path_parameters["nhs"] = nhs
    for name in ("patient", "subject", "identifier", "patient.identifier"):
        if case.query and name in case.query:
            case.query[name] = nhs
    if isinstance(case.body, dict) and isinstance(case.body.get("patient"), dict):
        case.body["patient"] = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}
    return case


def _with_known_people(cases: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    known = st.tuples(cases, st.sampled_from(KNOWN_PEOPLE)).map(lambda t: _known_person(*t))
    return st.one_of(cases, known)


def _driver(
    run: Run,
    operation: Any,
    op_id: str,
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
) -> Callable[[], None]:
    """The hypothesis test for one operation: send each case, check the answer, record."""
    statuses = run.statuses.setdefault(op_id, set())

    @settings(
        max_examples=FEWER.get(op_id, EXAMPLES),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_with_known_people(operation.as_strategy()))
    def drive(case: Any) -> None:
        run.cases += 1
        response = case.call(base_url=base_url, headers=headers, timeout=30, session=session)
        statuses.add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:  # keep going: every failure is reported at the end
            run.failures.append(f"{op_id}: {_describe(case)} -> {response.status_code}: {exc}")

    result: Callable[[], None] = drive
    return result


def _fuzz(schema: Any, gw: Gateway) -> Run:
    """Every operation, :data:`EXAMPLES` cases each; runs in a worker thread (sync requests)
    while the gateway serves on the test's event loop."""
    run = Run()
    base_url = _origin(gw)
    session = requests.Session()  # keep-alive: one connection for the whole run
    for result in schema.get_all_operations():
        operation = result.ok()
        op_id = operation.definition.raw["operationId"]
        tag = operation.definition.raw["tags"][0]
        drive = _driver(run, operation, op_id, base_url, _headers_for(gw, tag), session)
        drive()
    return run


@pytest.mark.slow
async def test_schemathesis_finds_no_5xx_and_no_schema_violation(fuzz_gateway: Gateway) -> None:
    _, doc = await _document(fuzz_gateway)
    schema = schemathesis.openapi.from_dict(doc)
    run = await asyncio.to_thread(_fuzz, schema, fuzz_gateway)
    assert not run.failures, "\n\n".join(run.failures[:20])
    assert run.cases >= len(OPERATIONS) * 10
    # The run got past the gate: some reads and searches answered 200.
    assert 200 in run.statuses["searchAuditEvent"] and 200 in run.statuses["metadata"]
    assert 200 in run.statuses["patientEverything"] and 201 in run.statuses["createConsent"]


async def test_a_consent_period_at_the_calendar_end_is_no_server_error(
    fuzz_gateway: Gateway,
) -> None:
    """The first 500 this run found (a provision period bound on 0001-01-01 at +14:00 left
    datetime's range), sent once more as it was found."""
    nhs = KNOWN_PEOPLE[0]
    at_the_end = {"type": "deny", "period": {"start": "0001-01-01T00:00:00+14:00"}}
    body = directive(nhs, "OPTOUT", at_the_end)
    headers = {**_headers_for(fuzz_gateway, "consent"), "Content-Type": FHIR_JSON}
    resp = await fuzz_gateway.client.post(
        f"{fuzz_gateway.base_url}/Consent", headers=headers, json=body
    )
    assert resp.status_code < 500, resp.text

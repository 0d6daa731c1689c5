"""The one error boundary: every failure is a FHIR OperationOutcome with its X-Request-ID,
audited (outcome 8 for 5xx) before the answer starts, on a connection that stays open.

A real gateway on loopback; the failures come from routes this module adds to it (an
unexpected exception, a typed parameter FastAPI validates) and from real requests the
router refuses (unknown path, wrong method).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from gateway.audit import note as audit_trail
from simulators.population import SCENARIOS
from simulators.runner import source_configs
from tests.gateway.boundary_support import captured_logs, client_port, events_for
from tests.gateway.harness import Gateway, assert_outcome, running_gateway

SECRET = "sub-that-must-not-be-logged-7f3a"


async def _boom(kind: str) -> None:
    audit_trail.note_decision("permit", (), False, None)  # as if the decision had permitted
    if kind == "database":
        raise OperationalError("SELECT 1", {"sub": SECRET}, ConnectionRefusedError(SECRET))
    raise RuntimeError(f"unexpected failure carrying {SECRET}")


async def _typed(n: int) -> dict[str, int]:
    return {"n": n}


@pytest.fixture(scope="module")
async def gw(
    running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        source_configs(running_sources), *signing_key, socket=True
    ) as gateway:
        gateway.app.add_api_route("/fhir/Boom/{kind}", _boom, methods=["GET"])
        gateway.app.add_api_route("/fhir/Typed", _typed, methods=["GET"])
        yield gateway


async def _request(gw: Gateway, method: str, path: str, **kw: Any) -> tuple[Any, str]:
    rid = f"b-{uuid.uuid4()}"
    headers = {**kw.pop("headers", gw.headers()), "X-Request-ID": rid}
    resp = await gw.client.request(method, f"{gw.base_url}{path}", headers=headers, **kw)
    return resp, rid


async def test_unexpected_exception_is_an_audited_500_on_a_connection_that_stays_open(
    gw: Gateway,
) -> None:
    number = SCENARIOS["both"].nhs_number
    before, _ = await _request(gw, "GET", "/metadata")
    with captured_logs() as logs:
        resp, rid = await _request(gw, "GET", "/Boom/runtime")
    body = assert_outcome(resp, 500, "exception")
    assert body["issue"][0]["severity"] == "error"
    assert "Internal error" in body["issue"][0]["diagnostics"]
    assert SECRET not in resp.text
    assert resp.headers["x-request-id"] == rid

    [event] = await events_for(gw.audit, rid)
    assert event["outcome"] == "8"
    assert event["outcomeDesc"].startswith("HTTP 500")
    assert "HTTP 200" not in json.dumps(event)

    # One access line with the route template and the status; the failure's class and
    # where it was raised, never its message.
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    access = [r for r in lines if r.get("event") == "request"]
    assert [(r["route"], r["status"], r["request_id"]) for r in access] == [
        ("/fhir/Boom/{kind}", 500, rid)
    ]
    failure = next(r for r in lines if r.get("event") == "unhandled_error")
    assert failure["error"] == "RuntimeError" and any("_boom" in w for w in failure["where"])
    assert SECRET not in logs.getvalue() and "Traceback" not in logs.getvalue()

    # The same keep-alive connection carries the next request.
    after = await gw.get(f"/Patient/{number}")
    assert after.status_code == 200
    assert client_port(before) == client_port(resp) == client_port(after)


async def test_database_error_in_a_route_is_a_503_outcome_without_its_parameters(
    gw: Gateway,
) -> None:
    with captured_logs() as logs:
        resp, rid = await _request(gw, "GET", "/Boom/database")
    body = assert_outcome(resp, 503, "transient")
    assert "database" in body["issue"][0]["diagnostics"]
    assert resp.headers["x-request-id"] == rid
    [event] = await events_for(gw.audit, rid)
    assert event["outcome"] == "8" and event["outcomeDesc"].startswith("HTTP 503")
    record = next(
        json.loads(line)
        for line in logs.getvalue().splitlines()
        if '"database_unavailable"' in line
    )
    assert record["error"] == "OperationalError"
    assert SECRET not in logs.getvalue()


async def test_unknown_path_and_wrong_method_are_audited_outcomes(gw: Gateway) -> None:
    number = SCENARIOS["both"].nhs_number
    resp, rid = await _request(gw, "GET", "/NoSuchType/1")
    assert_outcome(resp, 404, "not-found")
    assert resp.headers["x-request-id"] == rid
    [event] = await events_for(gw.audit, rid)
    assert event["outcome"] == "4" and event["outcomeDesc"].startswith("HTTP 404")

    resp, rid = await _request(gw, "DELETE", f"/Patient/{number}")
    assert_outcome(resp, 405, "not-supported")
    assert resp.headers["allow"] == "GET, HEAD"  # HEAD is answered wherever GET is
    assert resp.headers["x-request-id"] == rid
    [event] = await events_for(gw.audit, rid)
    assert event["outcome"] == "4" and event["outcomeDesc"].startswith("HTTP 405")


async def test_parameter_fastapi_refuses_is_a_400_outcome(gw: Gateway) -> None:
    resp, rid = await _request(gw, "GET", "/Typed", params={"n": "not-a-number"})
    body = assert_outcome(resp, 400, "invalid")
    assert "query.n" in body["issue"][0]["diagnostics"]
    assert resp.headers["x-request-id"] == rid
    [event] = await events_for(gw.audit, rid)
    assert event["outcome"] == "4"


async def test_health_answers_carry_a_request_id_and_are_not_audited(gw: Gateway) -> None:
    base = gw.base_url.removesuffix("/fhir")
    before = await gw.audit.count()
    resp = await gw.client.get(f"{base}/health/live", headers={"X-Request-ID": "live-1"})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "live-1"
    missing = await gw.client.get(f"{base}/nowhere")
    assert_outcome(missing, 404, "not-found")
    assert await gw.audit.count() == before

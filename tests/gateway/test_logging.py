"""Logs never carry NHS numbers, names, dates of birth or tokens.

Drives the real ``caregateway demo`` process end to end (the printed ``curl`` target, a
search, ``$everything``, refusals) and scans everything it wrote to stderr.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
from typing import Any

import httpx
import structlog

from gateway.embedded import free_port
from gateway.logging import REDACTED, configure_logging, log_access
from simulators.population import SCENARIOS
from tests.gateway.harness import Gateway
from tests.gateway.serve_procs import interrupt


def _reader(stream: Any, sink: queue.Queue[str | None]) -> None:
    for line in iter(stream.readline, ""):
        sink.put(line)
    sink.put(None)


def test_redaction_processor_masks_keys_and_shapes() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    structlog.get_logger().info(
        "probe",
        nhs_number="9990000018",
        detail="number 999 000 0018, born 1936-04-02, Bearer abc.def",
        token="eyJhbGciOi.eyJzdWIi.sig",
        nested={"name": "Joan Smith", "ok": "2026-01-01T10:00:00Z"},
    )
    record = json.loads(out.getvalue())
    assert record["nhs_number"] == REDACTED and record["token"] == REDACTED
    assert "9990000018" not in out.getvalue() and "999 000 0018" not in out.getvalue()
    assert "1936-04-02" not in out.getvalue() and "abc.def" not in out.getvalue()
    assert record["nested"] == {"name": REDACTED, "ok": "2026-01-01T10:00:00Z"}


def test_request_fields_are_never_redacted_but_nhs_numbers_elsewhere_are() -> None:
    """A request id with a ten-digit run (about 1 UUID in 77 has one) survives intact, so the
    log line still matches its AuditEvent; the same digits anywhere else are masked."""
    out = io.StringIO()
    configure_logging("json", stream=out)
    request_id = "5f0c1a2e-7d3b-4c1e-9a2b-123456789012"
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        structlog.get_logger().info(
            "request",
            method="GET",
            route="/fhir/Patient/{nhs}",
            status=200,
            latency_ms=12.5,
            detail="looked up 9990000018 for 999 000 0026",
        )
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    record = json.loads(out.getvalue())
    assert record["request_id"] == request_id
    assert (record["route"], record["status"], record["latency_ms"]) == (
        "/fhir/Patient/{nhs}",
        200,
        12.5,
    )
    assert record["detail"] == f"looked up {REDACTED} for {REDACTED}"
    assert "9990000018" not in out.getvalue() and "999 000 0026" not in out.getvalue()


class _Unused:
    def info(self, *_args: Any, **_kw: Any) -> None:
        raise AssertionError("the access line went through structlog")


def test_the_access_line_written_directly_is_the_one_structlog_writes() -> None:
    """``log_access`` renders the access line itself while the JSON configuration is in
    place: the text must be what the processors make of the same call, but the time."""
    logger = structlog.get_logger("caregateway.access")
    cases = [
        ("GET", "/fhir/Patient/{nhs}/$everything", 200, 12.5),
        ("POST", "unmatched", 503, 0.07),
        (None, "/fhir/Consent/{id}", 404, 1e-05),
        ('G\u00e9T"', "/apps/{path:path}", 401, 120.0),
    ]
    for method, route, status, latency in cases:
        direct, through = io.StringIO(), io.StringIO()
        for out, fast in ((direct, True), (through, False)):
            configure_logging("json", stream=out)
            structlog.contextvars.bind_contextvars(request_id="req-77")
            try:
                if fast:  # a logger that must not be asked: the line is written directly
                    log_access(_Unused(), method=method, route=route, status=status,
                               latency_ms=latency, request_id="req-77")  # fmt: skip
                else:
                    logger.info("request", method=method, route=route, status=status,
                                latency_ms=latency)  # fmt: skip
            finally:
                structlog.contextvars.unbind_contextvars("request_id")
        line, expected = direct.getvalue(), through.getvalue()
        assert line.count("\n") == 1 and line.endswith("\n")
        cut = '"timestamp": '
        assert line.split(cut)[0] == expected.split(cut)[0]
        assert json.loads(line).keys() == json.loads(expected).keys()
        assert json.loads(line)["timestamp"].endswith("Z")


async def test_gateway_log_line_matches_its_audit_event(gateway: Gateway) -> None:
    """Over real HTTP: the request line the gateway logs carries the very request id its
    AuditEvent records, though the id has a ten-digit run; the NHS number is in neither."""
    out = io.StringIO()
    configure_logging("json", stream=out)
    request_id = "audit-link-1234567890x"
    number = SCENARIOS["both"].nhs_number or ""
    resp = await gateway.get(
        f"/Patient/{number}", headers={**gateway.headers(), "X-Request-ID": request_id}
    )
    assert resp.status_code == 200 and resp.headers["x-request-id"] == request_id
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    request_lines = [r for r in lines if r.get("event") == "request"]
    assert [r["request_id"] for r in request_lines] == [request_id]
    assert request_lines[0]["route"] == "/fhir/Patient/{nhs}"
    events = [
        e
        for e in await gateway.audit.search(count=200)
        for ent in e.get("entity", ())
        if ent.get("what", {}).get("identifier", {}).get("value") == request_id
    ]
    assert len(events) == 1
    assert number not in out.getvalue()


def test_demo_end_to_end_logs_nothing_identifying() -> None:
    port = free_port()
    env = {**os.environ, "CAREGW_PORT": str(port), "CAREGW_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out_lines: queue.Queue[str | None] = queue.Queue()
    err_lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, out_lines), daemon=True).start()
    threading.Thread(target=_reader, args=(proc.stderr, err_lines), daemon=True).start()
    banner: list[str] = []
    try:
        while True:
            line = out_lines.get(timeout=60)
            assert line is not None, "demo exited before it was ready"
            banner.append(line)
            if line.strip().startswith("curl "):
                break
        curl = shlex.split(banner[-1].strip())
        token = curl[curl.index("-H") + 1].removeprefix("Authorization: Bearer ")
        url = curl[-1]
        numbers = re.findall(r"\b(999\d{7})\b", "".join(banner))
        assert numbers, "demo printed no scenario NHS numbers"

        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(timeout=30) as client:
            patient = client.get(url, headers=headers)
            assert patient.status_code == 200, patient.text
            body = patient.json()
            assert body["resourceType"] == "Patient" and body["id"] == url.rsplit("/", 1)[-1]
            base = url.rsplit("/Patient/", 1)[0]
            names = {n["family"] for n in body.get("name", ()) if n.get("family")}
            birth = body.get("birthDate")
            for number in numbers[:4]:
                client.get(f"{base}/Patient/{number}/$everything", headers=headers)
                client.get(f"{base}/CarePlan", params={"patient": number}, headers=headers)
            client.get(f"{base}/Patient/{numbers[0]}", headers={"Authorization": "Bearer junk"})
            client.get(f"{base}/Patient/{numbers[0]}", headers={**headers, "X-Purpose-Of-Use": ""})
            client.get(f"{base}/Patient/12345", headers=headers)
    finally:
        interrupt(proc, 30)
    logs: list[str] = []
    while True:
        line = err_lines.get(timeout=10)
        if line is None:
            break
        logs.append(line)
    text = "".join(logs)
    assert '"route": "/fhir/Patient/{nhs}"' in text, "no access log lines were captured"
    assert token not in text
    for number in numbers:
        assert number not in text
        assert f"{number[:3]} {number[3:6]} {number[6:]}" not in text
    for name in names:
        assert name not in text
    if birth:
        assert birth not in text

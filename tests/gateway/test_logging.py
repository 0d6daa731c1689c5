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
import signal
import subprocess
import sys
import threading
from typing import Any

import httpx
import structlog

from gateway.logging import REDACTED, configure_logging
from tests.gateway.harness import free_port


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
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
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

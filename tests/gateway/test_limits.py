"""Size limits at the door: 413 body, 431 header value / break-glass reason, 414 URI.

Every refusal is an audited OperationOutcome with its X-Request-ID. An 8 MB break-glass
reason never becomes an audit row; a body is read only up to the limit, chunked or not.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.audit.store import audit_event
from gateway.limits import Limits
from gateway.settings import Settings
from simulators.population import SCENARIOS
from simulators.runner import source_configs
from tests.gateway.boundary_support import events_for, gateway_on
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome

pytestmark = pytest.mark.socket  # limits on what arrives over HTTP: over a real socket

NUMBER = SCENARIOS["both"].nhs_number or ""
MiB = 1024 * 1024
IG_SCOPES = ("user/AuditEvent.rs", "user/AuditEvent.c")


async def _send(
    gw: Gateway, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[httpx.Response, str]:
    rid = f"l-{uuid.uuid4()}"
    resp = await gw.client.request(
        method,
        f"{gw.base_url}{path}",
        headers={**(headers if headers is not None else gw.headers()), "X-Request-ID": rid},
        **kw,
    )
    return resp, rid


async def _refused_and_audited(
    gw: Gateway, resp: httpx.Response, rid: str, status: int, reason: str
) -> dict[str, Any]:
    body = assert_outcome(resp, status, "too-long")
    assert body["issue"][0]["details"]["coding"][0]["code"] == reason
    assert resp.headers["x-request-id"] == rid
    [event] = await events_for(gw.audit, rid)
    assert event["outcome"] == "4" and event["outcomeDesc"].startswith(f"HTTP {status}")
    return body


def _break_glass(gw: Gateway, reason: str) -> dict[str, str]:
    return {
        **gw.headers(org="F81004", purpose=None),
        "X-Purpose-Of-Use": "ETREAT",
        "X-Break-Glass-Reason": reason,
    }


async def test_break_glass_reason_over_1000_characters_is_431(gw: Gateway) -> None:
    resp, rid = await _send(gw, "GET", f"/Patient/{NUMBER}", _break_glass(gw, "r" * 1001))
    body = await _refused_and_audited(gw, resp, rid, 431, "header-too-large")
    assert "X-Break-Glass-Reason" in body["issue"][0]["diagnostics"]
    # 1,000 characters is still a reason.
    at_limit = ("Unconscious in A&E; " * 50)[:-1] + "."
    assert len(at_limit) == 1000
    resp, rid = await _send(gw, "GET", f"/Patient/{NUMBER}", _break_glass(gw, at_limit))
    assert_fhir(resp, 200)
    [event] = await events_for(gw.audit, rid)
    assert at_limit in event["outcomeDesc"]


async def test_any_header_value_over_8_kib_is_431(gw: Gateway) -> None:
    headers = {**gw.headers(), "X-Client-Note": "n" * (8 * 1024 + 1)}
    resp, rid = await _send(gw, "GET", f"/Patient/{NUMBER}", headers)
    body = await _refused_and_audited(gw, resp, rid, 431, "header-too-large")
    assert "x-client-note" in body["issue"][0]["diagnostics"]


async def test_uri_over_8_kib_is_414(gw: Gateway) -> None:
    resp, rid = await _send(
        gw, "GET", "/CarePlan", params={"patient": NUMBER, "_filler": "q" * 8200}
    )
    await _refused_and_audited(gw, resp, rid, 414, "uri-too-long")


def _ig_lead(gw: Gateway) -> dict[str, str]:
    return {
        **gw.headers(role="R0001", org="X26", purpose="HOPERAT", scopes=IG_SCOPES),
        "Content-Type": "application/fhir+json",
    }


async def test_declared_body_over_1_mib_is_413_before_it_is_read(gw: Gateway) -> None:
    path = f"/AuditEvent/{uuid.uuid4()}/$review"
    resp, rid = await _send(gw, "POST", path, _ig_lead(gw), content=b"{" + b" " * (MiB + 10))
    await _refused_and_audited(gw, resp, rid, 413, "body-too-large")
    assert resp.headers["connection"] == "close"


async def test_chunked_body_over_the_limit_is_413(gw: Gateway) -> None:
    chunk = b" " * (64 * 1024)

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: chunked, 1.5 MiB
        for _ in range(24):
            yield chunk

    path = f"/AuditEvent/{uuid.uuid4()}/$review"
    resp, rid = await _send(gw, "POST", path, _ig_lead(gw), content=body())
    await _refused_and_audited(gw, resp, rid, 413, "body-too-large")


async def test_endless_chunked_body_is_not_read_to_its_end(gw: Gateway) -> None:
    chunk, cap = b" " * (64 * 1024), 256 * MiB
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < cap:
            sent += len(chunk)
            yield chunk

    rid = f"l-{uuid.uuid4()}"
    headers = {**_ig_lead(gw), "X-Request-ID": rid}
    url = f"{gw.base_url}/AuditEvent/{uuid.uuid4()}/$review"
    try:
        resp = await gw.client.post(url, headers=headers, content=endless())
    except httpx.TransportError:
        pass  # the gateway closed the connection while the client was still sending
    else:
        assert_outcome(resp, 413, "too-long")
    # The gateway stopped reading after the limit (and a bounded drain) and closed: the
    # client could not push its body through, and the refusal is on record.
    assert sent < cap // 4, sent
    [event] = await events_for(gw.audit, rid)
    assert event["outcome"] == "4" and event["outcomeDesc"].startswith("HTTP 413")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_8_mb_break_glass_reason_never_becomes_an_audit_row(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    running_sources: Any,
    signing_key: tuple[bytes, dict[str, Any]],
) -> None:
    sources = source_configs(running_sources)
    async with gateway_on(backend, request, tmp_path, sources, signing_key) as gw:
        reason = "Patient unconscious; " + "x" * (8 * 1000 * 1000)
        resp, rid = await _send(gw, "GET", f"/Patient/{NUMBER}", _break_glass(gw, reason))
        await _refused_and_audited(gw, resp, rid, 431, "header-too-large")
        async with gw.audit.engine.connect() as conn:
            longest = (
                await conn.execute(select(func.max(func.length(audit_event.c.resource))))
            ).scalar_one()
        assert longest < 8 * 1024, longest


def test_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREGW_MAX_BODY_BYTES", "65536")
    monkeypatch.setenv("CAREGW_MAX_BREAK_GLASS_REASON_CHARS", "500")
    limits = Limits.from_settings(Settings(_env_file=None))
    assert limits == Limits(max_body_bytes=65536, max_break_glass_reason_chars=500)
    assert Limits.from_settings(Settings(_env_file=None)) != Limits()
    monkeypatch.delenv("CAREGW_MAX_BODY_BYTES")
    monkeypatch.delenv("CAREGW_MAX_BREAK_GLASS_REASON_CHARS")
    assert Limits.from_settings(Settings(_env_file=None)) == Limits()

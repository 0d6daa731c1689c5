"""One bad event never sinks the batch, and SQL parameters never reach the logs.

PostgreSQL enforces the widths of the audit columns (``agent_sub`` is 255 characters): a
token whose ``sub`` is longer is refused at the door (401, audited without it), an event
that would not fit is refused alone before it joins a group commit, and 30 innocent
concurrent requests are untouched. A statement the database refuses (the break-glass ledger
insert) is logged by class and SQLSTATE only: neither the stated reason nor the ``sub`` in
its parameters appears in any log line.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import text

from gateway.audit import AuditStore, AuditUnavailable
from gateway.audit.errors import AuditEventRejected
from gateway.audit.events import build_audit_event
from gateway.audit.widths import TRUNCATED
from gateway.db import create_schema, make_engine
from simulators.population import SCENARIOS
from simulators.runner import source_configs
from tests.gateway.audit_support import gateway_per_backend
from tests.gateway.boundary_support import captured_logs, events_for
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome, running_gateway
from tests.gateway.postgres_server import fresh_database
from tests.gateway.test_audit_events import BASE, make_record

NUMBER = SCENARIOS["both"].nhs_number or ""
INNOCENT = 30


# Thirty-one concurrent reads on a small shared machine: give the simulated sources time
# to answer them all (this test is about the audit batch, not source latency).
gw = gateway_per_backend("postgres", "sqlite", source_timeout_s=30.0)


async def _read(gw: Gateway, headers: dict[str, str]) -> tuple[int, str, dict[str, Any]]:
    rid = f"f-{uuid.uuid4()}"
    resp = await gw.client.get(
        f"{gw.base_url}/Patient/{NUMBER}", headers={**headers, "X-Request-ID": rid}
    )
    return resp.status_code, rid, resp.json()


async def test_long_sub_is_refused_alone_and_innocent_requests_are_audited(gw: Gateway) -> None:
    long_sub = "u" * 300
    assert_fhir(await gw.get(f"/Patient/{NUMBER}"), 200)
    innocent = [gw.headers(sub=f"innocent-{i:02d}") for i in range(INNOCENT)]
    results = await asyncio.gather(
        *(_read(gw, h) for h in innocent), _read(gw, gw.headers(sub=long_sub))
    )
    *fine, (status, rid, body) = results

    assert [s for s, _, _ in fine] == [200] * INNOCENT, [b for s, _, b in fine if s != 200][:2]
    for _, innocent_rid, _ in fine:
        [event] = await events_for(gw.audit, innocent_rid)
        assert event["outcome"] == "0"
    assert status == 401
    assert body["issue"][0]["code"] == "login"
    assert "'sub' claim is longer than 255 characters" in body["issue"][0]["diagnostics"]
    [event] = await events_for(gw.audit, rid)
    assert event["outcome"] == "4" and event["outcomeDesc"].startswith("HTTP 401")
    assert long_sub not in str(event) and "u" * 255 not in str(event)
    assert (await gw.audit.verify()).ok


async def test_event_that_would_not_fit_is_refused_before_the_batch(postgres_url: str) -> None:
    engine = make_engine(await fresh_database(postgres_url))
    await create_schema(engine)
    store = AuditStore(engine)
    await store.start()
    try:
        innocent = [build_audit_event(make_record(user_sub=f"u{i}"), BASE) for i in range(30)]
        oversized = build_audit_event(make_record(), BASE)
        oversized["agent"][0]["who"]["identifier"]["value"] = "x" * 300  # not built here
        results = await asyncio.gather(
            *(store.append(e) for e in innocent), store.append(oversized), return_exceptions=True
        )
        assert results[:-1] == [e["id"] for e in innocent]
        assert isinstance(results[-1], AuditEventRejected)
        assert isinstance(results[-1], AuditUnavailable) and results[-1].field == "agent_sub"
        assert (await store.verify()).checked == 30

        # Events the gateway builds are clipped visibly instead.
        long_one = build_audit_event(make_record(user_sub="y" * 300, user_org="O" * 40), BASE)
        stored = await store.get(await store.append(long_one))
        assert stored is not None
        sub = stored["agent"][0]["who"]["identifier"]["value"]
        assert len(sub) == 255 and sub.endswith(TRUNCATED)
        assert (await store.verify()).ok
    finally:
        await store.close()
        await engine.dispose()


async def test_refused_break_glass_insert_logs_neither_reason_nor_sub(
    postgres_url: str, running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> None:
    url = await fresh_database(postgres_url)
    reason = "Found collapsed at home: Joan Smith, born 1936-04-02, LS1 4AB"
    sub = f"bg-user-{uuid.uuid4().hex[:8]}"
    async with running_gateway(
        source_configs(running_sources), *signing_key, database_url=url
    ) as gw:
        engine = make_engine(url)
        async with engine.begin() as conn:  # the ledger now refuses every new grant
            await conn.execute(
                text(
                    "ALTER TABLE break_glass_grant ADD CONSTRAINT refuse_all "
                    "CHECK (false) NOT VALID"
                )
            )
        await engine.dispose()
        headers = {
            **gw.headers(org="F81004", purpose=None, sub=sub),
            "X-Purpose-Of-Use": "ETREAT",
            "X-Break-Glass-Reason": reason,
        }
        with captured_logs() as logs:
            resp = await gw.client.get(f"{gw.base_url}/Patient/{NUMBER}", headers=headers)
        body = assert_outcome(resp, 503, "transient")
        assert reason not in resp.text and sub not in resp.text
        logged = logs.getvalue()
        assert '"database_unavailable"' in logged and "IntegrityError" in logged
        assert '"sqlstate": "23514"' in logged  # check_violation: the operator sees why
        for secret in (reason, "Joan Smith", "LS1 4AB", sub):
            assert secret not in logged, secret
        assert "Traceback" not in logged and "parameters" not in logged
        assert "nothing was released" in body["issue"][0]["diagnostics"]
        # The gateway serves on.
        assert_fhir(await gw.get(f"/Patient/{NUMBER}"), 200)

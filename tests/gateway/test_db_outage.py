"""A database that cannot be reached is a 503 OperationOutcome everywhere, never a 500, and
the keep-alive connection that carried it goes on working when the database returns.

PostgreSQL: a server of the test's own (``PostgresServer``), stopped under the running
gateway and started again. SQLite: the database's directory moved away under the running
gateway (its pooled connections closed) and moved back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.population import SCENARIOS
from simulators.runner import source_configs
from tests.gateway.boundary_support import client_port, events_for
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome, running_gateway
from tests.gateway.postgres_server import PostgresServer

NUMBER = SCENARIOS["both"].nhs_number or ""
IG_SCOPES = ("user/AuditEvent.rs",)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


async def _get(gw: Gateway, path: str, **headers: str) -> tuple[httpx.Response, str]:
    rid = f"o-{uuid.uuid4()}"
    resp = await gw.client.get(
        f"{gw.base_url}{path}", headers={**gw.headers(), "X-Request-ID": rid, **headers}
    )
    return resp, rid


async def _outage_round(
    gw: Gateway, go_away: Callable[[], Any], come_back: Callable[[], Any]
) -> None:
    ok, ok_id = await _get(gw, f"/Patient/{NUMBER}")
    assert_fhir(ok, 200)
    port = client_port(ok)

    await go_away()
    breaking_glass = {
        **gw.headers(org="F81004", purpose=None),
        "X-Purpose-Of-Use": "ETREAT",
        "X-Break-Glass-Reason": "Collapsed in clinic, no history available",
    }
    ig_lead = gw.headers(role="R0001", org="X26", purpose="HOPERAT", scopes=IG_SCOPES)
    for path, headers in (
        (f"/Patient/{NUMBER}", {}),  # consent read in the decider
        (f"/Patient/{NUMBER}/$everything", {}),
        (f"/Patient/{NUMBER}", breaking_glass),  # break-glass ledger
        (f"/AuditEvent?patient={NUMBER}", ig_lead),  # audit trail read
    ):
        resp, rid = await _get(gw, path, **headers)
        body = assert_outcome(resp, 503, "transient")
        assert body["issue"][0]["severity"] == "error"
        assert resp.headers["x-request-id"] == rid
        assert client_port(resp) == port, f"{path}: the connection was not kept open"

    await come_back()
    again, again_id = await _get(gw, f"/Patient/{NUMBER}")
    assert_fhir(again, 200)
    assert client_port(again) == port
    # The trail carries on where it was: both answered 200s are in it, the chain whole.
    assert len(await events_for(gw.audit, ok_id)) == 1
    assert len(await events_for(gw.audit, again_id)) == 1
    assert (await gw.audit.verify()).ok


async def test_postgres_stopped_under_the_gateway_is_503_on_a_kept_connection(
    own_postgres: PostgresServer, running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> None:
    async with running_gateway(
        source_configs(running_sources), *signing_key, database_url=own_postgres.url, socket=True
    ) as gw:

        async def stop() -> None:
            own_postgres.stop()

        async def start() -> None:
            own_postgres.start()

        await _outage_round(gw, stop, start)


async def test_sqlite_gone_under_the_gateway_is_503_on_a_kept_connection(
    tmp_path: Path, running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    away = tmp_path / "away"
    async with running_gateway(
        source_configs(running_sources),
        *signing_key,
        database_url=f"sqlite+aiosqlite:///{folder / 'gateway.db'}",
        socket=True,
    ) as gw:
        engine = gw.audit.engine

        async def move_away() -> None:
            folder.rename(away)
            await engine.dispose()  # pooled connections would keep the moved file open

        async def move_back() -> None:
            away.rename(folder)

        await _outage_round(gw, move_away, move_back)

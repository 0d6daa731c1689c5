"""Audit events tell the truth: an event records the status its client actually got.

The audit commit is made to outlive the caller's wait with a real lock held by another
connection (PostgreSQL: the chain's advisory lock; SQLite: the database write lock). The
client gets ``503``; once the lock is released the writer commits, and the trail must hold
no event that says ``200``/permit for that request, and must record the ``503``.

A commit that hangs *after* the batch was sealed (PostgreSQL: a deferred trigger waiting on
another lock at COMMIT) goes in as built; the writer then appends a second event recording
the ``503`` and naming the first.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.store import chain_lock_key
from gateway.db import make_engine
from simulators.population import SCENARIOS
from simulators.runner import source_configs
from tests.gateway.audit_support import gateway_per_backend
from tests.gateway.boundary_support import events_for
from tests.gateway.harness import Gateway, assert_fhir, assert_outcome, running_gateway
from tests.gateway.postgres_server import fresh_database

NUMBER = SCENARIOS["both"].nhs_number or ""
WAIT_S = 0.5  # the store's commit wait in these tests (15 s in service)


gw = gateway_per_backend("sqlite", "postgres")


class _HeldWriteLock:
    """Another connection holding what the audit writer needs before it can insert."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._sqlite: sqlite3.Connection | None = None
        self._pg: AsyncConnection | None = None

    async def __aenter__(self) -> _HeldWriteLock:
        url = self.gw.audit.engine.url
        if url.get_backend_name() == "sqlite":
            self._sqlite = sqlite3.connect(str(url.database), isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")
        else:
            engine = make_engine(url.render_as_string(hide_password=False))
            self._pg = await engine.connect()
            key = chain_lock_key(self.gw.audit.chain_id)
            await self._pg.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        return self

    async def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("COMMIT")
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            engine = self._pg.engine
            await self._pg.close()  # ends the session, and its advisory lock
            await engine.dispose()
            self._pg = None

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def test_event_of_a_request_whose_audit_commit_timed_out_says_503(gw: Gateway) -> None:
    store = gw.audit
    store.timeout_s = WAIT_S
    rid = f"t-{uuid.uuid4()}"
    async with _HeldWriteLock(gw) as lock:
        resp = await gw.client.get(
            f"{gw.base_url}/Patient/{NUMBER}", headers={**gw.headers(), "X-Request-ID": rid}
        )
        body = assert_outcome(resp, 503, "transient")
        assert "audit trail" in body["issue"][0]["diagnostics"]
        assert resp.headers["x-request-id"] == rid
        await lock.release()
        await store.wait_idle(timeout_s=30)

    events = await events_for(store, rid)
    assert len(events) == 1, events
    [event] = events
    assert event["outcome"] == "8"
    assert event["outcomeDesc"].startswith("HTTP 503")
    text_of = json.dumps(event)
    assert "HTTP 200" not in text_of and '"permit"' not in text_of
    assert not any(e.get("role", {}).get("code") == "4" for e in event.get("entity", ()))
    # Who asked and about whom stay on record.
    user = next(a for a in event["agent"] if a.get("requestor"))
    assert user["who"]["identifier"]["value"] == "test-user-0001"
    assert any(
        e.get("what", {}).get("identifier", {}).get("value") == NUMBER
        for e in event.get("entity", ())
    )
    # The store carries on, truthfully, once the lock is gone.
    store.timeout_s = 15.0
    ok = await gw.get(f"/Patient/{NUMBER}")
    assert_fhir(ok, 200)
    assert (await store.verify()).ok


async def test_caller_giving_up_during_the_commit_itself_gets_a_correcting_event(
    postgres_url: str, running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> None:
    url = await fresh_database(postgres_url)
    async with running_gateway(
        source_configs(running_sources), *signing_key, database_url=url
    ) as gw:
        store = gw.audit
        await gw.get("/metadata")  # the schema exists once the gateway has started
        holder = make_engine(url)
        async with holder.begin() as conn:
            await conn.execute(
                text(
                    "CREATE FUNCTION hold_commit() RETURNS trigger AS $$ BEGIN "
                    "PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON audit_event "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit()"
                )
            )
        lock = await holder.connect()
        try:
            await lock.execute(text("SELECT pg_advisory_lock(4242)"))
            store.timeout_s = WAIT_S
            rid = f"c-{uuid.uuid4()}"
            resp = await gw.client.get(
                f"{gw.base_url}/Patient/{NUMBER}",
                headers={**gw.headers(), "X-Request-ID": rid},
            )
            assert_outcome(resp, 503, "transient")
        finally:
            await lock.close()
            await holder.dispose()
        await store.wait_idle(timeout_s=30)

        events = sorted(await events_for(store, rid), key=lambda e: e["outcome"])
        assert [e["outcome"] for e in events] == ["0", "8"], events
        original, correction = events
        assert original["outcomeDesc"].startswith("HTTP 200")
        assert correction["outcomeDesc"].startswith("HTTP 503")
        corrects = [
            e["what"]["reference"]
            for e in correction["entity"]
            if e.get("description") == "corrects"
        ]
        assert corrects == [f"AuditEvent/{original['id']}"]
        assert (await store.verify()).ok

"""Tokens and secrets sent in a query string are never stored in the audit trail.

A search carrying its bearer token as ``?access_token=`` (and an OAuth ``code`` and
``client_secret``) is answered, and its stored AuditEvent (the base64 query entity, and the
row as stored) holds no trace of them; every other parameter is kept as sent.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from sqlalchemy import select

from gateway.audit.note import clean_query
from gateway.audit.store import audit_event
from simulators.population import SCENARIOS
from tests.gateway.audit_support import gateway_per_backend
from tests.gateway.boundary_support import events_for
from tests.gateway.harness import Gateway, assert_fhir

NUMBER = SCENARIOS["both"].nhs_number or ""


gw = gateway_per_backend("sqlite", "postgres")


def _stored_query(event: dict[str, Any]) -> str:
    [query] = [e["query"] for e in event["entity"] if "query" in e]
    return base64.b64decode(query).decode("utf-8")


async def test_token_in_the_query_string_never_reaches_the_trail(gw: Gateway) -> None:
    token = gw.token()
    rid = f"s-{uuid.uuid4()}"
    resp = await gw.client.get(
        f"{gw.base_url}/CarePlan",
        params={
            "patient": NUMBER,
            "access_token": token,
            "Client_Secret": "s3cr3t-value",
            "code": "auth-code-77",
        },
        headers={
            "Authorization": f"Bearer {token}",
            "X-Request-ID": rid,
            "Prefer": "handling=lenient",
        },
    )
    assert_fhir(resp, 200)
    [event] = await events_for(gw.audit, rid)
    assert _stored_query(event) == (
        f"patient={NUMBER}&access_token=redacted&Client_Secret=redacted&code=redacted"
    )
    async with gw.audit.engine.connect() as conn:
        row = (
            await conn.execute(
                select(audit_event.c.resource).where(audit_event.c.id == event["id"])
            )
        ).scalar_one()
    for secret in (token, token.split(".")[1], "s3cr3t-value", "auth-code-77"):
        assert secret not in row
        assert base64.b64encode(secret.encode()).decode()[:16] not in row


def test_clean_query_keeps_what_was_asked_and_drops_credentials() -> None:
    assert clean_query("patient=9990000018&_count=10") == "patient=9990000018&_count=10"
    assert clean_query("id_token=a&refresh_token=b&password=c&client_assertion=d") == (
        "id_token=redacted&refresh_token=redacted&password=redacted&client_assertion=redacted"
    )
    assert clean_query("access%5Ftoken=abc&x=1") == "access%5Ftoken=redacted&x=1"
    # A JWT is a JWT whatever its parameter is called.
    assert clean_query("note=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln") == "note=redacted"
    assert clean_query("flag&patient=1") == "flag&patient=1"

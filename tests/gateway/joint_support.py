"""What the joint care plan tests share: the people, the callers, a plan body, the audit rows,
and a fresh database of each kind (an SQLite file, or a new PostgreSQL database)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.db import make_engine
from simulators.population import COUNCIL_ODS, SCENARIOS
from tests.gateway.harness import Gateway

NHS = SCENARIOS["both"].nhs_number or ""  # GP F81001, known to the council and the trust
NHS_COMMUNITY = SCENARIOS["community_only"].nhs_number or ""
GP_ORG = "F81001"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
FHIR_JSON = "application/fhir+json"
LEAD = {"system": "urn:caregateway:care-team-role", "code": "lead-professional"}
WRITE_SCOPES = ("user/CarePlan.cruds", "user/Patient.rs", "user/Consent.cruds")

GP: dict[str, Any] = {"role": "R8000", "org": GP_ORG, "sub": "gp-0001", "name": "Dr Test GP"}
SOCIAL_WORKER: dict[str, Any] = {
    "role": "LA-SW",
    "org": COUNCIL_ODS,
    "sub": "sw-0001",
    "name": "Test Social Worker",
}
ADMIN: dict[str, Any] = {"role": "R8008", "org": GP_ORG, "sub": "admin-0001"}
IG: dict[str, Any] = {"role": "R0001", "org": "X26", "sub": "ig-0001", "purpose": "HOPERAT"}
SYSTEM: dict[str, Any] = {"role": "R8000", "org": GP_ORG, "sub": "epr-0001",
                          "client_kind": "system", "scopes": ("system/*.cruds",)}  # fmt: skip


def plan_body(
    nhs: str = NHS,
    *,
    status: str = "active",
    lead_org: str = COUNCIL_ODS,
    leads: int = 1,
    activities: int = 1,
) -> dict[str, Any]:
    """A joint plan as a GP would send it: the council's social worker as lead professional."""
    participants: list[dict[str, Any]] = [
        {
            "role": [{"coding": [dict(LEAD)]}] if i < leads else [{"text": "member"}],
            "member": {"type": "Practitioner", "display": f"Worker {i}"},
            "onBehalfOf": {"identifier": {"system": ODS, "value": lead_org if i == 0 else GP_ORG}},
        }
        for i in range(max(leads, 2))
    ]
    return {
        "resourceType": "CarePlan",
        "status": status,
        "intent": "plan",
        "title": "Staying well at home",
        "subject": {"reference": f"Patient/{nhs}"},
        "period": {"start": "2026-12-01"},
        "contained": [
            {
                "resourceType": "CareTeam",
                "id": "team",
                "status": "active",
                "participant": participants,
            },
            {
                "resourceType": "Goal",
                "id": "goal1",
                "lifecycleStatus": "active",
                "description": {"text": "Walk to the shops each week"},
                "subject": {"reference": f"Patient/{nhs}"},
            },
        ],  # fmt: skip
        "careTeam": [{"reference": "#team"}],
        "goal": [{"reference": "#goal1"}],
        "activity": [activity(f"Step {i}") for i in range(activities)],
        "note": [{"text": "Agreed at the multidisciplinary meeting."}],
    }


def activity(text_: str, performer: str = GP_ORG) -> dict[str, Any]:
    return {
        "detail": {
            "status": "scheduled",
            "description": text_,
            "performer": [{"identifier": {"system": ODS, "value": performer}}],
        }
    }


def changed(stored: dict[str, Any], **updates: Any) -> dict[str, Any]:
    body = copy.deepcopy(stored)
    body.update(updates)
    return body


class JointClient:
    """Writes and reads of joint plans through a running gateway, as one caller or another."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def headers(self, who: dict[str, Any], **extra: str) -> dict[str, str]:
        claims = {"scopes": WRITE_SCOPES, "purpose": "TREAT", **who}
        return {**self.gw.headers(**claims), "X-Request-ID": uuid.uuid4().hex, **extra}

    async def post(self, body: Any, who: dict[str, Any] = GP, **extra: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
        return await self.gw.client.post(
            f"{self.gw.base_url}/CarePlan",
            content=content,
            headers=self.headers(who, **{"Content-Type": FHIR_JSON, **extra}),
        )

    async def put(
        self, plan_id: str, body: Any, who: dict[str, Any] = GP, if_match: str | None = None
    ) -> httpx.Response:
        extra = {"Content-Type": FHIR_JSON}
        if if_match is not None:
            extra["If-Match"] = if_match
        return await self.gw.client.put(
            f"{self.gw.base_url}/CarePlan/{plan_id}", json=body, headers=self.headers(who, **extra)
        )

    async def get(self, path: str, who: dict[str, Any] = GP, **params: str) -> httpx.Response:
        return await self.gw.client.get(
            f"{self.gw.base_url}{path}", params=params, headers=self.headers(who)
        )

    async def delete(self, path: str, who: dict[str, Any] = GP) -> httpx.Response:
        return await self.gw.client.delete(f"{self.gw.base_url}{path}", headers=self.headers(who))


async def audit_of(gw: Gateway, resp: httpx.Response) -> dict[str, Any]:
    """The one AuditEvent the gateway committed for the request that answered ``resp``."""
    request_id = resp.request.headers["X-Request-ID"]
    found = [
        event
        for event in await gw.audit.search(count=2000)
        for entity in event.get("entity", ())
        if entity.get("type", {}).get("code") == "XrequestId"
        and entity.get("what", {}).get("identifier", {}).get("value") == request_id
    ]
    assert len(found) == 1, f"{len(found)} audit events for one request"
    return found[0]


def entity_refs(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", ()) if "reference" in e["what"]]


def patient_of(event: dict[str, Any]) -> str | None:
    for e in event.get("entity", ()):
        ident = e.get("what", {}).get("identifier", {})
        if ident.get("system") == "https://fhir.nhs.uk/Id/nhs-number":
            return str(ident["value"])
    return None


def subtype_of(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


@asynccontextmanager
async def fresh_database(kind: str, folder: Path, postgres_url: str | None) -> AsyncIterator[str]:
    """The URL of a new, empty database: an SQLite file in ``folder``, or a new database on
    the PostgreSQL server (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / f'joint-{uuid.uuid4().hex[:8]}.db'}"
        return
    assert postgres_url is not None
    name = f"joint_{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

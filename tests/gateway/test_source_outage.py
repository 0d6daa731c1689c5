"""A source outage is an outage: never told to the source's own staff as a denial.

The relationship is looked for in what the sources answered. While the community source is
failing, its own staff (organisation ``COMMUNITY_ODS``, the custodian of its records) had no
relationship left to find, and were told ``403 no-legitimate-relationship`` — audited as a
refusal and counted by the privacy monitoring rule. Now that answer is ``503`` naming the
source, audited as a failure (outcome ``8``), and the monitoring rule stays silent.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.audit.monitoring import rule_no_legitimate_relationship
from simulators.population import COMMUNITY_ODS
from simulators.runner import RunningSources
from tests.gateway.harness import Gateway, assert_fhir
from tests.gateway.source_faults import fresh_gateway
from tests.gateway.test_audit_http import _events_for
from tests.support.people import nhs

STAFF = {"org": COMMUNITY_ODS, "role": "R8000", "sub": "community-nurse-0001"}


async def control(running: RunningSources, **settings: Any) -> None:
    async with httpx.AsyncClient() as client:
        url = f"{running.community_url}/_control"
        if settings:
            (await client.post(url, json=settings)).raise_for_status()
        else:
            (await client.post(f"{url}/reset")).raise_for_status()


@pytest.fixture
async def gw(
    running_sources: RunningSources, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    async with fresh_gateway(running_sources, signing_key, reset=control) as gateway:
        yield gateway


async def call(gw: Gateway, path: str, **claims: Any) -> tuple[httpx.Response, dict[str, Any]]:
    """One request with its own request id, and the one AuditEvent it left."""
    rid = f"outage-{uuid.uuid4()}"
    headers = {**gw.headers(**(claims or STAFF)), "X-Request-ID": rid}
    resp = await gw.client.get(f"{gw.base_url}{path}", headers=headers)
    events = await _events_for(gw, rid)
    assert len(events) == 1, f"expected one event for {rid}, found {len(events)}"
    return resp, events[0]


def assert_outage(resp: httpx.Response, event: dict[str, Any]) -> None:
    body = assert_fhir(resp, 503)
    issue = body["issue"][0]
    assert issue["code"] == "transient"
    assert "community" in issue["diagnostics"]
    assert "no-legitimate-relationship" not in resp.text
    assert event["outcome"] == "8"
    assert "HTTP 503" in event["outcomeDesc"]
    assert "no-legitimate-relationship" not in str(event)
    assert "decision deny" not in event["outcomeDesc"]
    assert rule_no_legitimate_relationship([event]) == []


async def test_community_staff_get_their_record_when_the_source_answers(gw: Gateway) -> None:
    resp, event = await call(gw, f"/Patient/{nhs('both')}")
    assert assert_fhir(resp)["resourceType"] == "Patient"
    assert event["outcome"] == "0"


async def test_community_staff_during_its_outage_get_503_naming_it_not_a_denial(
    gw: Gateway, running_sources: RunningSources
) -> None:
    await control(running_sources, fail_status=500)
    # Known to social care as well: on main this was 403 no-legitimate-relationship.
    resp, event = await call(gw, f"/Patient/{nhs('both')}")
    assert_outage(resp, event)
    assert "source-unavailable" in event["outcomeDesc"]
    assert "decision indeterminate" in event["outcomeDesc"]
    assert resp.json()["issue"][0]["details"]["coding"][0]["code"] == "source-unavailable"

    resp, event = await call(gw, f"/Patient/{nhs('both')}/$everything")
    assert_outage(resp, event)
    resp, event = await call(gw, f"/Patient/{nhs('both')}/$access-check")
    assert_outage(resp, event)

    # Known to community health only: no source that answered knows the person.
    resp, event = await call(gw, f"/Patient/{nhs('community_only')}")
    assert_outage(resp, event)


async def test_a_denial_that_does_not_hang_on_the_missing_source_stands(
    gw: Gateway, running_sources: RunningSources
) -> None:
    await control(running_sources, fail_status=500)
    # The registered GP still reads what social care holds (a partial answer) ...
    resp, event = await call(gw, f"/Patient/{nhs('both')}", org="F81001", role="R8000")
    assert assert_fhir(resp)["resourceType"] == "Patient"
    assert event["outcome"] == "0"
    # ... and a purpose the role may not use is refused whatever the sources hold.
    resp, event = await call(gw, f"/Patient/{nhs('both')}", **STAFF, purpose="HMARKT")
    assert resp.status_code == 403, resp.text
    assert event["outcome"] == "4"

"""Helpers for the patient access tests: tokens as the SMART server issues them, answers."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.auth import generate_signing_key
from gateway.smart.tokens import Grantee, access_token_claims
from simulators.runner import RunningSources, source_configs
from tests.gateway.harness import Gateway, running_gateway
from tests.smart.support import smart_config
from tests.support.fhir import FHIR_JSON as FHIR_JSON
from tests.support.fhir import entries as entries
from tests.support.people import UNKNOWN as UNKNOWN
from tests.support.people import nhs as nhs
from tests.support.tokens import staff_headers

REASON_SYSTEM = "urn:caregateway:decision-reason"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ME_SCOPES = "openid fhirUser patient/*.rs patient/Consent.crus patient/AuditEvent.rs"


@asynccontextmanager
async def patient_gateway(
    running: RunningSources, *, socket: bool = False
) -> AsyncIterator[Gateway]:
    """A gateway of the test's own (own database) with the SMART authorization server on
    (``socket``: served by uvicorn, see ``tests.gateway.harness``)."""
    async with running_gateway(
        source_configs(running), *generate_signing_key(), smart=smart_config, socket=socket
    ) as gw:
        yield gw


def patient_token(gw: Gateway, number: str, level: str = "P9", scope: str = ME_SCOPES) -> str:
    """An access token exactly as the SMART server issues it to the person (client ``me``):
    its own claims function, signed with its own key."""
    server = gw.smart
    grantee = Grantee(
        kind="patient", sub=number, patient=number, proofing_level=level, purpose="PATRQT"
    )
    claims = access_token_claims(server.config, client_id="me", scope=scope, grantee=grantee)
    signed: str = server.config.keys.sign(claims, typ="at+jwt")
    return signed


def as_person(gw: Gateway, number: str, level: str = "P9", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {patient_token(gw, number, level, **kw)}"}


# A member of staff who may also record Consents: ``staff(gw, role, org, purpose=...)``.
staff = functools.partial(staff_headers, scopes=("user/*.cruds",))


async def post_json(
    gw: Gateway, path: str, body: dict[str, Any], headers: dict[str, str], method: str = "POST"
) -> httpx.Response:
    return await gw.client.request(
        method,
        f"{gw.base_url}{path}",
        content=json.dumps(body),
        headers={**headers, "Content-Type": FHIR_JSON},
    )


def outcome_entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return entries(bundle, "outcome")


def reason_codes(oo: dict[str, Any]) -> list[str]:
    return [
        c["code"]
        for issue in oo["issue"]
        for c in issue.get("details", {}).get("coding", ())
        if c.get("system") == REASON_SYSTEM
    ]


def references(node: Any) -> set[str]:
    """Every ``reference`` string anywhere in ``node`` (a resource, or a part or list of them)."""
    if isinstance(node, list):
        return set().union(*(references(i) for i in node)) if node else set()
    if isinstance(node, dict):
        own = {node["reference"]} if isinstance(node.get("reference"), str) else set()
        return own.union(*(references(v) for v in node.values()))
    return set()


def refused(resp: httpx.Response, reason: str) -> dict[str, Any]:
    """A ``403`` OperationOutcome (``forbidden``) carrying ``reason``."""
    assert resp.status_code == 403, resp.text
    body: dict[str, Any] = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "forbidden"
    assert reason in reason_codes(body), body
    return body


def directive(number: str, rule: str, provision: dict[str, Any]) -> dict[str, Any]:
    """A Consent as ``specs/consent-directives.md`` writes it (no performer, no organisation:
    the gateway fills them from the caller)."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": NHS_SYSTEM, "value": number}},
        "policyRule": {"coding": [{"system": ACT_CODE, "code": rule}]},
        "provision": provision,
    }


def objection(number: str) -> dict[str, Any]:
    return directive(number, "OPTOUT", {"type": "deny"})


def naming(number: str, role: str, ods: str) -> dict[str, Any]:
    """OPTIN with one nested deny naming an organisation as custodian (CST) or recipient
    (IRCP): withhold a source, or refuse a recipient."""
    actor = {
        "role": {"coding": [{"system": PARTICIPATION, "code": role}]},
        "reference": {"identifier": {"system": ODS_SYSTEM, "value": ods}},
    }
    return directive(
        number, "OPTIN", {"type": "permit", "provision": [{"type": "deny", "actor": [actor]}]}
    )

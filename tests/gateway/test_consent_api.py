"""The Consent API and $access-check, with the consent policy as the decider.

The gateway is the harness's (``tests/gateway/harness.py``: the one composition root, served
in-process) on a database of the module's own, SQLite or PostgreSQL, in front of the real
social care and community simulators.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import nhs_number
from adapters.base import SourceConfig
from consent import load_policy
from gateway.audit import AuditStore
from gateway.auth import generate_signing_key
from gateway.db import make_engine
from gateway.embedded import free_port
from gateway.policy.store import (
    UKCORE_CONSENT_PROFILE,
    BreakGlassGrantRow,
    ConsentDirectiveRow,
    ConsentVersionRow,
)
from gateway.records.access import Verdict
from gateway.routes.consent import access_check_parameters
from simulators.runner import RunningSources, source_configs
from tests.consent.factories import objection_body
from tests.gateway.consent_support import delete_rows
from tests.gateway.harness import FHIR_JSON, assert_fhir, assert_outcome, running_gateway
from tests.gateway.postgres_server import fresh_database
from tests.support.people import nhs
from tests.support.tokens import bearer, user_token
from vocabulary import Effect

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
GP_ORG = "F81001"  # registered GP practice of the "both" scenario person
_AUDIT_WINDOW = 5000  # newest events searched for a request id (a module writes far fewer)


NHS_BOTH = nhs("both")
NHS_COMMUNITY = nhs("community_only")
# Whom ``ConsentGateway.headers`` speaks for unless a test says otherwise: a GP who records
# consent directives.
RECORDER: dict[str, Any] = {
    "role": "R8000",
    "org": GP_ORG,
    "scopes": ("user/*.cruds",),
    "purpose": "TREAT",
    "sub": "consent-user-0001",
    "name": "Dr Test Recorder",
}


@dataclass
class ConsentGateway:
    base_url: str
    private_pem: bytes
    client: httpx.AsyncClient
    engine: AsyncEngine
    audit: AuditStore
    unknown_nhs: str

    def headers(self, **claims: Any) -> dict[str, str]:
        """A bearer token for ``RECORDER`` with ``claims`` (``user_token``'s) instead."""
        return bearer(user_token(self.private_pem, self.base_url, **{**RECORDER, **claims}))

    async def post(self, body: Any, **kw: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
        return await self.client.post(
            f"{self.base_url}/Consent",
            content=content,
            headers={**self.headers(**kw), "Content-Type": FHIR_JSON},
        )

    async def put(
        self,
        cid: str,
        body: Any,
        *,
        if_match: str | Sequence[str] | None = None,
        request_id: str | None = None,
        **kw: Any,
    ) -> httpx.Response:
        headers = [*self.headers(**kw).items(), ("Content-Type", FHIR_JSON)]
        if isinstance(if_match, str):
            headers.append(("If-Match", if_match))
        elif if_match is not None:
            headers += [("If-Match", value) for value in if_match]
        if request_id is not None:
            headers.append(("X-Request-ID", request_id))
        return await self.client.put(f"{self.base_url}/Consent/{cid}", json=body, headers=headers)

    async def audit_events(self, request_id: str) -> list[dict[str, Any]]:
        """The AuditEvents the gateway committed for the request with this X-Request-ID."""
        recent = await self.audit.search(count=_AUDIT_WINDOW)
        assert len(recent) < _AUDIT_WINDOW, "more events than the window: widen it"
        return [
            event
            for event in recent
            for entity in event.get("entity", ())
            if entity.get("type", {}).get("code") == "XrequestId"
            and entity.get("what", {}).get("identifier", {}).get("value") == request_id
        ]

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        params = kw.pop("params", None)
        return await self.client.get(
            f"{self.base_url}{path}", params=params, headers=self.headers(**kw)
        )


def _unknown_nhs(running: RunningSources) -> str:
    pop = running.population
    stored = [p.nhs_number for p in pop.community_patients]
    stored += [p.nhs_number for p in pop.council_people]
    held = {"".join(ch for ch in (n or "") if ch.isdigit()) for n in stored}
    rng = random.Random(20261123)
    while True:
        candidate = nhs_number.synthetic(rng)
        if candidate not in held:
            return candidate


@asynccontextmanager
async def serving(
    configs: Sequence[SourceConfig], db: Path | str, unknown_nhs: str
) -> AsyncIterator[ConsentGateway]:
    """The gateway the composition root builds (``tests/gateway/harness.py``), the consent
    policy its decider, on ``db``: an SQLite file, or a database URL (PostgreSQL). The test's
    own engine on the same database empties the consent tables between tests."""
    private_pem, public_jwk = generate_signing_key()
    url = db if isinstance(db, str) else f"sqlite+aiosqlite:///{db}"
    async with running_gateway(configs, private_pem, public_jwk, database_url=url) as gw:
        audit = gw.state.audit
        assert audit is not None
        engine = make_engine(url)
        try:
            yield ConsentGateway(gw.base_url, private_pem, gw.client, engine, audit, unknown_nhs)
        finally:
            await engine.dispose()


def consent_gateway(folder: str, *backends: str) -> Any:
    """A module-scoped fixture yielding the ``serving`` gateway in front of the session's
    simulators, its database an SQLite file in a temporary ``folder``; with ``backends``
    (``"sqlite"``, ``"postgresql"``: the test ids, in that order), once on each, PostgreSQL
    being a new database of the module's own on the session's server (``postgres_url``), so
    what other modules left there cannot change what this one finds."""

    async def gateway(
        request: pytest.FixtureRequest,
        running_sources: RunningSources,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> AsyncIterator[ConsentGateway]:
        db: Path | str = tmp_path_factory.mktemp(folder) / "gateway.db"
        if getattr(request, "param", "sqlite") == "postgresql":
            db = await fresh_database(request.getfixturevalue("postgres_url"))
        async with serving(source_configs(running_sources), db, _unknown_nhs(running_sources)) as g:
            yield g

    params = list(backends) or None
    return pytest_asyncio.fixture(gateway, scope="module", loop_scope="session", params=params)


cgw = consent_gateway("consent-api")


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def empty_tables(cgw: ConsentGateway) -> AsyncIterator[None]:
    yield
    await delete_rows(cgw.engine, ConsentDirectiveRow, ConsentVersionRow, BreakGlassGrantRow)


# --- helpers -----------------------------------------------------------------------------

IG: dict[str, Any] = {"role": "R0001", "purpose": "HOPERAT", "org": "X26"}  # a Privacy Officer


def objection(number: str = NHS_BOTH, **changes: Any) -> dict[str, Any]:
    body = {**objection_body(number), **changes}
    return {k: v for k, v in body.items() if v is not None}


def reason_codes(oo: dict[str, Any]) -> list[str]:
    return [c["code"] for c in oo["issue"][0].get("details", {}).get("coding", ())]


def params(body: dict[str, Any], name: str) -> list[Any]:
    return [
        next(v for k, v in p.items() if k.startswith("value"))
        for p in body["parameter"]
        if p["name"] == name
    ]


# --- POST --------------------------------------------------------------------------------


async def test_create_returns_201_with_location_and_fills_the_recorder(
    cgw: ConsentGateway,
) -> None:
    resp = await cgw.post(objection(), sub="gp-0042", name="Dr A Example")
    stored = assert_fhir(resp, 201)
    cid = stored["id"]
    assert resp.headers["location"] == f"{cgw.base_url}/Consent/{cid}/_history/1"
    assert resp.headers["etag"] == 'W/"1"'
    assert stored["meta"]["versionId"] == "1"
    assert stored["meta"]["profile"] == [UKCORE_CONSENT_PROFILE]
    assert stored["meta"]["lastUpdated"].endswith("Z")
    assert stored["dateTime"].endswith("Z")
    assert stored["performer"] == [
        {"identifier": {"system": "urn:caregateway:user", "value": "gp-0042"},
         "display": "Dr A Example"}
    ]  # fmt: skip
    assert stored["organization"] == [{"identifier": {"system": ODS, "value": GP_ORG}}]
    assert assert_fhir(await cgw.get(f"/Consent/{cid}"), 200) == stored


async def test_create_keeps_recorder_fields_the_caller_gave(cgw: ConsentGateway) -> None:
    given = objection(
        dateTime="2026-11-01T09:00:00Z",
        performer=[{"display": "Practice manager"}],
        organization=[{"identifier": {"system": ODS, "value": "RAT"}}],
    )
    stored = assert_fhir(await cgw.post(given), 201)
    for key in ("dateTime", "performer", "organization"):
        assert stored[key] == given[key]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'{"resourceType": "Patient", "id": "x"}', "resourceType Consent"),
    ],
)
async def test_malformed_body_is_400(cgw: ConsentGateway, body: bytes, fragment: str) -> None:
    oo = assert_outcome(await cgw.post(body), 400, "invalid")
    assert fragment in oo["issue"][0]["diagnostics"]


async def test_model_failure_is_400_naming_the_element_not_the_value(
    cgw: ConsentGateway,
) -> None:
    body = objection(category="Mrs Secret Person", madeUp="9991000003")
    oo = assert_outcome(await cgw.post(body), 400, "invalid")
    text = oo["issue"][0]["diagnostics"]
    assert "not a valid FHIR R4 Consent" in text
    assert "category" in text and "madeUp" in text
    assert "Secret" not in text and "9991000003" not in text


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"provision": None}, "Consent.provision is required"),
        (
            {"policy": [{"uri": "https://example.org/policy"}]},
            "exactly one of Consent.policy and Consent.policyRule",
        ),
        ({"policyRule": None}, "exactly one of Consent.policy and Consent.policyRule"),
        ({"provision": {"type": "permit"}}, "type must be deny"),
    ],
)
async def test_rule_breaking_consent_is_422(
    cgw: ConsentGateway, changes: dict[str, Any], fragment: str
) -> None:
    oo = assert_outcome(await cgw.post(objection(**changes)), 422, "business-rule")
    assert fragment in oo["issue"][0]["diagnostics"]


async def test_unknown_nhs_number_is_422(cgw: ConsentGateway) -> None:
    oo = assert_outcome(await cgw.post(objection(cgw.unknown_nhs)), 422, "business-rule")
    assert "unknown NHS number" in oo["issue"][0]["diagnostics"]
    assert cgw.unknown_nhs not in oo["issue"][0]["diagnostics"]
    query = {"patient": cgw.unknown_nhs}
    search = assert_fhir(await cgw.get("/Consent", params=query, **IG), 200)
    assert search["total"] == 0
    # Nobody's clinician has a relationship with a person no source knows.
    oo = assert_outcome(await cgw.get("/Consent", params=query), 403, "forbidden")
    assert reason_codes(oo) == ["no-legitimate-relationship"]


async def test_role_that_may_not_record_is_403(cgw: ConsentGateway) -> None:
    oo = assert_outcome(await cgw.post(objection(), role="R8008"), 403, "forbidden")
    assert reason_codes(oo) == ["role-not-permitted"]
    # The role is refused before the body is looked at.
    oo = assert_outcome(await cgw.post(b"{not json", role="R8008"), 403, "forbidden")
    assert reason_codes(oo) == ["role-not-permitted"]


async def test_privacy_officer_may_record(cgw: ConsentGateway) -> None:
    resp = await cgw.post(objection(), role="R0001", purpose="HOPERAT", org="X26")
    assert_fhir(resp, 201)


async def test_scope_without_create_is_403(cgw: ConsentGateway) -> None:
    oo = assert_outcome(await cgw.post(objection(), scopes=("user/*.rs",)), 403, "forbidden")
    assert reason_codes(oo) == ["scope-insufficient"]


# --- GET ---------------------------------------------------------------------------------


async def test_search_by_each_patient_form(cgw: ConsentGateway) -> None:
    first = assert_fhir(await cgw.post(objection()), 201)
    second = assert_fhir(await cgw.post(objection(status="inactive")), 201)
    assert_fhir(await cgw.post(objection(NHS_COMMUNITY), **IG), 201)
    for query in (
        {"patient": NHS_BOTH},
        {"patient": f"Patient/{NHS_BOTH}"},
        {"patient.identifier": f"{NHS_SYSTEM}|{NHS_BOTH}"},
    ):
        bundle = assert_fhir(await cgw.get("/Consent", params=query), 200)
        assert bundle["type"] == "searchset" and bundle["total"] == 2
        assert [e["resource"]["id"] for e in bundle["entry"]] == [first["id"], second["id"]]
        assert bundle["entry"][0]["fullUrl"] == f"{cgw.base_url}/Consent/{first['id']}"
    active = assert_fhir(
        await cgw.get("/Consent", params={"patient": NHS_BOTH, "status": "active"}), 200
    )
    assert [e["resource"]["id"] for e in active["entry"]] == [first["id"]]


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"patient": "12345"},
        {"patient.identifier": f"urn:other|{NHS_BOTH}"},
        {"patient": NHS_BOTH, "patient.identifier": NHS_BOTH},
        {"patient": NHS_BOTH, "subject": NHS_BOTH},
    ],
)
async def test_bad_search_is_400(cgw: ConsentGateway, query: dict[str, str]) -> None:
    assert_outcome(await cgw.get("/Consent", params=query), 400, "invalid")


async def test_read_unknown_id_is_404(cgw: ConsentGateway) -> None:
    assert_outcome(await cgw.get("/Consent/no-such-consent"), 404, "not-found")


async def test_reading_directives_needs_a_recording_role(cgw: ConsentGateway) -> None:
    stored = assert_fhir(await cgw.post(objection()), 201)
    for path in (f"/Consent/{stored['id']}", f"/Consent?patient={NHS_BOTH}"):
        oo = assert_outcome(await cgw.get(path, role="R8008"), 403, "forbidden")
        assert reason_codes(oo) == ["role-not-permitted"]


# --- PUT ---------------------------------------------------------------------------------


async def test_put_makes_a_directive_inactive(cgw: ConsentGateway) -> None:
    stored = assert_fhir(await cgw.post(objection()), 201)
    resp = await cgw.put(stored["id"], {**stored, "status": "inactive"})
    updated = assert_fhir(resp, 200)
    assert updated["status"] == "inactive"
    assert updated["meta"]["versionId"] == "2"
    assert resp.headers["etag"] == 'W/"2"'
    again = assert_fhir(await cgw.get(f"/Consent/{stored['id']}"), 200)
    assert again == updated


async def test_the_location_of_a_create_reads_back_after_the_next_change(
    cgw: ConsentGateway,
) -> None:
    resp = await cgw.post(objection())
    stored = assert_fhir(resp, 201)
    location = resp.headers["location"].removeprefix(cgw.base_url)
    assert assert_fhir(await cgw.get(location), 200) == stored
    updated = assert_fhir(await cgw.put(stored["id"], {**stored, "status": "inactive"}), 200)
    assert assert_fhir(await cgw.get(location), 200) == stored  # every version is kept
    current = f"/Consent/{stored['id']}/_history/2"
    assert assert_fhir(await cgw.get(current), 200) == updated
    gone = assert_fhir(await cgw.get(f"/Consent/{stored['id']}/_history/3"), 404)
    assert "no version '3'" in gone["issue"][0]["diagnostics"]
    assert_fhir(await cgw.get(f"/Consent/{uuid.uuid4()}/_history/1"), 404)


async def test_put_unknown_id_is_404(cgw: ConsentGateway) -> None:
    assert_outcome(await cgw.put("no-such-consent", objection()), 404, "not-found")


async def test_put_with_another_id_in_the_body_is_400(cgw: ConsentGateway) -> None:
    stored = assert_fhir(await cgw.post(objection()), 201)
    oo = assert_outcome(await cgw.put(stored["id"], {**stored, "id": "other"}), 400, "invalid")
    assert oo["issue"][0]["expression"] == ["Consent.id"]  # FHIRPath


async def test_put_validates_like_post(cgw: ConsentGateway) -> None:
    stored = assert_fhir(await cgw.post(objection()), 201)
    no_provision = {k: v for k, v in stored.items() if k != "provision"}
    assert_outcome(await cgw.put(stored["id"], no_provision), 422, "business-rule")
    assert_outcome(await cgw.put(stored["id"], {**stored, "status": 7}), 400, "invalid")
    moved = {**stored, "patient": {"identifier": {"system": NHS_SYSTEM, "value": NHS_COMMUNITY}}}
    assert_outcome(await cgw.put(stored["id"], moved), 422, "business-rule")
    oo = assert_outcome(await cgw.put(stored["id"], stored, role="R8008"), 403, "forbidden")
    assert reason_codes(oo) == ["role-not-permitted"]
    assert assert_fhir(await cgw.get(f"/Consent/{stored['id']}"), 200) == stored


# --- PUT with If-Match: version-aware update ---------------------------------------------


def etag(version: int) -> str:
    return f'W/"{version}"'


async def test_every_answer_carries_the_version_as_etag(cgw: ConsentGateway) -> None:
    created = await cgw.post(objection())
    stored = assert_fhir(created, 201)
    cid = stored["id"]
    assert created.headers["etag"] == etag(1) and stored["meta"]["versionId"] == "1"
    read = await cgw.get(f"/Consent/{cid}")
    assert read.headers["etag"] == etag(1) and assert_fhir(read, 200) == stored

    resp = await cgw.put(cid, {**stored, "status": "inactive"}, if_match=etag(1))
    updated = assert_fhir(resp, 200)
    assert resp.headers["etag"] == etag(2)
    assert updated["meta"]["versionId"] == "2" and updated["status"] == "inactive"
    assert updated["meta"]["lastUpdated"] >= stored["meta"]["lastUpdated"]
    assert updated["meta"]["lastUpdated"].endswith("Z")
    read = await cgw.get(f"/Consent/{cid}")
    assert read.headers["etag"] == etag(2) and assert_fhir(read, 200) == updated

    resp = await cgw.put(cid, {**updated, "status": "active"}, if_match=etag(2))
    assert assert_fhir(resp, 200)["meta"]["versionId"] == "3"
    assert resp.headers["etag"] == etag(3)


async def recorded_then_made_inactive(
    cgw: ConsentGateway,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An objection recorded (201), then PUT back as ``inactive`` with no If-Match (200): the
    first version and the second, as the gateway answered them."""
    stored = assert_fhir(await cgw.post(objection()), 201)
    second = assert_fhir(await cgw.put(stored["id"], {**stored, "status": "inactive"}), 200)
    return stored, second


async def test_put_with_a_stale_if_match_is_412_changes_nothing_and_is_audited(
    cgw: ConsentGateway,
) -> None:
    stored, current = await recorded_then_made_inactive(cgw)
    cid = stored["id"]

    rid = f"t-{uuid.uuid4()}"
    resp = await cgw.put(cid, {**stored, "status": "rejected"}, if_match=etag(1), request_id=rid)
    oo = assert_outcome(resp, 412, "conflict")
    assert resp.headers["etag"] == 'W/"2"'  # the current version, to re-read against
    text = oo["issue"][0]["diagnostics"]
    assert "version 2" in text and etag(2) in text and "version 1" in text
    assert assert_fhir(await cgw.get(f"/Consent/{cid}"), 200) == current

    events = await cgw.audit_events(rid)
    assert len(events) == 1, events
    assert events[0]["outcome"] == "4"
    assert events[0]["subtype"][0]["code"] == "update"
    assert "HTTP 412" in events[0]["outcomeDesc"]


async def test_put_without_if_match_or_with_star_updates_the_current_version(
    cgw: ConsentGateway,
) -> None:
    stored, second = await recorded_then_made_inactive(cgw)
    cid = stored["id"]
    assert second["meta"]["versionId"] == "2"
    third = assert_fhir(await cgw.put(cid, {**second, "status": "active"}, if_match="*"), 200)
    assert third["meta"]["versionId"] == "3" and third["status"] == "active"


async def test_put_accepts_the_strong_form_of_the_etag(cgw: ConsentGateway) -> None:
    stored = assert_fhir(await cgw.post(objection()), 201)
    resp = await cgw.put(stored["id"], {**stored, "status": "inactive"}, if_match='"1"')
    assert assert_fhir(resp, 200)["meta"]["versionId"] == "2"
    assert resp.headers["etag"] == etag(2)


@pytest.mark.parametrize(
    "if_match",
    [
        "1",
        "W/1",
        'W/"abc"',
        'W/"0"',
        'W/"01"',
        'W/"1234567890"',
        'W/"1", W/"2"',
        ('W/"1"', 'W/"1"'),
        "",
    ],
)
async def test_malformed_if_match_is_400_and_changes_nothing(
    cgw: ConsentGateway, if_match: str | tuple[str, ...]
) -> None:
    stored = assert_fhir(await cgw.post(objection()), 201)
    rid = f"t-{uuid.uuid4()}"
    resp = await cgw.put(
        stored["id"], {**stored, "status": "inactive"}, if_match=if_match, request_id=rid
    )
    oo = assert_outcome(resp, 400, "invalid")
    assert "If-Match" in oo["issue"][0]["diagnostics"]
    assert assert_fhir(await cgw.get(f"/Consent/{stored['id']}"), 200) == stored
    events = await cgw.audit_events(rid)
    assert [e["outcome"] for e in events] == ["4"]


async def test_put_unknown_id_with_if_match_is_404(cgw: ConsentGateway) -> None:
    resp = await cgw.put("no-such-consent", objection(), if_match=etag(1))
    assert_outcome(resp, 404, "not-found")


async def test_concurrent_puts_with_the_same_if_match_one_wins(cgw: ConsentGateway) -> None:
    """Six PUTs race from version 1: one 200 (version 2), five 412s, each audited once."""
    stored = assert_fhir(await cgw.post(objection()), 201)
    cid = stored["id"]
    statuses = ["inactive", "rejected", "proposed", "entered-in-error", "inactive", "rejected"]
    rids = [f"t-{uuid.uuid4()}" for _ in statuses]
    answers = await asyncio.wait_for(
        asyncio.gather(
            *(
                cgw.put(cid, {**stored, "status": s}, if_match=etag(1), request_id=rid)
                for s, rid in zip(statuses, rids, strict=True)
            )
        ),
        timeout=60,
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 412, 412, 412, 412, 412], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 200)
    won = assert_fhir(winner, 200)
    assert won["meta"]["versionId"] == "2" and winner.headers["etag"] == etag(2)
    for lost in (r for r in answers if r.status_code == 412):
        assert etag(2) in assert_outcome(lost, 412, "conflict")["issue"][0]["diagnostics"]
    assert assert_fhir(await cgw.get(f"/Consent/{cid}"), 200) == won

    outcomes = []
    for resp, rid in zip(answers, rids, strict=True):
        events = await cgw.audit_events(rid)
        assert len(events) == 1, (rid, events)
        outcomes.append((resp.status_code, events[0]["outcome"]))
    assert sorted(outcomes) == [(200, "0")] + [(412, "4")] * 5


# --- the directive takes effect on the very next request --------------------------------


async def test_objection_applies_at_once_and_withdrawal_lifts_it(cgw: ConsentGateway) -> None:
    gp = {"role": "R8000", "org": GP_ORG, "scopes": ("user/*.rs",)}
    assert_fhir(await cgw.get(f"/Patient/{NHS_BOTH}", **gp), 200)

    stored = assert_fhir(await cgw.post(objection(), role="R0001", purpose="HOPERAT"), 201)
    oo = assert_outcome(await cgw.get(f"/Patient/{NHS_BOTH}", **gp), 403, "forbidden")
    assert "patient-objected" in reason_codes(oo)

    resp = await cgw.put(stored["id"], {**stored, "status": "inactive"})
    assert_fhir(resp, 200)
    patient = assert_fhir(await cgw.get(f"/Patient/{NHS_BOTH}", **gp), 200)
    assert patient["resourceType"] == "Patient"


# --- $access-check -----------------------------------------------------------------------


async def test_access_check_for_a_permitted_principal(cgw: ConsentGateway) -> None:
    body = assert_fhir(await cgw.get(f"/Patient/{NHS_BOTH}/$access-check"), 200)
    assert body["resourceType"] == "Parameters"
    names = [p["name"] for p in body["parameter"]]
    assert names[0] == "effect" and {"policy-version", "matched-rule"} <= set(names)
    assert params(body, "effect") in (["permit"], ["permit-filtered"])
    assert params(body, "policy-version") == [load_policy().version]
    assert GP_ORG in params(body, "matched-rule")[0]
    assert set(names) <= {"effect", "reason", "policy-version", "matched-rule"}


async def test_access_check_for_a_denied_principal(cgw: ConsentGateway) -> None:
    body = assert_fhir(await cgw.get(f"/Patient/{NHS_BOTH}/$access-check", org="Y99999"), 200)
    assert params(body, "effect") == ["deny"]
    assert params(body, "reason") == ["no-legitimate-relationship"]
    assert params(body, "policy-version") == [load_policy().version]
    text = str(body)
    assert NHS_BOTH not in text and "Patient/" not in text


async def test_access_check_reports_an_objection(cgw: ConsentGateway) -> None:
    assert_fhir(await cgw.post(objection()), 201)
    body = assert_fhir(await cgw.get(f"/Patient/{NHS_BOTH}/$access-check"), 200)
    assert params(body, "effect") == ["deny"]
    assert "patient-objected" in params(body, "reason")


async def test_access_check_unknown_person_is_404(cgw: ConsentGateway) -> None:
    resp = await cgw.get(f"/Patient/{cgw.unknown_nhs}/$access-check")
    assert_outcome(resp, 404, "not-found")


async def test_create_when_no_source_answers_is_503(
    running_sources: RunningSources, tmp_path: Path
) -> None:
    dead = [
        replace(c, base_url=f"http://127.0.0.1:{free_port()}/fhir", timeout_s=0.5)
        for c in source_configs(running_sources)
    ]
    async with serving(dead, tmp_path / "gateway.db", NHS_BOTH) as gw:
        oo = assert_outcome(await gw.post(objection()), 503, "transient")
        assert "did not answer" in oo["issue"][0]["diagnostics"]
        # The relationship could only come from the sources: an outage, not a refusal.
        oo = assert_outcome(
            await gw.get("/Consent", params={"patient": NHS_BOTH}), 503, "transient"
        )
        assert "socialcare" in oo["issue"][0]["diagnostics"]
        assert "community" in oo["issue"][0]["diagnostics"]
        # IG work needs no relationship, so no source.
        search = assert_fhir(await gw.get("/Consent", params={"patient": NHS_BOTH}, **IG), 200)
        assert search["total"] == 0


def test_access_check_without_the_consent_policy_says_so() -> None:
    body = access_check_parameters(Verdict(effect=Effect.PERMIT, visible=()), None)
    assert body == {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "effect", "valueCode": "permit"},
            {"name": "policy-version", "valueString": "none"},
            {
                "name": "matched-rule",
                "valueString": "scope-only access: no consent policy was applied",
            },
        ],
    }

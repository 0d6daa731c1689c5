"""The IG lead's side of the audit trail over real HTTP (real simulators, real SQLite):
AuditEvent search, the patient access report (JSON and CSV), the break-glass review queue and
the privacy alerts; plus table-driven tests of each pure monitoring rule."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.detectedissue import DetectedIssue

from gateway.app import create_app
from gateway.audit import AuditRecord, AuditStore, build_audit_event
from gateway.audit.monitoring import (
    MonitoringConfig,
    OutOfHours,
    PersonFacts,
    person_facts,
    rule_break_glass,
    rule_deceased,
    rule_no_legitimate_relationship,
    rule_out_of_hours,
    rule_surname_match,
    rule_volume,
    run_rules,
)
from gateway.audit.report import CSV_COLUMNS, csv_row
from gateway.auth import TokenVerifier, issue_token
from gateway.db import make_engine
from gateway.embedded import free_port, running_server
from gateway.fhir.params import date_bounds
from gateway.routes import audit
from gateway.state import GatewayState
from gateway.wiring import Overrides, build_state, defaults
from simulators.population import SCENARIOS
from tests.gateway.audit_support import own_gateway

ISSUER = "urn:caregateway:test-audit-review"
BOTH = SCENARIOS["both"].nhs_number or ""
SOCIAL_ONLY = SCENARIOS["social_only"].nhs_number or ""
COMMUNITY_ONLY = SCENARIOS["community_only"].nhs_number or ""
DECEASED = SCENARIOS["deceased"].nhs_number or ""
IG_SCOPES = ("user/AuditEvent.rs", "user/AuditEvent.c")


# --- a gateway with the audit router ------------------------------------------------------


@dataclass
class AuditGateway:
    base_url: str
    private_pem: bytes
    client: httpx.AsyncClient
    app: Any

    @property
    def state(self) -> GatewayState:
        state: GatewayState = self.app.state.gateway
        return state

    @property
    def store(self) -> AuditStore:
        assert isinstance(self.state.audit, AuditStore)
        return self.state.audit

    def headers(
        self,
        *,
        role: str = "R8000",
        org: str = "F81001",
        purpose: str | None = "TREAT",
        sub: str = "clinician-1",
        name: str | None = None,
        scopes: Sequence[str] = ("user/*.rs",),
        request_id: str | None = None,
    ) -> dict[str, str]:
        token = issue_token(
            self.private_pem,
            issuer=ISSUER,
            audience=self.base_url,
            sub=sub,
            role=role,
            org=org,
            scopes=tuple(scopes),
            purpose=purpose,
            name=name,
        )
        headers = {"Authorization": f"Bearer {token}"}
        if request_id:
            headers["X-Request-ID"] = request_id
        return headers

    def ig(
        self, *, role: str = "R0001", org: str = "X26", sub: str = "ig-lead-1"
    ) -> dict[str, str]:
        """A Privacy Officer (any organisation) working for information governance."""
        return self.headers(role=role, org=org, purpose="HOPERAT", sub=sub, scopes=IG_SCOPES)

    async def get(self, path: str, headers: Mapping[str, str], **kw: Any) -> httpx.Response:
        return await self.client.get(f"{self.base_url}{path}", headers=dict(headers), **kw)

    async def post(self, path: str, headers: Mapping[str, str], body: Any) -> httpx.Response:
        return await self.client.post(f"{self.base_url}{path}", headers=dict(headers), json=body)


@asynccontextmanager
async def running_audit_gateway(
    sources: Any, private_pem: bytes, public_jwk: dict[str, Any]
) -> AsyncIterator[AuditGateway]:
    """Like ``tests.gateway.harness.running_gateway``, with the audit router included and an
    audit store wired in if ``build_state`` does not wire one itself."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    verifier = TokenVerifier(issuer=ISSUER, audience=base_url, jwks={"keys": [public_jwk]})
    workdir = tempfile.mkdtemp(prefix="caregw-audit-review-")
    database_url = f"sqlite+aiosqlite:///{workdir}/gateway.db"

    async def factory() -> tuple[GatewayState, Callable[[], Awaitable[None]]]:
        overrides = Overrides(
            base_url=base_url, sources=sources, verifier=verifier, database_url=database_url
        )
        state, close = await build_state(defaults(), overrides)
        if state.audit is None:
            engine = make_engine(database_url)
            store = AuditStore(engine)
            await store.start()
            state.audit = store

            async def close_all() -> None:
                await store.close()
                await engine.dispose()
                await close()

            return state, close_all
        return state, close

    app = create_app(factory)
    if not any(getattr(r, "path", "") == "/fhir/$privacy-alerts" for r in app.routes):
        app.include_router(audit.router)
    async with running_server(app, "127.0.0.1", port), httpx.AsyncClient(timeout=30) as client:
        try:
            yield AuditGateway(base_url, private_pem, client, app)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


gw = own_gateway(running_audit_gateway, scope="module")


def _ids(bundle: Mapping[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", ())]


def _reasons(resp: httpx.Response) -> set[str]:
    return {
        c["code"]
        for issue in resp.json().get("issue", ())
        for c in issue.get("details", {}).get("coding", ())
    }


@dataclass
class Sequence3:
    """A clinician's read, another organisation's refused attempt, then its break-glass read."""

    reader: str
    outsider: str
    request_ids: tuple[str, str, str]


async def _crafted(gw: AuditGateway, nhs: str = BOTH) -> Sequence3:
    tag = uuid.uuid4().hex[:8]
    reader, outsider = f"reader-{tag}", f"outsider-{tag}"
    rids = (f"r1-{tag}", f"r2-{tag}", f"r3-{tag}")
    ok = await gw.get(f"/Patient/{nhs}", gw.headers(sub=reader, request_id=rids[0]))
    assert ok.status_code == 200
    refused = await gw.get(
        f"/Patient/{nhs}", gw.headers(sub=outsider, org="F81004", request_id=rids[1])
    )
    assert refused.status_code == 403
    btg = {
        **gw.headers(sub=outsider, org="F81004", purpose="ETREAT", request_id=rids[2]),
        "X-Break-Glass-Reason": "Unconscious in A&E, no records available",
    }
    assert (await gw.get(f"/Patient/{nhs}", btg)).status_code == 200
    return Sequence3(reader, outsider, rids)


# --- who may read the trail ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/AuditEvent",
        f"/Patient/{BOTH}/$access-report",
        "/$break-glass-queue",
        "/$privacy-alerts",
    ],
)
async def test_a_care_role_gets_403_from_the_audit_trail(gw: AuditGateway, path: str) -> None:
    resp = await gw.get(path, gw.headers(role="R8000", scopes=("user/*.rs",)))
    assert resp.status_code == 403
    assert "role-not-permitted" in _reasons(resp)


async def test_a_care_role_cannot_review(gw: AuditGateway) -> None:
    body = {"resourceType": "Parameters", "parameter": []}
    headers = gw.headers(role="R8000", scopes=("user/*.cruds",))
    resp = await gw.post(f"/AuditEvent/{uuid.uuid4()}/$review", headers, body)
    assert resp.status_code == 403 and "role-not-permitted" in _reasons(resp)


async def test_an_ig_role_must_state_purpose_hoperat(gw: AuditGateway) -> None:
    headers = gw.headers(role="R0001", org="X26", purpose="TREAT", scopes=IG_SCOPES)
    resp = await gw.get("/AuditEvent", headers)
    assert resp.status_code == 403 and "purpose-not-permitted" in _reasons(resp)


async def test_the_caldicott_guardian_at_any_organisation_may_search(gw: AuditGateway) -> None:
    resp = await gw.get("/AuditEvent", gw.ig(role="R5105", org="RXX99"))
    assert resp.status_code == 200 and resp.json()["type"] == "searchset"


# --- search -------------------------------------------------------------------------------


async def test_ig_search_by_patient_and_agent_finds_the_crafted_events(gw: AuditGateway) -> None:
    seq = await _crafted(gw)
    resp = await gw.get(f"/AuditEvent?patient={BOTH}&agent={seq.outsider}", gw.ig())
    assert resp.status_code == 200
    bundle = resp.json()
    assert bundle["total"] == 2
    events = [e["resource"] for e in bundle["entry"]]
    assert sorted(e["outcome"] for e in events) == ["0", "4"]
    assert all(e["resourceType"] == "AuditEvent" for e in events)

    by_patient = (await gw.get(f"/AuditEvent?patient=Patient/{BOTH}&_count=200", gw.ig())).json()
    found = {
        ent["what"]["identifier"]["value"]
        for e in by_patient["entry"]
        for ent in e["resource"]["entity"]
        if ent.get("type", {}).get("code") == "XrequestId"
    }
    assert set(seq.request_ids) <= found

    glass = (await gw.get(f"/AuditEvent?agent={seq.outsider}&break-glass=true", gw.ig())).json()
    assert glass["total"] == 1
    refused = (await gw.get(f"/AuditEvent?agent={seq.outsider}&outcome=4", gw.ig())).json()
    assert refused["total"] == 1
    at_org = (await gw.get(f"/AuditEvent?agent={seq.reader}&agent-org=F81001", gw.ig())).json()
    assert at_org["total"] == 1
    by_purpose = (await gw.get(f"/AuditEvent?agent={seq.outsider}&purpose=ETREAT", gw.ig())).json()
    assert by_purpose["total"] == 1


async def test_reading_the_trail_is_itself_audited(gw: AuditGateway) -> None:
    before = await gw.store.count()
    sub = f"ig-{uuid.uuid4().hex[:8]}"
    resp = await gw.get(f"/AuditEvent?patient={BOTH}", gw.ig(sub=sub))
    assert resp.status_code == 200
    assert await gw.store.count() == before + 1
    mine = await gw.store.search(agent=sub)
    assert len(mine) == 1
    event = mine[0]
    assert event["outcome"] == "0"
    assert event["subtype"][0]["code"] == "search-type"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "HOPERAT"


async def test_search_pages_with_next_and_previous_links(gw: AuditGateway) -> None:
    seq = await _crafted(gw)
    first = (await gw.get(f"/AuditEvent?agent={seq.outsider}&_count=1", gw.ig())).json()
    assert first["total"] == 2 and len(first["entry"]) == 1
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    second = (await gw.client.get(links["next"], headers=gw.ig())).json()
    assert len(second["entry"]) == 1
    assert _ids(second) != _ids(first)
    relations = {link["relation"] for link in second["link"]}
    assert "previous" in relations and "next" not in relations


async def test_search_by_date(gw: AuditGateway) -> None:
    seq = await _crafted(gw)
    now = datetime.now(UTC)
    past = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    future = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    within = await gw.get(
        "/AuditEvent",
        gw.ig(),
        params=[("agent", seq.reader), ("date", f"ge{past}"), ("date", f"le{future}")],
    )
    assert within.json()["total"] == 1
    later = await gw.get(
        "/AuditEvent", gw.ig(), params={"agent": seq.reader, "date": f"gt{future}"}
    )
    assert later.json()["total"] == 0
    today = await gw.get(
        "/AuditEvent", gw.ig(), params={"agent": seq.reader, "date": now.date().isoformat()}
    )
    assert today.json()["total"] == 1


@pytest.mark.parametrize(
    "query",
    ["colour=blue", "date=yesterday", "outcome=2", "break-glass=maybe", "patient=123", "_count=x"],
)
async def test_bad_search_parameters_are_400(gw: AuditGateway, query: str) -> None:
    assert (await gw.get(f"/AuditEvent?{query}", gw.ig())).status_code == 400


def test_date_bounds() -> None:
    lo, hi = date_bounds(["2026-11-23"])
    assert lo == datetime(2026, 11, 23, tzinfo=UTC)
    assert hi is not None and hi.date().isoformat() == "2026-11-23" and hi.hour == 23
    lo, hi = date_bounds(["ge2026-11-01", "le2026-11-30T12:00:00Z", "ge2026-11-05"])
    assert lo == datetime(2026, 11, 5, tzinfo=UTC)
    assert hi == datetime(2026, 11, 30, 12, tzinfo=UTC)


# --- the access report --------------------------------------------------------------------


async def test_access_report_json_lists_the_accesses(gw: AuditGateway) -> None:
    seq = await _crafted(gw)
    resp = await gw.get(f"/Patient/{BOTH}/$access-report", gw.ig())
    assert resp.status_code == 200
    bundle = resp.json()
    agents = {
        a["who"]["identifier"]["value"]
        for e in bundle["entry"]
        for a in e["resource"]["agent"]
        if a.get("requestor")
    }
    assert {seq.reader, seq.outsider} <= agents
    assert bundle["total"] >= 3


async def test_access_report_csv(gw: AuditGateway) -> None:
    seq = await _crafted(gw)
    resp = await gw.get(f"/Patient/{BOTH}/$access-report?_format=text/csv", gw.ig())
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert tuple(csv.reader(io.StringIO(resp.text)).__next__()) == CSV_COLUMNS
    by_request = {r["request id"]: r for r in rows}
    first, refused, btg = (by_request[rid] for rid in seq.request_ids)
    assert first["user"] == seq.reader and first["organisation"] == "F81001"
    assert first["outcome"] == "permitted" and first["purpose"] == "TREAT"
    assert first["role"] == "R8000" and first["action"] == "read"
    assert refused["outcome"] == "refused"
    assert "no-legitimate-relationship" in refused["decision/reasons"]
    assert btg["break-glass"] == "yes" and btg["purpose"] == "ETREAT"

    accept = {**gw.ig(), "Accept": "text/csv"}
    again = await gw.get(f"/Patient/{BOTH}/$access-report", accept)
    assert again.headers["content-type"].startswith("text/csv")
    xml = await gw.get(f"/Patient/{BOTH}/$access-report?_format=xml", gw.ig())
    assert xml.status_code == 406  # a format we do not serve


# --- break-glass review -------------------------------------------------------------------


def _review(outcome: str, note: str | None = "Checked with the ward: emergency was real.") -> Any:
    params: list[dict[str, Any]] = [{"name": "outcome", "valueCode": outcome}]
    if note is not None:
        params.append({"name": "note", "valueString": note})
    return {"resourceType": "Parameters", "parameter": params}


async def test_review_takes_an_event_off_the_break_glass_queue(gw: AuditGateway) -> None:
    seq = await _crafted(gw)
    glass = await gw.store.search(agent=seq.outsider, break_glass=True)
    assert len(glass) == 1
    event_id = glass[0]["id"]

    queue = (await gw.get("/$break-glass-queue?_count=200", gw.ig())).json()
    assert event_id in _ids(queue)
    size = queue["total"]

    resp = await gw.post(f"/AuditEvent/{event_id}/$review", gw.ig(), _review("appropriate"))
    assert resp.status_code == 200, resp.text
    answer = {p["name"]: p for p in resp.json()["parameter"]}
    assert answer["outcome"]["valueCode"] == "appropriate"
    assert answer["event"]["valueReference"]["reference"] == f"AuditEvent/{event_id}"
    assert answer["reviewer"]["valueReference"]["identifier"]["value"] == "ig-lead-1"

    after = (await gw.get("/$break-glass-queue?_count=200", gw.ig())).json()
    assert event_id not in _ids(after)
    assert after["total"] == size - 1

    # the review request itself is in the trail, pointing at the reviewed event
    trail = await gw.store.search(agent="ig-lead-1", outcome="0", count=500)
    assert any(
        e["subtype"][0]["code"] == "operation"
        and any(
            ent.get("what", {}).get("reference") == f"AuditEvent/{event_id}"
            for ent in e.get("entity", ())
        )
        for e in trail
    )


@pytest.mark.parametrize(
    "body",
    [
        _review("fine"),
        _review("inappropriate", None),
        _review("inappropriate", "   "),
        {"resourceType": "Patient"},
        [],
    ],
)
async def test_a_bad_review_is_400(gw: AuditGateway, body: Any) -> None:
    event_id = (await gw.store.search(count=1))[0]["id"]
    resp = await gw.post(f"/AuditEvent/{event_id}/$review", gw.ig(), body)
    assert resp.status_code == 400


async def test_review_of_an_unknown_event_is_404(gw: AuditGateway) -> None:
    resp = await gw.post(f"/AuditEvent/{uuid.uuid4()}/$review", gw.ig(), _review("appropriate"))
    assert resp.status_code == 404


async def test_review_needs_a_write_scope(gw: AuditGateway) -> None:
    event_id = (await gw.store.search(count=1))[0]["id"]
    headers = gw.headers(role="R0001", org="X26", purpose="HOPERAT", scopes=("user/*.rs",))
    resp = await gw.post(f"/AuditEvent/{event_id}/$review", headers, _review("appropriate"))
    assert resp.status_code == 403 and "scope-insufficient" in _reasons(resp)


# --- privacy alerts over HTTP -------------------------------------------------------------


async def test_privacy_alerts_fire_on_a_crafted_sequence(gw: AuditGateway) -> None:
    surname = (await gw.get(f"/Patient/{BOTH}", gw.headers())).json()["name"][0]["family"]
    configured, gw.state.monitoring = gw.state.monitoring, MonitoringConfig(
        out_of_hours=OutOfHours(time(0, 0), time(23, 59, 59, 999999)), volume_per_hour=2
    )
    try:
        seq = await _crafted(gw)
        busy = f"busy-{uuid.uuid4().hex[:8]}"
        for nhs in (BOTH, SOCIAL_ONLY, COMMUNITY_ONLY):
            await gw.get(f"/Patient/{nhs}", gw.headers(sub=busy))
        btg = {
            **gw.headers(sub=seq.outsider, org="F81004", purpose="ETREAT"),
            "X-Break-Glass-Reason": "Family asked about funeral arrangements",
        }
        assert (await gw.get(f"/Patient/{DECEASED}", btg)).status_code == 200
        relative = f"rel-{uuid.uuid4().hex[:8]}"
        await gw.get(f"/Patient/{BOTH}", gw.headers(sub=relative, name=f"Sam {surname}"))

        resp = await gw.get("/$privacy-alerts", gw.ig())
        assert resp.status_code == 200, resp.text
    finally:
        gw.state.monitoring = configured
    bundle = resp.json()
    issues = [e["resource"] for e in bundle["entry"]]
    for issue in issues:
        DetectedIssue.model_validate(issue)
        assert BOTH not in issue["detail"] and SOCIAL_ONLY not in issue["detail"]
        assert all(i["reference"].startswith("AuditEvent/") for i in issue["implicated"])

    def fired(user: str) -> set[str]:
        return {
            i["code"]["text"]
            for i in issues
            if i.get("extension", [{}])[0].get("valueIdentifier", {}).get("value") == user
        }

    assert {"break-glass", "no-legitimate-relationship", "out-of-hours", "deceased"} <= fired(
        seq.outsider
    )
    assert "deceased" not in fired(busy) and "deceased" not in fired(seq.reader)
    assert "volume" in fired(busy) and "volume" not in fired(seq.reader)
    assert "surname-match" in fired(relative) and "surname-match" not in fired(busy)

    glass = await gw.store.search(agent=seq.outsider, break_glass=True)
    implicated = {
        i["reference"]
        for issue in issues
        if issue["code"]["text"] == "break-glass"
        for i in issue["implicated"]
    }
    assert f"AuditEvent/{glass[0]['id']}" in implicated


async def test_privacy_alerts_since_the_future_are_empty(gw: AuditGateway) -> None:
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    resp = await gw.get("/$privacy-alerts", gw.ig(), params={"since": since})
    assert resp.status_code == 200 and resp.json()["total"] == 0


# --- the pure rules, table-driven ---------------------------------------------------------

T0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # 10:00 in London (GMT)
WINDOW = OutOfHours.parse("19:00-07:00")


def event(
    *,
    sub: str = "u1",
    nhs: str | None = "9991000003",
    at: datetime = T0,
    outcome: str = "0",
    reasons: tuple[str, ...] = (),
    break_glass: bool = False,
    purpose: str = "TREAT",
    name: str | None = "Robin Clinician",
) -> dict[str, Any]:
    record = AuditRecord(
        subtype="read",
        action="R",
        outcome=outcome,  # type: ignore[arg-type]
        recorded=at,
        user_sub=sub,
        user_name=name,
        user_role="R8000",
        user_org="F81001",
        purpose=purpose,
        patient_nhs=nhs,
        reasons=reasons,
        decision_effect="deny" if outcome == "4" else "permit",
        break_glass=break_glass,
        break_glass_reason="emergency" if break_glass else None,
        request_id=str(uuid.uuid4()),
    )
    return build_audit_event(record, "http://gw.test/fhir")


def _many(n: int, minutes_apart: float, sub: str = "u1") -> list[dict[str, Any]]:
    return [
        event(sub=sub, nhs=f"99910{i:05d}", at=T0 + timedelta(minutes=minutes_apart * i))
        for i in range(n)
    ]


FACTS = {
    "9991000003": PersonFacts(surname="Clinician"),
    "9991000496": PersonFacts(surname="Okafor", deceased=True),
}

Rule = Callable[[list[dict[str, Any]]], list[Any]]
RULES: dict[str, Rule] = {
    "break-glass": rule_break_glass,
    "no-legitimate-relationship": rule_no_legitimate_relationship,
    "out-of-hours": lambda evs: rule_out_of_hours(evs, WINDOW),
    "volume": lambda evs: rule_volume(evs, 3),
    "surname-match": lambda evs: rule_surname_match(evs, FACTS),
    "deceased": lambda evs: rule_deceased(evs, FACTS),
}

FIRES: list[tuple[str, list[dict[str, Any]]]] = [
    ("break-glass", [event(break_glass=True, purpose="ETREAT")]),
    (
        "no-legitimate-relationship",
        [event(outcome="4", reasons=("no-legitimate-relationship",))],
    ),
    ("out-of-hours", [event(at=datetime(2026, 11, 18, 22, 30, tzinfo=UTC))]),
    ("out-of-hours", [event(at=datetime(2026, 11, 18, 6, 59, tzinfo=UTC))]),
    # 18:30 UTC is 19:30 in London in summer time
    ("out-of-hours", [event(at=datetime(2026, 7, 1, 18, 30, tzinfo=UTC))]),
    ("volume", _many(4, 10)),
    ("surname-match", [event(nhs="9991000003", name="Robin Clinician")]),
    ("surname-match", [event(nhs="9991000003", name="robin CLINICIAN")]),
    ("deceased", [event(nhs="9991000496", name="Ann Other")]),
]

SILENT: list[tuple[str, list[dict[str, Any]]]] = [
    ("break-glass", [event(), event(sub="u2")]),
    ("no-legitimate-relationship", [event(outcome="4", reasons=("purpose-not-permitted",))]),
    ("no-legitimate-relationship", [event()]),
    # a source outage: the relationship could not be looked for
    ("no-legitimate-relationship", [event(outcome="8", reasons=("source-unavailable",))]),
    (
        "no-legitimate-relationship",
        [event(outcome="4", reasons=("no-legitimate-relationship", "source-unavailable"))],
    ),
    ("out-of-hours", [event(), event(at=datetime(2026, 11, 18, 18, 59, tzinfo=UTC))]),
    # summer: 06:30 UTC is 07:30 in London, inside working hours
    ("out-of-hours", [event(at=datetime(2026, 7, 1, 6, 30, tzinfo=UTC))]),
    # IG work on the trail at night is not record access
    ("out-of-hours", [event(at=datetime(2026, 11, 18, 23, 0, tzinfo=UTC), purpose="HOPERAT")]),
    ("volume", _many(3, 10)),  # exactly the threshold
    ("volume", _many(8, 25)),  # many people, but spread over hours
    ("volume", _many(2, 5, "u1") + _many(2, 5, "u2")),  # two users, two each
    ("volume", [event(), event(), event(), event(), event()]),  # one person, many times
    ("surname-match", [event(nhs="9991000003", name="Robin Smith")]),
    ("surname-match", [event(nhs="9991000070", name="Robin Clinician")]),  # no facts known
    ("deceased", [event(nhs="9991000003")]),
    ("deceased", [event(nhs="9991000496", outcome="4", reasons=("no-legitimate-relationship",))]),
]


@pytest.mark.parametrize(("rule", "events"), FIRES)
def test_each_rule_fires_on_its_scenario(rule: str, events: list[dict[str, Any]]) -> None:
    alerts = RULES[rule](events)
    assert len(alerts) == 1
    assert alerts[0].rule == rule
    assert set(alerts[0].event_ids) <= {e["id"] for e in events}
    assert alerts[0].event_ids
    assert "99910" not in alerts[0].detail


@pytest.mark.parametrize(("rule", "events"), SILENT)
def test_each_rule_stays_silent_on_normal_use(rule: str, events: list[dict[str, Any]]) -> None:
    assert RULES[rule](events) == []


def test_normal_working_day_raises_no_alert_at_all() -> None:
    day = [
        event(sub=f"u{i % 3}", nhs=f"99910{i % 7:05d}", at=T0 + timedelta(minutes=9 * i))
        for i in range(40)
    ]
    assert run_rules(day, MonitoringConfig(), FACTS | {"9991000003": PersonFacts("Jones")}) == []


def test_volume_alert_points_to_the_busiest_hour() -> None:
    events = _many(5, 5)
    [alert] = rule_volume(events, 4)
    assert set(alert.event_ids) == {e["id"] for e in events}
    assert "5 distinct people" in alert.detail


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        (
            "19:00-07:00",
            [time(19, 0), time(23, 59), time(0, 0), time(6, 59)],
            [time(7, 0), time(12, 0)],
        ),
        ("12:00-13:00", [time(12, 0), time(12, 59)], [time(13, 0), time(11, 59)]),
        ("08:00-08:00", [], [time(8, 0), time(0, 0)]),
    ],
)
def test_out_of_hours_window(text: str, inside: list[time], outside: list[time]) -> None:
    window = OutOfHours.parse(text)
    assert all(window.contains(t) for t in inside)
    assert not any(window.contains(t) for t in outside)


def test_a_bad_window_is_refused() -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        OutOfHours.parse("evenings")


def test_person_facts_from_patient_resources() -> None:
    facts = person_facts(
        [
            {
                "resourceType": "Patient",
                "name": [{"family": "Okafor"}],
                "deceasedDateTime": "2026-09-14",
            },
            {"resourceType": "CarePlan"},
        ]
    )
    assert facts == PersonFacts(surname="Okafor", deceased=True)
    assert person_facts([]) == PersonFacts()


def test_csv_cells_cannot_run_as_spreadsheet_formulas() -> None:
    row = csv_row(event(name='=HYPERLINK("http://x")'))
    assert row[CSV_COLUMNS.index("user display")].startswith("'=")
    assert row[CSV_COLUMNS.index("outcome")] == "permitted"


async def test_access_report_for_a_bad_nhs_number_is_400(gw: AuditGateway) -> None:
    resp = await gw.get("/Patient/1234567890/$access-report", gw.ig())
    assert resp.status_code == 400

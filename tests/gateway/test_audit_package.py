"""The audit trail as one package: its boundary, its size, and reason codes kept as data."""

from __future__ import annotations

import ast
import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import gateway.audit
from gateway.audit import (
    AuditStore,
    MonitoringConfig,
    access_report_csv,
    fields,
    note,
    run_rules,
)
from gateway.audit.codes import EXT_DECISION_EFFECT, EXT_DECISION_REASON
from gateway.db import create_schema, make_engine
from tests.gateway.test_audit_events import BASE, make_record

GATEWAY = Path(gateway.audit.__file__).resolve().parents[1]
PACKAGE = GATEWAY / "audit"
NO_RELATIONSHIP = "no-legitimate-relationship"


def _imports(path: Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every ``(module, names)`` a source file imports (``names`` empty for ``import x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()


def _outside_the_package() -> list[Path]:
    return [p for p in sorted(GATEWAY.rglob("*.py")) if PACKAGE not in p.parents]


def test_nothing_outside_the_package_imports_its_internals() -> None:
    public = set(gateway.audit.__all__)
    found: list[str] = []
    for path in _outside_the_package():
        for module, names in _imports(path):
            where = path.relative_to(GATEWAY.parent)
            if module.startswith("gateway.audit."):
                found.append(f"{where}: {module}")
            elif module == "gateway.audit":
                found.extend(f"{where}: gateway.audit.{n}" for n in names if n not in public)
    assert found == []


def test_the_old_homes_of_the_trail_are_gone() -> None:
    for old in ("audit_trail.py", "audit_review.py", "smart/audit.py"):
        assert not (GATEWAY / old).exists(), old
    for path in _outside_the_package():
        modules = {m for m, _ in _imports(path)}
        assert not modules & {"gateway.audit_trail", "gateway.audit_review", "gateway.smart.audit"}


def test_every_module_of_the_trail_stays_small() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 420} == {}
    route = GATEWAY / "routes" / "audit.py"
    assert len(route.read_text(encoding="utf-8").splitlines()) <= 400


# --- reason codes are data -----------------------------------------------------------------


def _http_event(
    status: int, effect: str | None, reasons: tuple[str, ...], **kw: Any
) -> dict[str, Any]:
    trail = note.AuditNote(
        subtype="read",
        resource_type="Patient",
        user_sub="gp-1",
        user_role="R8000",
        user_org="F81001",
        purpose="TREAT",
        patient_nhs="9990000018",
        effect=effect,
        reasons=reasons,
        **kw,
    )
    return note.build_event(
        trail,
        status=status,
        method="GET",
        query="",
        request_id="req-1",
        client_address="127.0.0.1",
        base_url=BASE,
    )


def test_outcome_desc_is_written_from_the_status_effect_and_reasons() -> None:
    event = _http_event(403, "deny", (NO_RELATIONSHIP, "patient-objected"))
    assert event["outcomeDesc"] == (
        "HTTP 403; decision deny; reasons no-legitimate-relationship, patient-objected"
    )
    assert [e["valueCoding"]["code"] for e in event["extension"][1:]] == [
        NO_RELATIONSHIP,
        "patient-objected",
    ]
    assert event["extension"][0] == {"url": EXT_DECISION_EFFECT, "valueCode": "deny"}
    assert fields.reasons(event) == (NO_RELATIONSHIP, "patient-objected")
    assert fields.decision_effect(event) == "deny"
    glass = _http_event(200, "permit", (), break_glass=True, break_glass_reason="collapsed")
    assert glass["outcomeDesc"] == "HTTP 200; decision permit; break-glass: collapsed"
    refused = note.build_event(
        note.AuditNote(),
        status=401,
        method="GET",
        query="",
        request_id="req-2",
        client_address=None,
        base_url=BASE,
        refusal=("invalid-token",),
    )
    assert refused["outcomeDesc"] == "HTTP 401; reasons invalid-token"
    assert fields.reasons(refused) == ("invalid-token",)


def test_reasons_are_read_from_the_extensions_never_from_the_text() -> None:
    event = _http_event(403, "deny", ("purpose-not-permitted",))
    event["outcomeDesc"] = "HTTP 403; decision deny; reasons no-legitimate-relationship"
    assert fields.reasons(event) == ("purpose-not-permitted",)
    assert run_rules([event], MonitoringConfig()) == []
    event["extension"].append(
        {"url": EXT_DECISION_REASON, "valueCoding": {"code": NO_RELATIONSHIP}}
    )
    event["outcomeDesc"] = "HTTP 403"
    [alert] = run_rules([event], MonitoringConfig())
    assert alert.rule == NO_RELATIONSHIP and alert.event_ids == (event["id"],)


def _legacy(event: dict[str, Any]) -> dict[str, Any]:
    """The event as stored before reasons were extensions: effect and reasons in text only."""
    old = {k: v for k, v in event.items() if k != "extension"}
    old["outcomeDesc"] = "HTTP 403; decision deny; reasons no-legitimate-relationship"
    return old


def test_old_events_with_reasons_only_in_outcome_desc_still_read() -> None:
    old = _legacy(_http_event(403, "deny", (NO_RELATIONSHIP,)))
    assert fields.reasons(old) == (NO_RELATIONSHIP,)
    assert fields.legacy_reasons("HTTP 403; reasons a, b ;x") == ("a", "b")
    assert fields.legacy_reasons("HTTP 200") == ()
    [alert] = run_rules([old], MonitoringConfig())
    assert alert.rule == NO_RELATIONSHIP


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AuditStore]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    await create_schema(engine)
    audit = AuditStore(engine)
    await audit.start()
    yield audit
    await audit.close()
    await engine.dispose()


async def test_a_stored_old_event_reads_back_in_the_report_and_the_rules(
    store: AuditStore,
) -> None:
    new = _http_event(403, "deny", (NO_RELATIONSHIP,))
    old = _legacy(_http_event(403, "deny", (NO_RELATIONSHIP,)))
    permitted = gateway.audit.build_audit_event(
        make_record(recorded=datetime(2026, 11, 23, 10, tzinfo=UTC), patient_nhs="9990000026"),
        BASE,
    )
    for event in (permitted, old, new):
        await store.append(event)
    found = await store.search(patient="9990000018", count=10)
    assert {e["id"] for e in found} == {old["id"], new["id"]}
    [alert] = [a for a in run_rules(found, MonitoringConfig()) if a.rule == NO_RELATIONSHIP]
    assert set(alert.event_ids) == {old["id"], new["id"]}
    rows = list(csv.DictReader(io.StringIO(access_report_csv(found))))
    # the new event's effect and reason come from its extensions; the old event has no
    # extension, so its reason is read from its text and its effect is not known
    assert {r["decision/reasons"] for r in rows} == {
        "deny; no-legitimate-relationship",
        NO_RELATIONSHIP,
    }
    assert (await store.verify()).ok

"""The audit trail as one package: its boundary, its size, and reason codes kept as data."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gateway.audit
from gateway.audit import (
    MonitoringConfig,
    fields,
    note,
    run_rules,
)
from gateway.audit.codes import EXT_DECISION_EFFECT, EXT_DECISION_REASON
from tests.gateway.test_audit_events import BASE

GATEWAY = Path(gateway.audit.__file__).resolve().parents[1]
PACKAGE = GATEWAY / "audit"
NO_RELATIONSHIP = "no-legitimate-relationship"
NHS = "9990000018"
WORKING_HOURS = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # a Monday, 11:00 in London
REQUEST: dict[str, Any] = {
    "method": "GET",
    "query": "",
    "request_id": "req-1",
    "client_address": "127.0.0.1",
    "base_url": BASE,
}


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


def http_event(
    status: int, effect: str | None, reasons: tuple[str, ...], **kw: Any
) -> dict[str, Any]:
    """The event the boundary builds for a read of NHS with this decision."""
    trail = note.AuditNote(subtype="read", patient_nhs=NHS, effect=effect, reasons=reasons, **kw)
    # In working hours: the monitoring rules below would add an out-of-hours alert otherwise.
    return note.build_event(trail, status=status, recorded=WORKING_HOURS, **REQUEST)


def test_outcome_desc_is_written_from_the_status_effect_and_reasons() -> None:
    event = http_event(403, "deny", (NO_RELATIONSHIP, "patient-objected"))
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
    glass = http_event(200, "permit", (), break_glass=True, break_glass_reason="collapsed")
    assert glass["outcomeDesc"] == "HTTP 200; decision permit; break-glass: collapsed"
    refused = note.build_event(note.AuditNote(), status=401, refusal=("invalid-token",), **REQUEST)
    assert refused["outcomeDesc"] == "HTTP 401; reasons invalid-token"
    assert fields.reasons(refused) == ("invalid-token",)


def test_reasons_are_read_from_the_extensions_never_from_the_text() -> None:
    event = http_event(403, "deny", ("purpose-not-permitted",))
    event["outcomeDesc"] = "HTTP 403; decision deny; reasons no-legitimate-relationship"
    assert fields.reasons(event) == ("purpose-not-permitted",)
    assert run_rules([event], MonitoringConfig()) == []
    event["extension"].append(
        {"url": EXT_DECISION_REASON, "valueCoding": {"code": NO_RELATIONSHIP}}
    )
    event["outcomeDesc"] = "HTTP 403"
    [alert] = run_rules([event], MonitoringConfig())
    assert alert.rule == NO_RELATIONSHIP and alert.event_ids == (event["id"],)


def legacy_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as stored before reasons were extensions: effect and reasons in text only."""
    old = {k: v for k, v in event.items() if k != "extension"}
    old["outcomeDesc"] = "HTTP 403; decision deny; reasons no-legitimate-relationship"
    return old


def test_old_events_with_reasons_only_in_outcome_desc_still_read() -> None:
    old = legacy_event(http_event(403, "deny", (NO_RELATIONSHIP,)))
    assert fields.reasons(old) == (NO_RELATIONSHIP,)
    assert fields.legacy_reasons("HTTP 403; reasons a, b ;x") == ("a", "b")
    assert fields.legacy_reasons("HTTP 200") == ()
    [alert] = run_rules([old], MonitoringConfig())
    assert alert.rule == NO_RELATIONSHIP

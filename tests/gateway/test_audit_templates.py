"""An AuditEvent from a remembered template is, byte for byte, the one built the ordinary way.

``gateway.audit.templates`` keeps each distinct event's canonical bytes cut at its id, time
and request id; ``note.prepare_event`` joins them around a request's own values. What is
stored and hashed must not change by a byte: every case below is compared with
``rows.prepare(note.build_event(...))`` for the same id, time and request id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import note
from gateway.audit.rows import Prepared, prepare
from gateway.audit.templates import EventTemplates
from gateway.audit.widths import CODE_MAX
from gateway.ids import random_uuid
from vocabulary import AuditSubtype

BASE = "https://gw.example/fhir"
T0 = datetime(2026, 12, 1, 18, 30, 5, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class Who:
    sub: str | None
    name: str | None
    role: str | None
    org: str | None
    client_id: str | None


def ordinary(
    trail: note.AuditNote, event_id: str, at: datetime, rid: str, **kw: object
) -> Prepared:
    return prepare(
        note.build_event(trail, request_id=rid, event_id=event_id, recorded=at, **kw)  # type: ignore[arg-type]
    )


def templated(
    trail: note.AuditNote, event_id: str, at: datetime, rid: str, **kw: object
) -> Prepared:
    return note.prepare_event(trail, request_id=rid, event_id=event_id, recorded=at, **kw)  # type: ignore[arg-type]


def same(a: Prepared, b: Prepared) -> None:
    assert a.stored == b.stored
    assert a.id == b.id
    assert a.recorded == b.recorded
    assert a.columns == b.columns


text = st.text(min_size=0, max_size=40)
maybe = st.none() | text
codes = st.sampled_from(["permit", "deny", "permit-filtered", "indeterminate", None])
reasons = st.lists(
    st.sampled_from(["no-legitimate-relationship", "patient-objected", "x" * 80]), max_size=3
)


@settings(max_examples=150, deadline=None)
@given(
    who=st.builds(Who, maybe, maybe, st.sampled_from(["R8000", "LA-SW", None]), maybe, maybe),
    subtype=st.sampled_from(["read", "search-type", "operation", "create", "update", None]),
    patient=st.sampled_from(["9990000018", None, "123"]),
    effect=codes,
    why=reasons,
    glass=st.booleans(),
    glass_reason=maybe,
    ids=st.lists(st.sampled_from(["CarePlan/a", "b", "Goal/c-1"]), max_size=4),
    status=st.sampled_from([200, 401, 403, 404, 503]),
    method=st.sampled_from(["GET", "POST"]),
    query=st.sampled_from(["", "patient=9990000018&_count=5", "access_token=eyJabcd.efgh"]),
    client=st.sampled_from(["127.0.0.1", None]),
    rid=st.sampled_from(["req-1", random_uuid(), "r" * CODE_MAX, "r" * (CODE_MAX + 5)]),
)
def test_a_templated_event_is_the_ordinary_one_byte_for_byte(
    who: Who,
    subtype: AuditSubtype | None,
    patient: str | None,
    effect: str | None,
    why: list[str],
    glass: bool,
    glass_reason: str | None,
    ids: list[str],
    status: int,
    method: str,
    query: str,
    client: str | None,
    rid: str,
) -> None:
    trail = note.AuditNote(
        subtype=subtype,
        operation="everything" if subtype == "operation" else None,
        resource_type="Patient",
        caller=who,
        purpose="TREAT",
        patient_nhs=patient,
        effect=effect,
        reasons=tuple(why),
        break_glass=glass,
        break_glass_reason=glass_reason,
        resource_ids=tuple(ids),
    )
    kw = {"status": status, "method": method, "query": query, "client_address": client,
          "base_url": BASE}  # fmt: skip
    for n in range(3):  # the first builds the template, the others fill it in
        event_id, at, request_id = random_uuid(), T0 + timedelta(seconds=n * 3601.5), f"{rid}"
        same(
            templated(trail, event_id, at, request_id, **kw),
            ordinary(trail, event_id, at, request_id, **kw),
        )


def test_a_name_that_holds_a_marker_takes_the_ordinary_path() -> None:
    from gateway.audit import templates

    sneaky = Who("sub-1", f"x {templates._ID_MARK} y", "R8000", "A81001", "client")
    trail = note.AuditNote(
        subtype="read", resource_type="Patient", caller=sneaky, patient_nhs="9990000018"
    )
    kw = {"status": 200, "method": "GET", "query": "", "client_address": None, "base_url": BASE}
    for _ in range(2):
        event_id = random_uuid()
        made = templated(trail, event_id, T0, "req-2", **kw)
        same(made, ordinary(trail, event_id, T0, "req-2", **kw))
        assert orjson.loads(made.stored)["agent"][0]["who"]["display"] == sneaky.name


def test_templates_are_bounded_and_each_event_gets_its_own_id() -> None:
    kept = EventTemplates(size=3)
    trail = note.AuditNote(subtype="read", resource_type="Patient", patient_nhs="9990000018")

    def build(event_id: str, at: datetime, rid: str) -> dict[str, object]:
        return note.build_event(trail, status=200, method="GET", query="", request_id=rid,
                                client_address=None, base_url=BASE, event_id=event_id,
                                recorded=at)  # fmt: skip

    made = [kept.prepared((n % 5,), build, "req-3") for n in range(10)]
    assert len(kept) == 3
    assert len({p.id for p in made}) == 10
    assert all(orjson.loads(p.stored)["id"] == p.id for p in made)

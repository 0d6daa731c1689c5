"""A remembered Bundle (``gateway.fhir.remembered``) is the one built afresh but for its id
and time, and nothing is remembered that could not be exact."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.fhir import remembered
from gateway.fhir.remembered import RememberedBundles
from gateway.fhir.responses import render_json
from gateway.fhir.search import Shape, searchset

BASE = "https://gw.example/fhir"
PATH = "Patient/9990000018/$everything"
SHAPE = Shape(count=1_000_000, offset=0)


def resources(note: str = "a plan") -> list[dict[str, Any]]:
    return [
        {"resourceType": "Patient", "id": "p1", "name": [{"family": "Testpatient"}]},
        {"resourceType": "CarePlan", "id": "cp1", "status": "active", "title": note},
    ]


def build_from(items: list[dict[str, Any]]) -> Any:
    return lambda: searchset(BASE, PATH, items, SHAPE, filters={})


def without_id_and_time(body: bytes) -> dict[str, Any]:
    bundle = orjson.loads(body)
    assert isinstance(bundle["id"], str) and bundle["meta"]["lastUpdated"].endswith("Z")
    del bundle["id"], bundle["meta"]["lastUpdated"]
    return dict(bundle)


def test_a_remembered_bundle_is_the_fresh_one_but_for_its_id_and_time() -> None:
    kept = RememberedBundles()
    items = resources()
    record = object()
    answers = [kept.rendered(("k", id(record)), (record,), build_from(items)) for _ in range(3)]
    assert len(kept) == 1
    fresh = build_from(items)()
    for body in answers:
        assert without_id_and_time(body) == without_id_and_time(render_json(fresh))
        bundle = orjson.loads(body)
        # byte for byte what the Bundle with this id and time renders to
        assert body == render_json({**fresh, "id": bundle["id"], "meta": bundle["meta"]})
    assert len({orjson.loads(b)["id"] for b in answers}) == 3


def test_another_object_under_the_same_key_is_built_afresh() -> None:
    kept = RememberedBundles()
    first, second = object(), object()
    kept.rendered(("k",), (first,), build_from(resources("first")))
    body = kept.rendered(("k",), (second,), build_from(resources("second")))
    assert orjson.loads(body)["entry"][1]["resource"]["title"] == "second"


def test_a_record_holding_a_marker_is_never_remembered() -> None:
    kept = RememberedBundles()
    sneaky = resources(remembered._ID_MARK[1:-1].decode())
    record = object()
    for _ in range(2):
        body = kept.rendered(("k",), (record,), build_from(sneaky))
        assert orjson.loads(body)["entry"][1]["resource"]["title"] == sneaky[1]["title"]
    assert len(kept) == 0


def test_at_most_size_bundles_are_kept() -> None:
    kept = RememberedBundles(size=2)
    records = [object() for _ in range(5)]
    for n, record in enumerate(records):
        kept.rendered((n,), (record,), build_from(resources()))
    assert len(kept) == 2

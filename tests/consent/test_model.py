"""Decision values: immutable, and visible() shows only what may be shown."""

from __future__ import annotations

import dataclasses

import pytest

from consent.model import Decision, Effect, Reason, SourceContribution, Withheld, resource_key
from tests.consent.factories import council, record, trust


def _decision(effect: Effect, *withheld: Withheld, sources: tuple[str, ...] = ()) -> Decision:
    return Decision(effect, (), "v1", "test", withheld=withheld, withheld_sources=sources)


def test_deny_shows_nothing() -> None:
    assert _decision(Effect.DENY).visible(record()) == ()


def test_permit_shows_everything() -> None:
    assert _decision(Effect.PERMIT).visible(record()) == record()


def test_withheld_source_removed_with_its_patient() -> None:
    shown = _decision(Effect.PERMIT_FILTERED, sources=("community",)).visible(record())
    assert [c.source for c in shown] == ["council"]


def test_withheld_resource_removed_only_from_its_source() -> None:
    w = Withheld("CarePlan/t-cp1", Reason.LABEL_RESTRICTED, "community")
    wrong_source = Withheld("CarePlan/c-cp1", Reason.LABEL_RESTRICTED, "community")
    shown = _decision(Effect.PERMIT_FILTERED, w, wrong_source).visible(record())
    ids = {r["id"] for c in shown for r in c.resources}
    assert "t-cp1" not in ids and "c-cp1" in ids


def test_source_left_empty_is_dropped() -> None:
    only = SourceContribution("s", "X", "health", ({"resourceType": "Goal", "id": "g"},))
    w = Withheld("Goal/g", Reason.ROLE_NOT_PERMITTED, "s")
    assert _decision(Effect.PERMIT_FILTERED, w).visible([only, council()]) == (council(),)


def test_decision_is_frozen_and_codes_are_strings() -> None:
    d = Decision(Effect.DENY, (Reason.PATIENT_OBJECTED,), "v1", "denied: x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.effect = Effect.PERMIT  # type: ignore[misc]
    assert d.reason_codes == ("patient-objected",)
    assert not d.permitted


def test_resource_key() -> None:
    assert resource_key({"resourceType": "CarePlan", "id": "a"}, 3) == "CarePlan/a"
    assert resource_key({"resourceType": "CarePlan"}, 3) == "CarePlan#3"
    assert trust().resources[0]["id"] == "t-p"

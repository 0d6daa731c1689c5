"""The joint care plan rules and the status transition table, without a server."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.errors import BadRequest, UnprocessableEntity
from gateway.joint.custody import join, split
from gateway.joint.rules import (
    INITIAL_STATUSES,
    JOINT_STATUSES,
    TRANSITIONS,
    check_fhir,
    check_rules,
    lead_count,
    stamped,
)
from gateway.joint.store import new_plan_id, plan_key
from tests.gateway.joint_support import NHS, plan_body
from vocabulary import Effect

AT = datetime(2026, 12, 1, 9, 30, 0, 123000, tzinfo=UTC)

# The table of docs/policy.md, row by row: from -> allowed to.
DOCUMENTED = {
    "draft": {"draft", "active", "revoked", "entered-in-error"},
    "active": {"active", "on-hold", "completed", "revoked", "entered-in-error"},
    "on-hold": {"active", "on-hold", "completed", "revoked", "entered-in-error"},
    "completed": {"completed", "entered-in-error"},
    "revoked": {"revoked", "entered-in-error"},
    "entered-in-error": set(),
}


def stored(body: dict[str, Any], version: int = 1) -> dict[str, Any]:
    return stamped(body, plan_id="joint.abc.plan", version=version, at=AT, nhs=NHS,
                   author_org="F81001", domain="health", contributor=[])  # fmt: skip


def test_the_table_is_the_documented_one() -> None:
    assert {k: set(v) for k, v in TRANSITIONS.items()} == DOCUMENTED
    assert set(TRANSITIONS) == set(JOINT_STATUSES)
    assert INITIAL_STATUSES == {"draft", "active"}


@pytest.mark.parametrize(("was", "now"), list(itertools.product(JOINT_STATUSES, repeat=2)))
def test_every_transition_is_decided_by_the_table(was: str, now: str) -> None:
    current = stored(plan_body(status=was))
    changed = stored(plan_body(status=now), 2)
    if now in DOCUMENTED[was]:
        check_rules(changed, current)
    else:
        with pytest.raises(UnprocessableEntity) as raised:
            check_rules(changed, current)
        assert raised.value.expression == ("CarePlan.status",)


def test_stamped_sets_the_server_fields_and_is_valid_uk_core() -> None:
    plan = stored(plan_body())
    check_fhir(plan)
    assert plan["meta"] == {
        "versionId": "1",
        "lastUpdated": "2026-12-01T09:30:00.123Z",
        "source": "urn:caregateway:source:joint",
        "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-CarePlan"],
        "tag": [{"system": "urn:caregateway:care-domain", "code": "health"}],
    }
    assert plan["subject"] == {"reference": f"Patient/{NHS}"}
    assert lead_count(plan) == 1


def test_contained_resources_are_checked_against_their_value_sets() -> None:
    body = plan_body()
    body["contained"][1]["lifecycleStatus"] = "bogus"
    with pytest.raises(BadRequest) as raised:
        check_fhir(stored(body))
    assert raised.value.expression == ("CarePlan.contained[1].lifecycleStatus",)


def test_plan_ids_carry_no_person() -> None:
    pid = new_plan_id()
    assert len(pid) <= 64 and plan_key(pid) and NHS not in pid
    assert plan_key("socialcare.P1.SP2") is None and plan_key("joint..plan") is None


def test_joint_plans_are_split_by_author_and_joined_back() -> None:
    from adapters.base import Outcome, SourceResult
    from gateway.joint.source import JOINT_ORGANISATION
    from gateway.records.access import Verdict

    gp_plan = stored(plan_body())
    council_plan = {**stored(plan_body()), "id": "joint.def.plan",
                    "author": {"identifier": {"system": "x", "value": "LA883"}}}  # fmt: skip
    prov = {"resourceType": "Provenance", "id": "joint.def.v1",
            "target": [{"reference": "CarePlan/joint.def.plan/_history/1"}]}  # fmt: skip
    result = SourceResult("joint", JOINT_ORGANISATION, "health", Outcome.FOUND,
                          (gp_plan, council_plan, prov))  # fmt: skip
    parts = {r.source: r for r in split([result])}
    assert set(parts) == {"joint:F81001", "joint:LA883"}
    assert parts["joint:LA883"].organisation == "LA883"
    assert [r["id"] for r in parts["joint:LA883"].resources] == ["joint.def.plan", "joint.def.v1"]
    (joined,) = join(Verdict(Effect.PERMIT, tuple(parts.values()))).visible
    assert joined.source == "joint" and len(joined.resources) == 3

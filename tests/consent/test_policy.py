"""The packaged policy says exactly what the default policy table in behaviour.md says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from consent.model import ClientKind, Level, Requester
from consent.policy import Policy, PolicyError, load_policy, parse_policy

DEFAULT_YAML = Path(__file__).parents[2] / "consent" / "default_policy.yaml"

CLINICAL = {"health": {"N", "R"}, "social-care": {"N"}}
# role: level, purposes, labels per domain, may record directives, may read audit
TABLE: dict[str, tuple[Level, set[str], dict[str, set[str]], bool, bool]] = {
    "R8000": (Level.CARE, {"TREAT", "ETREAT", "CAREMGT"}, CLINICAL, True, False),
    "R8001": (Level.CARE, {"TREAT", "ETREAT", "CAREMGT"}, CLINICAL, True, False),
    "R8003": (Level.CARE, {"TREAT", "ETREAT", "CAREMGT"}, CLINICAL, True, False),
    "LA-SW": (
        Level.CARE,
        {"TREAT", "ETREAT", "CAREMGT"},
        {"health": {"N"}, "social-care": {"N", "R"}},
        True,
        False,
    ),
    "R8008": (
        Level.DEMOGRAPHICS,
        {"TREAT", "CAREMGT"},
        {"health": {"N"}, "social-care": {"N"}},
        False,
        False,
    ),
    "R0001": (Level.NONE, {"HOPERAT"}, {}, True, True),
    "R5105": (Level.NONE, {"HOPERAT"}, {}, True, True),
    "BCF-COMM": (Level.NONE, {"HOPERAT"}, {}, False, False),
}
# Joint care plans: role -> (may contribute, care domain of its plans, may read summaries)
JOINT: dict[str, tuple[bool, str | None, bool]] = {
    "R8000": (True, "health", False),
    "R8001": (True, "health", False),
    "R8003": (True, "health", False),
    "LA-SW": (True, "social-care", False),
    "R8008": (False, None, False),
    "R0001": (False, None, True),
    "R5105": (False, None, True),
    "BCF-COMM": (False, None, True),
}


@pytest.mark.parametrize("role", sorted(JOINT))
def test_default_joint_plan_permissions(policy: Policy, role: str) -> None:
    contribute, domain, summaries = JOINT[role]
    rule = policy.roles[role]
    assert (rule.contribute, rule.care_domain, rule.read_summaries) == (
        contribute,
        domain,
        summaries,
    )


def test_system_clients_do_not_contribute_by_default(policy: Policy) -> None:
    assert not policy.system_clients.contribute and not policy.system_clients.read_summaries


def test_a_contributing_role_needs_a_care_domain() -> None:
    data = raw()
    data["roles"]["R8008"]["contribute"] = True
    with pytest.raises(PolicyError, match="contribute needs a care_domain"):
        parse_policy(data)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def raw() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_YAML.read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("role", sorted(TABLE))
def test_default_role_matches_behaviour_table(policy: Policy, role: str) -> None:
    level, purposes, labels, record, audit = TABLE[role]
    rule = policy.roles[role]
    assert rule.level is level
    assert set(rule.purposes) == purposes
    assert {d: set(ls) for d, ls in rule.sees_labels.items()} == labels
    assert rule.may_record_directives is record
    assert rule.may_read_audit is audit


def test_default_names_exactly_the_table_roles(policy: Policy) -> None:
    assert set(policy.roles) == set(TABLE)


def test_system_clients_care_treat_only_normal_labels(policy: Policy) -> None:
    rule = policy.system_clients
    assert rule.level is Level.CARE
    assert rule.purposes == ("TREAT",)
    assert {d: set(ls) for d, ls in rule.sees_labels.items()} == {
        "health": {"N"},
        "social-care": {"N"},
    }
    assert not rule.may_record_directives and not rule.may_read_audit


def test_no_default_rule_sees_v(policy: Policy) -> None:
    for rule in [*policy.roles.values(), policy.system_clients]:
        assert all("V" not in labels for labels in rule.sees_labels.values())


def test_levels_resource_types(policy: Policy) -> None:
    assert policy.levels[Level.NONE].resource_types == ()
    assert set(policy.levels[Level.DEMOGRAPHICS].resource_types) == {"Patient", "CareTeam"}
    care = policy.levels[Level.CARE]
    assert {"Patient", "CareTeam", "CarePlan"} <= set(care.resource_types)
    assert not policy.levels[Level.DEMOGRAPHICS].allows("CarePlan")
    assert policy.levels[Level.FULL].allows("Anything")


def test_break_glass_defaults(policy: Policy) -> None:
    assert policy.break_glass.overrides_objection is True
    assert policy.break_glass.overrides_recipient_refusal is True
    assert policy.break_glass.duration_minutes == 60
    assert policy.version


def test_load_from_path_equals_packaged(tmp_path: Path, policy: Policy) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(DEFAULT_YAML.read_text())
    assert load_policy(path) == policy
    assert load_policy(str(path)) == policy


@pytest.mark.parametrize(
    ("role", "kind", "expected"),
    [
        ("R8000", ClientKind.USER, "R8000"),
        ("R0001", ClientKind.SYSTEM, "system"),  # a system client's role claim is ignored
        (None, ClientKind.SYSTEM, "system"),
        ("R9999", ClientKind.USER, None),
        (None, ClientKind.USER, None),
    ],
)
def test_rule_for(policy: Policy, role: str | None, kind: ClientKind, expected: str | None) -> None:
    rule = policy.rule_for(Requester("s", role, "RAT", kind))
    if expected is None:
        assert rule is None
    elif expected == "system":
        assert rule is policy.system_clients
    else:
        assert rule is policy.roles[expected]


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split("/")
    for part in head:
        data = data[part]
    if value is _DELETE:
        del data[last]
    else:
        data[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("roles/R8000/level", "clinical", "roles.R8000.level: Input should be 'none'"),
        ("roles/R8000/purposes", ["TRET"], "'TRET' is not a PurposeOfUse code"),
        ("roles/R8000/purposes", [], "roles.R8000.purposes"),
        ("roles/LA-SW/sees_labels", {"health": ["X"]}, "roles.LA-SW.sees_labels.health.0"),
        ("roles/LA-SW/sees_labels", {"dental": ["N"]}, "sees_labels.dental"),
        ("roles/R8000/may_read_audits", True, "may_read_audits: Extra inputs"),
        ("version", _DELETE, "version: Field required"),
        ("version", "", "version"),
        ("system_clients/purposes", ["NOPE"], "system_clients.purposes"),
        ("levels/care", _DELETE, "levels used by roles but not defined: care"),
        ("levels/secret", {"resource_types": []}, "levels.secret"),
        ("break_glass/duration_minutes", 0, "break_glass.duration_minutes"),
        ("roles/bad code", {"level": "care", "purposes": ["TREAT"]}, "without spaces"),
    ],
)
def test_invalid_policy_names_the_problem(path: str, value: Any, message: str) -> None:
    data = raw()
    _set(data, path, value)
    with pytest.raises(PolicyError) as err:
        parse_policy(data)
    assert message in str(err.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("roles: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("- just a list\n")
    with pytest.raises(PolicyError, match="must be a YAML mapping"):
        load_policy(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.yaml")


def test_policy_is_immutable(policy: Policy) -> None:
    with pytest.raises(ValueError):
        policy.version = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("requester", "record", "audit"),
    [
        (Requester("s", "R8000", "RAT"), True, False),
        (Requester("s", "LA-SW", "LA001"), True, False),
        (Requester("s", "R8008", "RAT"), False, False),
        (Requester("s", "R0001", "RAT"), True, True),
        (Requester("s", "R5105", "RAT"), True, True),
        (Requester("s", "R0001", "RAT", ClientKind.SYSTEM), False, False),
        (Requester("s", "R9999", "RAT"), False, False),
    ],
)
def test_may_record_directives_and_read_audit(
    policy: Policy, requester: Requester, record: bool, audit: bool
) -> None:
    assert policy.may_record_directives(requester) is record
    assert policy.may_read_audit(requester) is audit

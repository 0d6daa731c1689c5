"""Consent resources → directives, and the rules that make a Consent unacceptable (422)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.directives import (
    Directive,
    DirectiveKind,
    InvalidConsent,
    parse_consent,
    parse_consents,
    validate_consent,
)
from tests.consent.factories import (
    NHS,
    NOW,
    TRUST,
    objection_consent,
    purpose,
    refuse_consent,
    withhold_consent,
)


def test_objection() -> None:
    (d,) = parse_consent(objection_consent("c1"))
    assert d == Directive("c1", DirectiveKind.OBJECTION, "active", NHS)
    assert d.in_force("TREAT", NOW)


def test_withhold_source() -> None:
    (d,) = parse_consent(withhold_consent(TRUST, cid="c2"))
    assert (d.kind, d.org, d.consent_id, d.patient) == (
        DirectiveKind.WITHHOLD_SOURCE,
        TRUST,
        "c2",
        NHS,
    )


def test_refuse_recipient() -> None:
    (d,) = parse_consent(refuse_consent("RXX", cid="c3"))
    assert (d.kind, d.org) == (DirectiveKind.REFUSE_RECIPIENT, "RXX")


def test_patient_reference_form() -> None:
    c = objection_consent()
    c["patient"] = {"reference": f"Patient/{NHS}"}
    assert validate_consent(c) == []
    assert parse_consent(c)[0].patient == NHS


def test_infa_category_accepted() -> None:
    c = objection_consent()
    c["category"] = [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "INFA"}]}
    ]
    assert validate_consent(c) == []


def test_several_nested_denies_give_several_directives() -> None:
    c = withhold_consent(TRUST)
    extra = copy.deepcopy(refuse_consent("RXX")["provision"]["provision"][0])
    c["provision"]["provision"].append(extra)
    kinds = [d.kind for d in parse_consent(c)]
    assert kinds == [DirectiveKind.WITHHOLD_SOURCE, DirectiveKind.REFUSE_RECIPIENT]
    assert len(parse_consents([c, objection_consent()])) == 3


@pytest.mark.parametrize(
    ("status", "enforced"),
    [
        ("active", True),
        ("inactive", False),
        ("proposed", False),
        ("rejected", False),
        ("entered-in-error", False),
        ("draft", False),
    ],
)
def test_only_active_is_enforced(status: str, enforced: bool) -> None:
    (d,) = parse_consent(objection_consent(status=status))
    assert d.in_force("TREAT", NOW) is enforced


@pytest.mark.parametrize(
    ("purposes", "asked", "applies"),
    [
        (["CAREMGT"], "CAREMGT", True),
        (["CAREMGT"], "TREAT", False),
        (["CAREMGT", "TREAT"], "TREAT", True),
    ],
)
def test_nested_purpose(purposes: list[str], asked: str, applies: bool) -> None:
    (d,) = parse_consent(withhold_consent(TRUST, purpose=purpose(*purposes)))
    assert d.in_force(asked, NOW) is applies


def test_outer_and_nested_purposes_intersect() -> None:
    c = withhold_consent(TRUST, purpose=purpose("CAREMGT"))
    c["provision"]["purpose"] = purpose("TREAT")
    (d,) = parse_consent(c)
    assert d.purposes == frozenset()
    assert not d.in_force("TREAT", NOW) and not d.in_force("CAREMGT", NOW)


@pytest.mark.parametrize(
    ("period", "at", "applies"),
    [
        ({"start": "2026-11-01", "end": "2026-11-30"}, NOW, True),
        ({"start": "2026-11-24"}, NOW, False),
        ({"end": "2026-11-22"}, NOW, False),
        ({"end": "2026-11-23"}, NOW, True),  # a date end includes the whole day
        ({"start": "2026-11-23T12:00:00Z"}, NOW, True),
        ({"start": "2026-11-23T12:00:01+00:00"}, NOW, False),
        ({"end": "2026-11-23T12:00:00Z"}, NOW, True),
        ({"end": "2026-11-23T11:00:00Z"}, NOW - timedelta(minutes=61), True),
        ({"start": "2026", "end": "2026-11"}, NOW, True),
        ({"end": "2026-10"}, NOW, False),
    ],
)
def test_nested_period(period: dict[str, str], at: datetime, applies: bool) -> None:
    (d,) = parse_consent(refuse_consent("RXX", period=period))
    assert d.in_force("TREAT", at) is applies


def test_objection_period_on_outer_provision() -> None:
    (d,) = parse_consent(objection_consent(period={"end": "2026-01-01"}))
    assert d.end == datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert not d.in_force("TREAT", NOW)


def test_outer_period_limits_nested() -> None:
    c = withhold_consent(TRUST, period={"start": "2026-01-01", "end": "2026-12-31"})
    c["provision"]["period"] = {"end": "2026-06-30"}
    (d,) = parse_consent(c)
    assert d.end is not None and d.end.month == 6
    assert not d.in_force("TREAT", NOW)


def _without(key: str) -> Any:
    def mutate(c: dict[str, Any]) -> None:
        del c[key]

    return mutate


def _set(key: str, value: Any) -> Any:
    def mutate(c: dict[str, Any]) -> None:
        c[key] = value

    return mutate


def _nested(key: str, value: Any) -> Any:
    def mutate(c: dict[str, Any]) -> None:
        c["provision"]["provision"][0][key] = value

    return mutate


def _both_policies(c: dict[str, Any]) -> None:
    c["policy"] = [{"uri": "https://example.org/policy"}]


def _actor_role(code: str) -> Any:
    def mutate(c: dict[str, Any]) -> None:
        c["provision"]["provision"][0]["actor"][0]["role"]["coding"][0]["code"] = code

    return mutate


def _actor_ref(ref: dict[str, Any]) -> Any:
    def mutate(c: dict[str, Any]) -> None:
        c["provision"]["provision"][0]["actor"][0]["reference"] = ref

    return mutate


def _outer_type(t: str) -> Any:
    def mutate(c: dict[str, Any]) -> None:
        c["provision"]["type"] = t

    return mutate


def _no_nested(c: dict[str, Any]) -> None:
    c["provision"]["provision"] = []


OPTIN_CASES = [
    ("status", _set("status", "enforced"), "Consent.status"),
    ("scope", _set("scope", {"coding": [{"code": "research"}]}), "Consent.scope"),
    ("no category", _without("category"), "Consent.category"),
    ("category", _set("category", [{"coding": [{"code": "x"}]}]), "Consent.category"),
    ("no patient", _without("patient"), "Consent.patient"),
    (
        "bad nhs",
        _set(
            "patient",
            {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "1234567890"}},
        ),
        "not a valid NHS number",
    ),
    ("ppc-1 both", _both_policies, "ppc-1"),
    ("ppc-1 neither", _without("policyRule"), "ppc-1"),
    ("rule", _set("policyRule", {"coding": [{"code": "OPTOUT"}]}), "policyRule must be"),
    ("no provision", _without("provision"), "Consent.provision is required"),
    ("outer type", _outer_type("deny"), "must be permit for OPTIN"),
    ("no nested deny", _no_nested, "at least one nested provision of type deny"),
    ("nested permit", _nested("type", "permit"), "provision[0].type must be deny"),
    ("actor role", _actor_role("PRCP"), "CST or IRCP"),
    ("actor ref", _actor_ref({"reference": "Organization/1"}), "by identifier"),
    ("two actors", _nested("actor", []), "exactly one actor"),
    ("purpose", _nested("purpose", purpose("SHOPPING")), "'SHOPPING' is not a PurposeOfUse"),
    ("period", _nested("period", {"start": "2026-12-01", "end": "2026-01-01"}), "end is before"),
    ("period value", _nested("period", {"start": "soon"}), "not a valid FHIR dateTime"),
    ("naive time", _nested("period", {"start": "2026-01-01T10:00:00"}), "time zone"),
    ("class", _nested("class", [{"code": "CarePlan"}]), "class is not supported"),
]


@pytest.mark.parametrize(
    ("name", "mutate", "message"), OPTIN_CASES, ids=[c[0] for c in OPTIN_CASES]
)
def test_invalid_optin(name: str, mutate: Any, message: str) -> None:
    c = withhold_consent(TRUST)
    assert validate_consent(c) == []
    mutate(c)
    problems = validate_consent(c)
    assert any(message in p for p in problems), problems
    with pytest.raises(InvalidConsent) as err:
        parse_consent(c)
    assert err.value.problems == tuple(problems)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_outer_type("permit"), "must be deny for an OPTOUT"),
        (_set("provision", {"type": "deny", "actor": []}), "no actor or class"),
    ],
)
def test_invalid_optout(mutate: Any, message: str) -> None:
    c = objection_consent()
    mutate(c)
    assert any(message in p for p in validate_consent(c))


@pytest.mark.parametrize("resource", [None, [], {"resourceType": "Patient"}])
def test_not_a_consent(resource: Any) -> None:
    assert validate_consent(resource) == ["resourceType must be Consent"]


def test_messages_never_carry_the_nhs_number() -> None:
    c = withhold_consent(TRUST)
    c["patient"]["identifier"]["value"] = "9434765918"  # wrong check digit
    problems = validate_consent(c)
    assert problems and all("9434765918" not in p for p in problems)

"""The shared vocabulary is a leaf, and the words it holds are the only copies in use."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

import vocabulary
from adapters import nhs_number, ukcore
from consent import model, policy
from consent.directives import validate_consent
from consent.policy import PolicyError, load_policy, parse_policy
from gateway import auth, errors
from gateway.audit import codes
from gateway.fhir.openapi_table import NHS_PATTERN
from gateway.records.access import Verdict
from tests.consent.factories import TRUST, purpose, withhold_consent
from tests.test_import_rules import imported as imports_of

ROOT = Path(__file__).parents[2]
OURS = {"gateway", "adapters", "consent", "simulators", "tests", "bench"}


@pytest.mark.parametrize("path", sorted((ROOT / "vocabulary").glob("*.py")), ids=lambda p: p.name)
def test_vocabulary_imports_nothing_of_ours(path: Path) -> None:
    imported = {name.split(".")[0] for _, name in imports_of(path)}
    assert not imported & OURS


def test_each_word_has_one_definition() -> None:
    # Every package's name for a shared word is the vocabulary's object itself.
    assert policy.PURPOSES_OF_USE is auth.PURPOSES_OF_USE is vocabulary.PURPOSES_OF_USE
    assert model.Effect is vocabulary.Effect and model.ClientKind is vocabulary.ClientKind
    assert auth.ClientKind is vocabulary.ClientKind
    assert model.NHS_NUMBER_SYSTEM == ukcore.NHS_NUMBER_SYSTEM == vocabulary.NHS_NUMBER_SYSTEM
    assert ukcore.ODS_ORGANISATION_SYSTEM == model.ODS_SYSTEM == vocabulary.ODS_SYSTEM
    assert errors.REASON_SYSTEM == codes.REASON_SYSTEM == model.REASON_SYSTEM
    assert NHS_PATTERN == f"^{vocabulary.NHS_NUMBER_PATTERN}$"
    assert Verdict.__annotations__["effect"] == "Effect"


def test_nhs_number_shape_is_ascii_only() -> None:
    assert vocabulary.NHS_NUMBER_RE.fullmatch("9990000018")
    assert not vocabulary.NHS_NUMBER_RE.fullmatch("٩٩٩٠٠٠٠٠١٨")  # Arabic-Indic digits
    assert not nhs_number.is_valid("٩٩٩٠٠٠٠٠١٨")


def test_the_gate_and_the_policy_accept_the_same_purposes() -> None:
    # The packaged policy only names purposes a request may carry ...
    packaged = load_policy()
    named = {p for rule in packaged.roles.values() for p in rule.purposes}
    assert packaged.patient is not None
    named |= set(packaged.system_clients.purposes) | set(packaged.patient.purposes)
    assert named <= set(vocabulary.PURPOSES_OF_USE)
    # ... and a policy granting one the gate refuses (here marketing) is refused at start-up,
    # instead of loading a rule no request could ever meet.
    data: dict[str, Any] = copy.deepcopy(packaged.model_dump(mode="json"))
    data["roles"]["R8000"]["purposes"] = ["TREAT", "HMARKT"]
    with pytest.raises(PolicyError, match="'HMARKT' is not a PurposeOfUse code"):
        parse_policy(data)
    assert "BTG" not in vocabulary.PURPOSES_OF_USE  # break-glass is ETREAT + a reason


def test_a_directive_names_only_purposes_a_request_may_carry() -> None:
    consent = withhold_consent(TRUST)
    consent["provision"]["provision"][0]["purpose"] = purpose("CAREMGT")
    assert validate_consent(consent) == []
    consent["provision"]["provision"][0]["purpose"] = purpose("HMARKT")
    assert any("'HMARKT' is not a PurposeOfUse" in p for p in validate_consent(consent))

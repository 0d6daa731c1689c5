"""The synthetic population: deterministic, big enough, valid where it must be, messy elsewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from adapters import nhs_number
from simulators import _vocab as v
from simulators.model import Frequency
from simulators.population import SCENARIOS, Population, build_population

POSTCODE = re.compile(r"(RM1[6-9]|SS17) \d[A-Z]{2}")
MALFORMED_PERSON = "P900006"


@pytest.fixture(scope="module")
def pop() -> Population:
    return build_population()


def test_same_seed_same_population() -> None:
    assert build_population(7, 300) == build_population(7, 300)


def test_different_seed_different_population() -> None:
    a, b = build_population(7, 300), build_population(8, 300)
    assert [p.name for p in a.council_people] != [p.name for p in b.council_people]


def test_scenarios_are_the_same_for_every_seed() -> None:
    a, b = build_population(1, 100), build_population(2, 100)
    for key in SCENARIOS:
        for pid in SCENARIOS[key].person_ids:
            pa, pb = a.council_person(pid), b.council_person(pid)
            assert pa is not None and pb is not None
            assert (pa.nhs_number, pa.name, pa.birth_date) == (
                pb.nhs_number, pb.name, pb.birth_date
            )
            assert [p.plan_id for p in a.support_plans[pid]] == [
                p.plan_id for p in b.support_plans[pid]
            ]


def test_size_and_mix(pop: Population) -> None:
    assert pop.size >= 2000
    council = {p.person_id[1:] for p in pop.council_people}
    community = {p.patient_id[1:] for p in pop.community_patients}
    people = council | community
    assert len(people) == pop.size + 1  # the duplicate scenario's second council record
    both = len(council & community) / len(people)
    assert 0.45 < both < 0.65
    assert council - community and community - council


def test_older_people_heavy(pop: Population) -> None:
    born = [p.birth_date.year for p in pop.council_people]
    assert sum(1925 <= y <= 1960 for y in born) / len(born) > 0.7


def test_places_practices_and_postcodes(pop: Population) -> None:
    for person in pop.council_people:
        assert person.gp is not None and person.gp.ods_code in {"F81001", "F81002", "F81003",
                                                                "F81004"}
        for address in person.addresses:
            assert address.town in v.LOCALITIES
            assert POSTCODE.fullmatch(address.postcode), address.postcode
    for patient in pop.community_patients:
        assert patient.address.town in v.LOCALITIES


def test_every_nhs_number_is_valid_999_except_the_malformed_scenario(pop: Population) -> None:
    for person in pop.council_people:
        if person.nhs_number is None:
            assert person.nhs_number_status == "missing"
            continue
        if person.person_id == MALFORMED_PERSON:
            assert not nhs_number.is_valid(person.nhs_number)
            continue
        assert nhs_number.is_valid(person.nhs_number), person.person_id
        assert nhs_number.normalise(person.nhs_number).startswith("999")
    for patient in pop.community_patients:
        assert patient.nhs_number is not None and nhs_number.is_valid(patient.nhs_number)
        assert patient.nhs_number.startswith("999")


def test_one_nhs_number_per_person_apart_from_the_duplicate(pop: Population) -> None:
    counts = Counter(
        nhs_number.normalise(p.nhs_number)
        for p in pop.council_people
        if p.nhs_number and nhs_number.is_valid(p.nhs_number)
    )
    assert {n for n, c in counts.items() if c > 1} == {SCENARIOS["duplicate"].nhs_number}


def test_scenario_keys() -> None:
    assert set(SCENARIOS) == {
        "both", "social_only", "community_only", "duplicate", "malformed_nhs", "no_nhs",
        "restricted", "safeguarding", "mental_health_r", "deceased", "dob_conflict", "nopat",
    }
    for key, scenario in SCENARIOS.items():
        assert scenario.key == key and scenario.description
        assert "\n" not in scenario.description
        assert scenario.nhs_number is None or nhs_number.is_valid(scenario.nhs_number)


def test_scenario_both(pop: Population) -> None:
    nhs = SCENARIOS["both"].nhs_number
    assert nhs is not None
    [person] = pop.council_people_with(nhs)
    [patient] = pop.community_patients_with(nhs)
    assert person.gp is not None and person.gp.ods_code == "F81001"
    assert person.nhs_number_status == "verified"
    assert patient.verification is not None and patient.verification.code == "01"
    assert pop.support_plans[person.person_id] and pop.involvements[person.person_id]
    assert pop.care_plans[patient.patient_id] and pop.care_teams[patient.patient_id]


def test_scenario_single_source(pop: Population) -> None:
    social, health = SCENARIOS["social_only"], SCENARIOS["community_only"]
    assert social.nhs_number and health.nhs_number
    assert pop.council_people_with(social.nhs_number)
    assert not pop.community_patients_with(social.nhs_number)
    assert pop.community_patients_with(health.nhs_number)
    assert not pop.council_people_with(health.nhs_number)


def test_scenario_duplicate(pop: Population) -> None:
    scenario = SCENARIOS["duplicate"]
    assert scenario.nhs_number is not None
    found = pop.council_people_with(scenario.nhs_number)
    assert sorted(p.person_id for p in found) == sorted(scenario.person_ids)
    assert len(found) == 2


def test_scenario_malformed_and_missing_numbers(pop: Population) -> None:
    malformed = pop.council_person(SCENARIOS["malformed_nhs"].person_ids[0])
    assert malformed is not None and malformed.nhs_number is not None
    digits = nhs_number.normalise(malformed.nhs_number)
    assert not re.fullmatch(r"\d{10}", digits)  # badly formatted
    only_digits = re.sub(r"\D", "", malformed.nhs_number)
    assert len(only_digits) == 10 and not nhs_number.is_valid(only_digits)  # fails Mod 11
    assert not pop.council_people_with(only_digits)
    assert SCENARIOS["malformed_nhs"].nhs_number is None

    missing = pop.council_person(SCENARIOS["no_nhs"].person_ids[0])
    assert missing is not None
    assert missing.nhs_number is None and missing.nhs_number_status == "missing"


def test_scenario_restricted_and_safeguarding(pop: Population) -> None:
    restricted = pop.council_person(SCENARIOS["restricted"].person_ids[0])
    assert restricted is not None and restricted.restricted
    plans = pop.support_plans[SCENARIOS["safeguarding"].person_ids[0]]
    kinds = {(p.plan_type, p.confidentiality) for p in plans}
    assert ("safeguarding-protection", "restricted") in kinds
    assert any(c == "normal" for _, c in kinds)


def test_scenario_mental_health_restricted(pop: Population) -> None:
    plans = pop.care_plans[SCENARIOS["mental_health_r"].patient_ids[0]]
    assert any(p.security == "R" and p.category.code == "718347000" for p in plans)
    assert any(p.security is None for p in plans)


def test_scenario_deceased_and_dob_conflict(pop: Population) -> None:
    dead = SCENARIOS["deceased"]
    person = pop.council_person(dead.person_ids[0])
    patient = pop.community_patient(dead.patient_ids[0])
    assert person is not None and patient is not None
    assert person.death_date is not None and person.death_date == patient.deceased

    conflict = SCENARIOS["dob_conflict"]
    person = pop.council_person(conflict.person_ids[0])
    patient = pop.community_patient(conflict.patient_ids[0])
    assert person is not None and patient is not None
    assert person.birth_date != patient.birth_date
    assert person.nhs_number_status == "verified"
    assert patient.verification is not None and patient.verification.code == "02"


def test_vendor_mess_is_present(pop: Population) -> None:
    stored = [p.nhs_number or "" for p in pop.council_people]
    assert any(re.fullmatch(r"\d{3} \d{3} \d{4}", s) for s in stored)
    assert any(re.fullmatch(r"\d{3}-\d{3}-\d{4}", s) for s in stored)
    plans = [p for ps in pop.support_plans.values() for p in ps]
    known = {"care-and-support", "reablement", "carer-support", "safeguarding-protection"}
    assert any(p.plan_type not in known for p in plans)
    assert {"ended", "cancelled", "draft", "under-review", "active"} <= {p.status for p in plans}
    frequencies = [s.frequency for p in plans for s in p.services]
    assert any(isinstance(f, str) for f in frequencies)
    assert any(isinstance(f, Frequency) for f in frequencies)
    involvements = [i for inv in pop.involvements.values() for i in inv]
    assert any(i.end is not None for i in involvements)
    assert any(sum(i.is_lead and i.end is None for i in inv) > 1
               for inv in pop.involvements.values())
    care_plans = [c for cs in pop.care_plans.values() for c in cs]
    assert {c.contained for c in care_plans} == {True, False}
    assert {"suspended", "cancelled"} <= {c.status for c in care_plans}
    patients = pop.community_patients
    assert {p.verification.system for p in patients if p.verification} == {
        v.STU3_VERIFICATION_SYSTEM, v.STU3_VERIFICATION_SYSTEM_NHS, v.STU3_VERIFICATION_SYSTEM_GPC
    }
    assert {p.verification_extension for p in patients} == {
        v.STU3_VERIFICATION_EXTENSION, v.STU3_GPC_VERIFICATION_EXTENSION
    }
    ethnic = [p.ethnicity for p in patients if p.ethnicity]
    assert {e.system for e in ethnic} == {v.STU3_ETHNIC_SYSTEM, v.STU3_ETHNIC_SYSTEM_NHS}
    assert any(len(e.code) == 2 and e.code in v.LOCAL_ETHNIC_SUBCODES for e in ethnic)
    assert all(any(i.system == v.PAS_NUMBER_SYSTEM for i in p.local_ids) for p in patients)


def test_same_population_in_another_process() -> None:
    """No dependence on hash randomisation: another interpreter builds identical data."""
    script = (
        "import hashlib\n"
        "from simulators.population import build_population\n"
        "p = build_population(11, 200)\n"
        "data = (p.council_people, sorted(p.support_plans.items()), p.community_patients,\n"
        "        sorted(p.care_plans.items()), sorted(p.care_teams.items()))\n"
        "print(hashlib.sha256(repr(data).encode()).hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1 and "" not in digests

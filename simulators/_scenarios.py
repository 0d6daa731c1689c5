"""The fixed scenario people: same NHS numbers and ids for every seed (see :mod:`population`).

Ids are in ranges the general population never uses: council ``P9000nn`` / ``SP-9000nn``,
community ``C9000nn`` / ``cp-9000nn`` / ``ct-9000nn``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Final

from simulators import _vocab as v
from simulators._build import Builder, council_person, support_plan
from simulators._build_community import care_plan, care_team, community_patient
from simulators.model import Address, Involvement, PersonName, Scenario, Worker

NHS_BOTH: Final = "9991000003"
NHS_SOCIAL_ONLY: Final = "9991000070"
NHS_COMMUNITY_ONLY: Final = "9991000143"
NHS_DUPLICATE: Final = "9991000216"
NHS_RESTRICTED: Final = "9991000283"
NHS_SAFEGUARDING: Final = "9991000356"
NHS_MENTAL_HEALTH_R: Final = "9991000429"
NHS_DECEASED: Final = "9991000496"
NHS_DOB_CONFLICT: Final = "9991000569"
NHS_NOPAT: Final = "9991000577"
MALFORMED_STORED_NHS: Final = "999/123/4561"  # not ten digits, and 9991234561 fails Modulus 11
DECEASED_ON: Final = date(2026, 9, 14)

SCENARIO_NHS_NUMBERS: Final = frozenset(
    {NHS_BOTH, NHS_SOCIAL_ONLY, NHS_COMMUNITY_ONLY, NHS_DUPLICATE, NHS_RESTRICTED,
     NHS_SAFEGUARDING, NHS_MENTAL_HEALTH_R, NHS_DECEASED, NHS_DOB_CONFLICT, NHS_NOPAT}
)

SCENARIOS: Final[dict[str, Scenario]] = {
    s.key: s
    for s in (
        Scenario("both", NHS_BOTH,
                 "In both sources (GP F81001): care plans and care teams from social care and "
                 "community health", ("P900001",), ("C900001",)),
        Scenario("social_only", NHS_SOCIAL_ONLY,
                 "Known to adult social care only", ("P900002",)),
        Scenario("community_only", NHS_COMMUNITY_ONLY,
                 "Known to community health only", (), ("C900003",)),
        Scenario("duplicate", NHS_DUPLICATE,
                 "Two council Person records share one NHS number (duplicate reported)",
                 ("P900004", "P900005"), ("C900004",)),
        Scenario("malformed_nhs", None,
                 "Council Person P900006 stores a badly formatted NHS number that fails "
                 "Modulus 11: never matched", ("P900006",)),
        Scenario("no_nhs", None,
                 "Council Person P900007 has no NHS number (status missing): never matched",
                 ("P900007",)),
        Scenario("restricted", NHS_RESTRICTED,
                 "Council Person marked restricted: every social care resource labelled R",
                 ("P900008",), ("C900008",)),
        Scenario("safeguarding", NHS_SAFEGUARDING,
                 "A restricted safeguarding-protection plan beside a normal care plan",
                 ("P900009",), ("C900009",)),
        Scenario("mental_health_r", NHS_MENTAL_HEALTH_R,
                 "Community mental health care plan labelled R beside a normal nursing plan",
                 ("P900010",), ("C900010",)),
        Scenario("deceased", NHS_DECEASED,
                 f"Died {DECEASED_ON.isoformat()}, recorded by both sources",
                 ("P900011",), ("C900011",)),
        Scenario("dob_conflict", NHS_DOB_CONFLICT,
                 "Birth dates differ between sources; social care verified, community "
                 "unverified (02)", ("P900012",), ("C900012",)),
        Scenario("nopat", NHS_NOPAT,
                 "A community mental health plan labelled NOPAT (no disclosure to the "
                 "patient) beside a normal nursing plan", ("P900013",), ("C900013",)),
    )
}

GENERAL_POPULATION_OFFSET: Final = 11
"""The scenario people counted out of ``size`` when the general population is made: the
eleven there were before the later ones (``nopat``) were added, so that every seed's
general population stays exactly as it was and tests that name its people still hold."""

_W = {w.name: w for w in v.WORKERS}


def _identity(title: str, given: tuple[str, ...], family: str, birth: date,
              locality: str) -> tuple[PersonName, str, date, str]:
    gender = "1" if title == "Mr" else "2"
    return PersonName(title, given, family), gender, birth, locality


def _address(number: int, street: str, locality: str, postcode: str) -> Address:
    return Address((f"{number} {street}",), locality, postcode, date(2015, 6, 1))


def _current(worker: Worker, start: date, *, lead: bool) -> Involvement:
    return Involvement(worker, v.COUNCIL_ODS, v.COUNCIL_NAME, start, None, lead)


def _historic(worker: Worker, start: date, end: date) -> Involvement:
    return Involvement(worker, v.COUNCIL_ODS, v.COUNCIL_NAME, start, end, False)


def add_scenarios(b: Builder) -> None:  # noqa: C901 - one flat list of fixed people
    practice = v.PRACTICE_BY_LOCALITY

    def council(person_id: str, nhs: str | None, stored: str | None, status: str,
                ident: tuple[PersonName, str, date, str], address: Address, *,
                restricted: bool = False, death: date | None = None) -> None:
        person = council_person(b, person_id, nhs, ident, address, practice[ident[3]], death)
        b.council.append(replace(person, nhs_number=stored, nhs_number_status=status,
                                 restricted=restricted, ethnicity="A"))

    def community(patient_id: str, nhs: str, ident: tuple[PersonName, str, date, str],
                  address: Address, *, code: str = "01", death: date | None = None,
                  extension: str | None = None) -> None:
        patient = community_patient(b, patient_id, nhs, ident, address, practice[ident[3]],
                                    death, "A", verification_code=code)
        if extension is not None:
            patient = replace(patient, verification_extension=extension)
        b.patients.append(patient)

    def plans(person_id: str, *specs: tuple[str, str, str, str]) -> None:
        b.plans[person_id] = tuple(
            support_plan(b, person_id, plan_type, status, _W[worker], plan_id=plan_id)
            for plan_id, plan_type, status, worker in specs
        )

    cat = {c.code: c for c in (*v.CARE_PLAN_CATEGORIES, v.MENTAL_HEALTH_CATEGORY)}
    nursing, rehab, diabetes, frailty, mh = (cat["773130005"], cat["736055001"],
                                             cat["735985000"], cat["734163000"], cat["718347000"])

    # both --------------------------------------------------------------------------
    ident = _identity("Mrs", ("Joan", "Mary"), "Thurlow", date(1936, 4, 2), "Tilbury")
    addr = _address(12, "Quayside Walk", "Tilbury", "RM18 7BX")
    council("P900001", NHS_BOTH, "999 100 0003", "verified", ident, addr)
    plans("P900001", ("SP-900001", "care-and-support", "active", "Sam Patel"),
          ("SP-900002", "reablement", "ended", "Lou Mercer"))
    b.involvements["P900001"] = (
        _current(_W["Sam Patel"], date(2026, 4, 20), lead=True),
        _current(_W["Chris Dunn"], date(2026, 5, 2), lead=False),
        _historic(_W["Lou Mercer"], date(2025, 11, 3), date(2026, 1, 12)),
    )
    community("C900001", NHS_BOTH, ident, addr)
    team = care_team(b, "C900001", "Tilbury Integrated Care Team", team_id="ct-900001",
                     contained=False)
    b.care_teams["C900001"] = (team,)
    b.care_plans["C900001"] = (
        care_plan(b, "C900001", nursing, "active", care_team_id=team.team_id, contained=False,
                  plan_id="cp-900001"),
        care_plan(b, "C900001", rehab, "completed", contained=True, plan_id="cp-900002"),
        care_plan(b, "C900001", diabetes, "suspended", contained=False, plan_id="cp-900003"),
    )

    # social_only -------------------------------------------------------------------
    ident = _identity("Mr", ("Ronald",), "Ashcombe", date(1932, 11, 19), "Grays")
    council("P900002", NHS_SOCIAL_ONLY, NHS_SOCIAL_ONLY, "verified", ident,
            _address(4, "Heron Way", "Grays", "RM17 5QD"))
    plans("P900002", ("SP-900003", "care-and-support", "active", "Kim Lowe"),
          ("SP-900004", "carer-support", "draft", "Fran Li"))
    b.involvements["P900002"] = (_current(_W["Kim Lowe"], date(2025, 8, 1), lead=True),)

    # community_only ----------------------------------------------------------------
    ident = _identity("Mrs", ("Elsie",), "Marchbank", date(1929, 2, 7), "Corringham")
    community("C900003", NHS_COMMUNITY_ONLY, ident,
              _address(31, "Brook Lane", "Corringham", "SS17 7HN"),
              extension=v.STU3_GPC_VERIFICATION_EXTENSION)
    b.care_teams["C900003"] = (care_team(b, "C900003", "Corringham District Nursing Team",
                                         team_id="ct-900003", contained=True),)
    b.care_plans["C900003"] = (care_plan(b, "C900003", frailty, "active", plan_id="cp-900004",
                                         contained=True),)

    # duplicate ---------------------------------------------------------------------
    ident = _identity("Mr", ("Derek", "John"), "Pellew", date(1944, 7, 23), "Purfleet")
    addr = _address(9, "Beacon Way", "Purfleet", "RM19 1TF")
    council("P900004", NHS_DUPLICATE, "999-100-0216", "verified", ident, addr)
    council("P900005", NHS_DUPLICATE, NHS_DUPLICATE, "unverified", ident,
            _address(9, "Beacon Way", "Purfleet", "RM19 1TF"))
    plans("P900004", ("SP-900005", "care-and-support", "active", "Jo Whitfield"))
    plans("P900005", ("SP-900006", "reablement", "cancelled", "Dan Oyelaran"))
    b.involvements["P900004"] = (_current(_W["Jo Whitfield"], date(2026, 2, 9), lead=True),)
    b.involvements["P900005"] = ()
    community("C900004", NHS_DUPLICATE, ident, addr)
    b.care_teams["C900004"] = ()
    b.care_plans["C900004"] = (care_plan(b, "C900004", nursing, "active", plan_id="cp-900005"),)

    # malformed_nhs -----------------------------------------------------------------
    ident = _identity("Mrs", ("Vera",), "Caddick", date(1938, 1, 30), "Grays")
    council("P900006", None, MALFORMED_STORED_NHS, "unverified", ident,
            _address(77, "Orchard Rise", "Grays", "RM16 2LP"))
    plans("P900006", ("SP-900007", "care-and-support", "active", "Tom Ashby"))
    b.involvements["P900006"] = (_current(_W["Tom Ashby"], date(2026, 3, 3), lead=True),)

    # no_nhs ------------------------------------------------------------------------
    ident = _identity("Mr", ("Stanley",), "Brookwell", date(1941, 9, 12), "Tilbury")
    council("P900007", None, None, "missing", ident,
            _address(3, "Anchor Lane", "Tilbury", "RM18 8DW"))
    plans("P900007", ("SP-900008", "care-and-support", "active", "Alex Morgan"))
    b.involvements["P900007"] = (_current(_W["Alex Morgan"], date(2026, 6, 1), lead=True),)

    # restricted --------------------------------------------------------------------
    ident = _identity("Ms", ("Christine",), "Harwood", date(1958, 5, 5), "Grays")
    addr = _address(15, "Cedar Drive", "Grays", "RM17 6AJ")
    council("P900008", NHS_RESTRICTED, NHS_RESTRICTED, "verified", ident, addr,
            restricted=True)
    plans("P900008", ("SP-900009", "care-and-support", "active", "Nadia Rahman"))
    b.involvements["P900008"] = (_current(_W["Nadia Rahman"], date(2026, 1, 15), lead=True),)
    community("C900008", NHS_RESTRICTED, ident, addr)
    b.care_teams["C900008"] = ()
    b.care_plans["C900008"] = (care_plan(b, "C900008", frailty, "active", plan_id="cp-900006"),)

    # safeguarding ------------------------------------------------------------------
    ident = _identity("Mrs", ("Doreen",), "Farrant", date(1934, 12, 1), "Corringham")
    addr = _address(22, "Lapwing Close", "Corringham", "SS17 8RB")
    council("P900009", NHS_SAFEGUARDING, "999 100 0356", "verified", ident, addr)
    plans("P900009", ("SP-900010", "safeguarding-protection", "active", "Helen Price"),
          ("SP-900011", "care-and-support", "active", "Ravi Mistry"))
    b.involvements["P900009"] = (
        _current(_W["Helen Price"], date(2026, 8, 30), lead=True),
        _current(_W["Ravi Mistry"], date(2025, 10, 1), lead=False),
    )
    community("C900009", NHS_SAFEGUARDING, ident, addr)
    b.care_teams["C900009"] = ()
    b.care_plans["C900009"] = (care_plan(b, "C900009", nursing, "active", plan_id="cp-900007"),)

    # mental_health_r ---------------------------------------------------------------
    ident = _identity("Mr", ("Keith",), "Lambourne", date(1952, 3, 18), "Grays")
    addr = _address(8, "Alder Grove", "Grays", "RM16 4EH")
    council("P900010", NHS_MENTAL_HEALTH_R, NHS_MENTAL_HEALTH_R, "verified", ident, addr)
    plans("P900010", ("SP-900012", "care-and-support", "active", "Kim Lowe"))
    b.involvements["P900010"] = (_current(_W["Kim Lowe"], date(2026, 7, 7), lead=True),)
    community("C900010", NHS_MENTAL_HEALTH_R, ident, addr)
    cmht = care_team(b, "C900010", "Thurrock Community Mental Health Team",
                     team_id="ct-900010", contained=False)
    b.care_teams["C900010"] = (cmht,)
    b.care_plans["C900010"] = (
        care_plan(b, "C900010", mh, "active", security="R", care_team_id=cmht.team_id,
                  contained=False, plan_id="cp-900008"),
        care_plan(b, "C900010", nursing, "active", contained=True,
                  plan_id="cp-900009"),
    )

    # deceased ----------------------------------------------------------------------
    ident = _identity("Mr", ("Albert",), "Gosling", date(1927, 6, 25), "Tilbury")
    addr = _address(40, "Mariners Close", "Tilbury", "RM18 7QA")
    council("P900011", NHS_DECEASED, NHS_DECEASED, "verified", ident, addr, death=DECEASED_ON)
    plans("P900011", ("SP-900013", "care-and-support", "ended", "Chris Dunn"))
    b.involvements["P900011"] = (
        _historic(_W["Chris Dunn"], date(2024, 2, 1), DECEASED_ON),
    )
    community("C900011", NHS_DECEASED, ident, addr, death=DECEASED_ON)
    b.care_teams["C900011"] = ()
    b.care_plans["C900011"] = (
        care_plan(b, "C900011", nursing, "completed", plan_id="cp-900010"),
    )

    # dob_conflict ------------------------------------------------------------------
    ident = _identity("Mrs", ("Sylvia",), "Endacott", date(1941, 3, 14), "Purfleet")
    addr = _address(56, "Harbour Crescent", "Purfleet", "RM19 1PZ")
    council("P900012", NHS_DOB_CONFLICT, NHS_DOB_CONFLICT, "verified", ident, addr)
    plans("P900012", ("SP-900014", "care-and-support", "active", "Jo Whitfield"))
    b.involvements["P900012"] = (_current(_W["Jo Whitfield"], date(2026, 5, 5), lead=True),)
    other = (ident[0], ident[1], date(1941, 4, 13), ident[3])
    community("C900012", NHS_DOB_CONFLICT, other, addr, code="02")
    b.care_teams["C900012"] = ()
    b.care_plans["C900012"] = (care_plan(b, "C900012", rehab, "active", plan_id="cp-900011"),)

    # nopat -------------------------------------------------------------------------
    ident = _identity("Mrs", ("Margaret",), "Ockendon", date(1949, 10, 8), "Purfleet")
    addr = _address(27, "Tank Hill Road", "Purfleet", "RM19 1SX")
    council("P900013", NHS_NOPAT, NHS_NOPAT, "verified", ident, addr)
    plans("P900013", ("SP-900015", "care-and-support", "active", "Jo Whitfield"))
    b.involvements["P900013"] = (_current(_W["Jo Whitfield"], date(2026, 6, 15), lead=True),)
    community("C900013", NHS_NOPAT, ident, addr)
    b.care_teams["C900013"] = ()
    b.care_plans["C900013"] = (
        replace(care_plan(b, "C900013", mh, "active", security="R", contained=False,
                          plan_id="cp-900012"), handling=("NOPAT",)),
        care_plan(b, "C900013", nursing, "active", contained=False, plan_id="cp-900013"),
    )

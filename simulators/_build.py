"""Shared machinery for making the synthetic population, and the council's side of a person."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from adapters import nhs_number
from simulators import _vocab as v
from simulators.model import (
    Address,
    CommunityCarePlan,
    CommunityCareTeam,
    CommunityOrganization,
    CommunityPatient,
    CommunityPractitioner,
    CouncilPerson,
    Frequency,
    GPPractice,
    Involvement,
    Need,
    PersonName,
    PlanOutcome,
    Service,
    SupportPlan,
    Worker,
)

# Data is "as of" this instant, so the population does not depend on the clock.
AS_OF = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
TODAY = AS_OF.date()

T = TypeVar("T")


def weighted(rng: random.Random, pairs: Sequence[tuple[T, int]]) -> T:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def days_before(rng: random.Random, lo: int, hi: int) -> date:
    return TODAY - timedelta(days=rng.randint(lo, hi))


def plan_period(
    rng: random.Random, began: tuple[int, int], ended: bool, lasted: tuple[int, int]
) -> tuple[date, date | None]:
    """A plan's start (``began``: days before today, from/to) and, when it has ``ended``,
    its end (``lasted`` days after the start, from/to), before yesterday at the latest."""
    start = days_before(rng, *began)
    if not ended:
        return start, None
    return start, min(TODAY - timedelta(days=1), start + timedelta(days=rng.randint(*lasted)))


def stamp(rng: random.Random) -> datetime:
    return AS_OF - timedelta(minutes=rng.randint(60, 60 * 24 * 400))


class Builder:
    """Shared counters and catalogues while one population is being made."""

    def __init__(self, seed: int, reserved_nhs: frozenset[str]) -> None:
        self.rng = random.Random(seed)
        self.used_nhs: set[str] = set(reserved_nhs)
        self.council: list[CouncilPerson] = []
        self.plans: dict[str, tuple[SupportPlan, ...]] = {}
        self.involvements: dict[str, tuple[Involvement, ...]] = {}
        self.patients: list[CommunityPatient] = []
        self.care_plans: dict[str, tuple[CommunityCarePlan, ...]] = {}
        self.care_teams: dict[str, tuple[CommunityCareTeam, ...]] = {}
        self.organizations: dict[str, CommunityOrganization] = {
            "org-" + v.COMMUNITY_ODS: CommunityOrganization(
                "org-" + v.COMMUNITY_ODS, v.COMMUNITY_ODS, v.COMMUNITY_NAME
            ),
            **{
                "org-" + p.ods_code: CommunityOrganization("org-" + p.ods_code, p.ods_code, p.name)
                for p in v.PRACTICES
            },
        }
        self.practitioners: dict[str, CommunityPractitioner] = {}
        self._make_practitioners()
        self._issued: Counter[str] = Counter()  # ids handed out so far, by prefix

    # --- catalogues -----------------------------------------------------------------
    def _make_practitioners(self) -> None:
        rng = self.rng
        for n in range(1, 41):
            role = v.PRACTITIONER_ROLES[n % len(v.PRACTITIONER_ROLES)]
            female = rng.random() < 0.6
            given = rng.choice(v.FEMALE_NAMES if female else v.MALE_NAMES)
            prefix = "Dr" if role.code in {"158965000", "80584001"} else None
            pid = f"pr-{n:04d}"
            self.practitioners[pid] = CommunityPractitioner(
                pid, f"5{n:011d}", prefix, given, rng.choice(v.FAMILY_NAMES), role
            )

    def practitioner_for(self, role_codes: set[str] | None = None) -> CommunityPractitioner:
        pool = [
            p
            for p in self.practitioners.values()
            if role_codes is None or p.role.code in role_codes
        ]
        return self.rng.choice(pool)

    def _next(self, prefix: str) -> int:
        self._issued[prefix] += 1
        return self._issued[prefix]

    def next_plan_id(self) -> str:
        return f"SP-{self._next('SP'):06d}"

    def next_service_id(self) -> str:
        return f"SV-{self._next('SV')}"

    def next_care_plan_id(self) -> str:
        return f"cp-{self._next('cp'):06d}"

    def next_care_team_id(self) -> str:
        return f"ct-{self._next('ct'):06d}"

    def new_nhs_number(self) -> str:
        while True:
            candidate = nhs_number.synthetic(self.rng)
            if candidate not in self.used_nhs:
                self.used_nhs.add(candidate)
                return candidate

    # --- people ---------------------------------------------------------------------
    def identity(self) -> tuple[PersonName, str, date, str]:
        """(name, Data Dictionary gender, birth date, locality)."""
        rng = self.rng
        female = rng.random() < 0.58
        given = rng.choice(v.FEMALE_NAMES if female else v.MALE_NAMES)
        middle = rng.choice(v.FEMALE_NAMES if female else v.MALE_NAMES)
        givens = (given, middle) if rng.random() < 0.5 and middle != given else (given,)
        title = rng.choice(("Mrs", "Miss", "Ms")) if female else "Mr"
        preferred = given[:3] if rng.random() < 0.05 else None
        name = PersonName(title, givens, rng.choice(v.FAMILY_NAMES), preferred)
        gender = "2" if female else "1"
        if rng.random() < 0.01:
            gender = rng.choice(("9", "X"))
        if rng.random() < 0.8:
            year = rng.randint(1925, 1960)
        else:
            year = rng.randint(1961, 2004)
        birth = date(year, 1, 1) + timedelta(days=rng.randint(0, 364))
        locality = weighted(
            rng, (("Tilbury", 25), ("Purfleet", 15), ("Grays", 40), ("Corringham", 20))
        )
        return name, gender, birth, locality

    def address(self, locality: str) -> Address:
        rng = self.rng
        street = rng.choice(v.STREETS[locality])
        sector = rng.choice(v.POSTCODE_SECTORS[locality])
        unit = rng.choice(v.POSTCODE_UNITS) + rng.choice(v.POSTCODE_UNITS)
        lines: tuple[str, ...] = (f"{rng.randint(1, 180)} {street}",)
        if rng.random() < 0.15:
            lines = (f"Flat {rng.randint(1, 24)}", f"{rng.choice(('Marlow', 'Ashdown', 'Elm'))} "
                     f"House, {street}")
        return Address(lines, locality, f"{sector}{unit}", days_before(self.rng, 300, 9000))

    def gp_for(self, locality: str) -> GPPractice:
        if self.rng.random() < 0.9:
            return v.PRACTICE_BY_LOCALITY[locality]
        return self.rng.choice(v.PRACTICES)


def _stored_nhs(rng: random.Random, nhs: str) -> str:
    """How the council's system happens to hold a valid number (spaces, dashes, plain)."""
    roll = rng.random()
    if roll < 0.15:
        return f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
    if roll < 0.25:
        return f"{nhs[:3]}-{nhs[3:6]}-{nhs[6:]}"
    return nhs


def council_person(
    b: Builder,
    person_id: str,
    nhs: str | None,
    identity: tuple[PersonName, str, date, str],
    address: Address,
    gp: GPPractice,
    death: date | None,
) -> CouncilPerson:
    rng = b.rng
    name, gender, birth, _locality = identity
    if nhs is None:
        stored, status = None, "missing"
    else:
        stored = _stored_nhs(rng, nhs)
        status = "verified" if rng.random() < 0.88 else "unverified"
    addresses = [address]
    if rng.random() < 0.1:
        old = b.address(rng.choice(v.LOCALITIES))
        start = address.start or TODAY
        addresses.append(
            Address(old.lines, old.town, old.postcode, old.start and min(old.start, start),
                    start - timedelta(days=1))
        )
    return CouncilPerson(
        person_id=person_id,
        nhs_number=stored,
        nhs_number_status=status,
        name=name,
        birth_date=birth,
        death_date=death,
        gender=gender,
        ethnicity=weighted(rng, v.ETHNICITY_WEIGHTS) if rng.random() < 0.93 else None,
        addresses=tuple(addresses),
        phone=f"01375 {rng.randint(100000, 999999)}" if rng.random() < 0.8 else None,
        gp=gp,
        primary_support_reason=rng.choice(v.PSR) if rng.random() < 0.9 else None,
        restricted=rng.random() < 0.01,
        last_updated=stamp(rng),
    )


def support_plan(
    b: Builder,
    person_id: str,
    plan_type: str,
    status: str,
    worker: Worker,
    *,
    plan_id: str | None = None,
) -> SupportPlan:
    rng = b.rng
    start, end = plan_period(rng, (30, 1500), status in {"ended", "cancelled"}, (20, 400))
    services: list[Service] = []
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        kind, text, period = rng.choice(v.SERVICE_KINDS)
        provider, cqc = rng.choice(v.PROVIDERS)
        count = rng.randint(1, 4)
        freq: Frequency | str | None
        if period is None:
            freq = None
        elif rng.random() < 0.25:
            freq = rng.choice(v.FREE_TEXT_FREQUENCIES)
        else:
            freq = Frequency(count, period)
        svc_status = "ended" if end is not None else rng.choice(("active", "active", "planned"))
        services.append(
            Service(b.next_service_id(), kind, text.format(n=count), provider, cqc, freq, start,
                    end, svc_status)
        )
    needs = tuple(Need(*n) for n in rng.sample(v.NEEDS, rng.randint(1, 3)))
    outcomes = tuple(
        PlanOutcome(o, "achieved" if end else rng.choice(("in-progress", "in-progress",
                                                          "not-achieved")))
        for o in rng.sample(v.OUTCOMES, rng.randint(1, 2))
    )
    confidentiality = "restricted" if plan_type == "safeguarding-protection" else "normal"
    return SupportPlan(
        plan_id=plan_id or b.next_plan_id(),
        person_id=person_id,
        plan_type=plan_type,
        status=status,
        title=v.PLAN_TITLES.get(plan_type, plan_type.replace("-", " ").capitalize()),
        start=start,
        end=end,
        next_review=None if end else start + timedelta(days=rng.choice((182, 365))),
        created_by=worker,
        needs=needs,
        outcomes=outcomes,
        services=tuple(services),
        confidentiality=confidentiality,
        last_updated=stamp(rng),
    )


def involvements(b: Builder, locality: str, *, current: int, historic: int,
                 leads: int = 1) -> tuple[Involvement, ...]:
    rng = b.rng
    local = [w for w in v.WORKERS if w.team == v.TEAMS[locality]]
    pool = local + [w for w in v.WORKERS if w not in local]
    chosen = pool[: max(1, len(local))]
    rng.shuffle(chosen)
    extra = rng.sample(pool[len(chosen):], current + historic)
    workers = (chosen + extra)[: current + historic]
    out = []
    for i, worker in enumerate(workers):
        start = days_before(rng, 20, 1200)
        is_current = i < current
        end = None if is_current else min(TODAY - timedelta(days=rng.randint(1, 400)),
                                            start + timedelta(days=rng.randint(30, 300)))
        if end is not None and end <= start:
            start = end - timedelta(days=30)
        out.append(
            Involvement(worker, v.COUNCIL_ODS, v.COUNCIL_NAME, start, end,
                        is_lead=(i < leads) if is_current else rng.random() < 0.5)
        )
    return tuple(out)

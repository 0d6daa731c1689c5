"""The simulated sources' own records, as plain frozen data classes.

The two simulators hold the same people in two vendor shapes: the council's case-management
records (:class:`CouncilPerson`, :class:`SupportPlan`, :class:`Involvement`) and the community
trust's STU3 records (:class:`CommunityPatient`, :class:`CommunityCarePlan`,
:class:`CommunityCareTeam`). Values are kept *as the vendor stores them* (an NHS number may
carry spaces or fail its check digit), so the simulators can serve realistic mess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from adapters import nhs_number


@dataclass(frozen=True, slots=True)
class PersonName:
    title: str
    given: tuple[str, ...]
    family: str
    preferred: str | None = None


@dataclass(frozen=True, slots=True)
class Address:
    lines: tuple[str, ...]
    town: str
    postcode: str
    start: date | None = None
    end: date | None = None
    use: str = "home"


@dataclass(frozen=True, slots=True)
class GPPractice:
    ods_code: str
    name: str
    locality: str


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str | None = None


# --- council (social care) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Worker:
    staff_id: str
    name: str
    role: str
    team: str


@dataclass(frozen=True, slots=True)
class CouncilPerson:
    person_id: str
    nhs_number: str | None  # as stored: may have spaces/dashes or be invalid
    nhs_number_status: str  # verified | unverified | missing
    name: PersonName
    birth_date: date
    death_date: date | None
    gender: str  # NHS Data Dictionary person stated gender: 1, 2, 9, X
    ethnicity: str | None
    addresses: tuple[Address, ...]
    phone: str | None
    gp: GPPractice | None
    primary_support_reason: tuple[str, str] | None  # (code, text)
    restricted: bool
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class Need:
    domain: str
    description: str


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    description: str
    status: str  # in-progress | achieved | not-achieved


@dataclass(frozen=True, slots=True)
class Frequency:
    count: int
    period: str  # day | week | month


@dataclass(frozen=True, slots=True)
class Service:
    service_id: str
    service_type: str
    description: str
    provider_name: str
    cqc_location_id: str | None
    frequency: Frequency | str | None  # structured, or free text as vendors allow
    start: date
    end: date | None
    status: str


@dataclass(frozen=True, slots=True)
class SupportPlan:
    plan_id: str
    person_id: str
    plan_type: str
    status: str
    title: str
    start: date
    end: date | None
    next_review: date | None
    created_by: Worker
    needs: tuple[Need, ...]
    outcomes: tuple[PlanOutcome, ...]
    services: tuple[Service, ...]
    confidentiality: str  # normal | restricted
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class Involvement:
    worker: Worker
    organisation_ods: str
    organisation_name: str
    start: date
    end: date | None
    is_lead: bool


# --- community (health, FHIR STU3) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommunityOrganization:
    org_id: str
    ods_code: str
    name: str


@dataclass(frozen=True, slots=True)
class CommunityPractitioner:
    practitioner_id: str
    sds_user_id: str
    prefix: str | None
    given: str
    family: str
    role: Coding


@dataclass(frozen=True, slots=True)
class CommunityPatient:
    patient_id: str
    nhs_number: str | None
    verification_extension: str  # which of the two STU3 extension URLs this system sends
    verification: Coding | None
    local_ids: tuple[Coding, ...]  # (system, value) pairs: PAS number and the like
    name: PersonName
    gender: str  # FHIR administrative gender
    birth_date: date
    deceased: date | None
    address: Address
    phone: str | None
    ethnicity: Coding | None
    gp: GPPractice | None
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class CommunityActivity:
    description: str
    status: str  # STU3 activity.detail.status
    scheduled: Frequency | str | None
    definition: str | None = None  # reference to an ActivityDefinition


@dataclass(frozen=True, slots=True)
class CommunityCarePlan:
    plan_id: str
    patient_id: str
    status: str  # STU3 codes: draft, active, suspended, completed, cancelled, ...
    title: str
    description: str
    category: Coding
    start: date
    end: date | None
    author_practitioner_id: str
    author_org_id: str
    contained: bool  # author sent as contained resources rather than references
    security: str | None  # v3 Confidentiality code (R, V) or None
    context: str | None  # "EpisodeOfCare/..." reference
    definition: str | None  # "PlanDefinition/..." reference
    care_team_id: str | None
    activities: tuple[CommunityActivity, ...]
    last_updated: datetime
    handling: tuple[str, ...] = ()  # v3-ActCode handling caveats, e.g. ("NOPAT",)


@dataclass(frozen=True, slots=True)
class CareTeamMember:
    practitioner_id: str
    role: Coding
    start: date | None = None


@dataclass(frozen=True, slots=True)
class CommunityCareTeam:
    team_id: str
    patient_id: str
    name: str
    status: str  # proposed | active | suspended | inactive | entered-in-error
    category: Coding
    start: date
    end: date | None
    members: tuple[CareTeamMember, ...]
    managing_org_id: str
    contained: bool
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class Scenario:
    """A fixed person the demo and the tests rely on (same NHS number and ids for every seed)."""

    key: str
    nhs_number: str | None
    description: str
    person_ids: tuple[str, ...] = ()  # council person ids
    patient_ids: tuple[str, ...] = ()  # community patient ids


# --- the whole population -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Population:
    seed: int
    size: int  # number of distinct people (general population plus scenario people)
    practices: tuple[GPPractice, ...]
    council_people: tuple[CouncilPerson, ...]
    support_plans: Mapping[str, tuple[SupportPlan, ...]]  # by person id
    involvements: Mapping[str, tuple[Involvement, ...]]  # by person id
    community_patients: tuple[CommunityPatient, ...]
    care_plans: Mapping[str, tuple[CommunityCarePlan, ...]]  # by patient id
    care_teams: Mapping[str, tuple[CommunityCareTeam, ...]]  # by patient id
    organizations: Mapping[str, CommunityOrganization]  # by resource id
    practitioners: Mapping[str, CommunityPractitioner]  # by resource id
    scenarios: Mapping[str, Scenario]
    _council_by_id: dict[str, CouncilPerson] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _council_by_nhs: dict[str, list[CouncilPerson]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _community_by_id: dict[str, CommunityPatient] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _community_by_nhs: dict[str, list[CommunityPatient]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for person in self.council_people:
            self._council_by_id[person.person_id] = person
            stored = person.nhs_number
            if stored is not None and nhs_number.is_valid(stored):
                key = nhs_number.normalise(stored)
                self._council_by_nhs.setdefault(key, []).append(person)
        for patient in self.community_patients:
            self._community_by_id[patient.patient_id] = patient
            if patient.nhs_number is not None:
                self._community_by_nhs.setdefault(patient.nhs_number, []).append(patient)

    def council_person(self, person_id: str) -> CouncilPerson | None:
        return self._council_by_id.get(person_id)

    def council_people_with(self, nhs: str) -> list[CouncilPerson]:
        """Council people whose stored NHS number, normalised, is ``nhs`` (invalid ones never)."""
        return list(self._council_by_nhs.get(nhs, ()))

    def community_patient(self, patient_id: str) -> CommunityPatient | None:
        return self._community_by_id.get(patient_id)

    def community_patients_with(self, nhs: str) -> list[CommunityPatient]:
        return list(self._community_by_nhs.get(nhs, ()))

    def nhs_numbers(self) -> set[str]:
        """Every valid NHS number held by either source."""
        return set(self._council_by_nhs) | set(self._community_by_nhs)

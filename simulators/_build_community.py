"""The community trust's side of a synthetic person: Patient, CarePlans, CareTeams."""

from __future__ import annotations

import random
from datetime import date

from adapters.nhs_number import NHS_VERIFICATION_DISPLAY
from simulators import _vocab as v
from simulators._build import Builder, days_before, plan_period, stamp, weighted
from simulators.model import (
    Address,
    CareTeamMember,
    Coding,
    CommunityActivity,
    CommunityCarePlan,
    CommunityCareTeam,
    CommunityPatient,
    Frequency,
    GPPractice,
    PersonName,
)


def _verification(rng: random.Random, code: str | None = None) -> tuple[str, Coding]:
    gpc = rng.random() < 0.25
    ext = v.STU3_GPC_VERIFICATION_EXTENSION if gpc else v.STU3_VERIFICATION_EXTENSION
    system = weighted(
        rng,
        ((v.STU3_VERIFICATION_SYSTEM, 70), (v.STU3_VERIFICATION_SYSTEM_NHS, 15),
         (v.STU3_VERIFICATION_SYSTEM_GPC, 15)),
    )
    if code is None:
        code = weighted(rng, (("01", 86), ("02", 9), ("03", 3), ("05", 2)))
    return ext, Coding(system, code, NHS_VERIFICATION_DISPLAY[code])


def _ethnicity_coding(rng: random.Random, letter: str | None) -> Coding | None:
    if letter is None or rng.random() < 0.05:
        return None
    system = v.STU3_ETHNIC_SYSTEM if rng.random() < 0.7 else v.STU3_ETHNIC_SYSTEM_NHS
    subs = [code for code in v.LOCAL_ETHNIC_SUBCODES if code[0] == letter]
    if subs and rng.random() < 0.3:
        code = rng.choice(subs)
        return Coding(system, code, v.LOCAL_ETHNIC_SUBCODES[code])
    return Coding(system, letter, v.ETHNIC_CATEGORY_DISPLAY.get(letter))


def community_patient(
    b: Builder,
    patient_id: str,
    nhs: str | None,
    identity: tuple[PersonName, str, date, str],
    address: Address,
    gp: GPPractice,
    death: date | None,
    ethnicity: str | None,
    *,
    verification_code: str | None = None,
) -> CommunityPatient:
    rng = b.rng
    name, gender, birth, _ = identity
    ext, coding = _verification(rng, verification_code)
    local_ids = [Coding(v.PAS_NUMBER_SYSTEM, f"RWX{rng.randint(1000000, 9999999)}")]
    if rng.random() < 0.2:
        local_ids.append(Coding(v.RIO_NUMBER_SYSTEM, str(rng.randint(100000, 999999))))
    fhir_gender = {"1": "male", "2": "female", "9": "other", "X": "unknown"}[gender]
    return CommunityPatient(
        patient_id=patient_id,
        nhs_number=nhs,
        verification_extension=ext,
        verification=coding if nhs is not None else None,
        local_ids=tuple(local_ids),
        name=name,
        gender=fhir_gender,
        birth_date=birth,
        deceased=death,
        address=address,
        phone=f"01375 {rng.randint(100000, 999999)}" if rng.random() < 0.7 else None,
        ethnicity=_ethnicity_coding(rng, ethnicity),
        gp=gp,
        last_updated=stamp(rng),
    )


def care_plan(
    b: Builder,
    patient_id: str,
    category: Coding,
    status: str,
    *,
    care_team_id: str | None = None,
    security: str | None = None,
    contained: bool | None = None,
    plan_id: str | None = None,
) -> CommunityCarePlan:
    rng = b.rng
    start, end = plan_period(rng, (20, 1000), status in {"completed", "cancelled"}, (14, 300))
    title, description = v.CARE_PLAN_TITLES[category.code]
    mental_health = category.code == v.MENTAL_HEALTH_CATEGORY.code
    practitioner = b.practitioner_for({"80584001", "159141008"} if mental_health else None)
    activities = []
    for _ in range(rng.randint(1, 3)):
        scheduled: Frequency | str | None
        roll = rng.random()
        if roll < 0.5:
            scheduled = Frequency(rng.randint(1, 3), rng.choice(("day", "week")))
        elif roll < 0.8:
            scheduled = rng.choice(("weekly home visit", "review monthly", "as needed"))
        else:
            scheduled = None
        act_status = {"completed": "completed", "cancelled": "cancelled",
                      "suspended": "on-hold", "draft": "not-started"}.get(status, "in-progress")
        activities.append(
            CommunityActivity(
                rng.choice(("Home visit", "Medicines review", "Wound dressing", "Exercise "
                            "programme", "Telephone check-in", "Falls risk assessment")),
                act_status,
                scheduled,
                "ActivityDefinition/ad-home-visit" if rng.random() < 0.3 else None,
            )
        )
    return CommunityCarePlan(
        plan_id=plan_id or b.next_care_plan_id(),
        patient_id=patient_id,
        status=status,
        title=title,
        description=description,
        category=category,
        start=start,
        end=end,
        author_practitioner_id=practitioner.practitioner_id,
        author_org_id="org-" + v.COMMUNITY_ODS,
        contained=rng.random() < 0.3 if contained is None else contained,
        security=security if security is not None else ("R" if mental_health else None),
        context=f"EpisodeOfCare/ep-{rng.randint(100000, 999999)}" if rng.random() < 0.6 else None,
        definition="PlanDefinition/pd-frailty" if rng.random() < 0.2 else None,
        care_team_id=care_team_id,
        activities=tuple(activities),
        last_updated=stamp(rng),
    )


def care_team(b: Builder, patient_id: str, name: str, *, status: str = "active",
              contained: bool | None = None, team_id: str | None = None) -> CommunityCareTeam:
    rng = b.rng
    members = tuple(
        CareTeamMember(p.practitioner_id, p.role, days_before(rng, 10, 600))
        for p in rng.sample(list(b.practitioners.values()), rng.randint(2, 4))
    )
    start = days_before(rng, 30, 900)
    end = days_before(rng, 1, 20) if status == "inactive" else None
    return CommunityCareTeam(
        team_id=team_id or b.next_care_team_id(),
        patient_id=patient_id,
        name=name,
        status=status,
        category=v.CARE_TEAM_CATEGORY,
        start=start,
        end=end,
        members=members,
        managing_org_id="org-" + v.COMMUNITY_ODS,
        contained=rng.random() < 0.25 if contained is None else contained,
        last_updated=stamp(rng),
    )

"""Joint care plans as one more source, ``joint``, beside the source systems.

:class:`JointPlanSource` meets :class:`adapters.base.SourceAdapter`, reading from the
gateway's own :class:`~gateway.joint.store.JointPlanStore` instead of a remote system, so
the record service asks it with the others (concurrently, through the cache, under its
timeout), the decision sees its plans like any others, and the merge passes them through.
It lives in ``gateway/`` because it reads the gateway's database; ``adapters/`` never
imports ``gateway``.

What it returns for a person: each plan's current version, and one ``Provenance`` per kept
version (``target`` ``CarePlan/{id}/_history/{v}``; ``agent`` the organisation that wrote
that version as ``author`` and the plan's author organisation as ``custodian``, both by ODS
code), so the record says who wrote what, version by version.

Each plan has its own custodian, its author organisation, where a source system has one
for all it holds: :mod:`gateway.joint.custody` splits this source's answer by custodian
before the decision, so a person's directive about that organisation applies to the plans
it authored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from adapters import ukcore
from adapters.base import Domain, Outcome, Resource, SourceResult
from gateway.joint.rules import JOINT_SOURCE
from gateway.joint.store import JointPlanStore, PlanVersion, plan_key

JOINT_ORGANISATION: Final = "urn:caregateway:source:joint"
"""The ``organisation`` of this source's unsplit answer: no ODS code, so never a custodian
of anything (each plan's custodian is its author: :mod:`gateway.joint.custody`)."""


def _participant(code: str, ods: str) -> dict[str, object]:
    return {
        "type": {"coding": [{"system": ukcore.PROVENANCE_PARTICIPANT_SYSTEM, "code": code}]},
        "who": {"type": "Organization", "identifier": ukcore.ods_identifier(ods)},
    }


def version_provenance(plan: Resource, kept: PlanVersion, custodian: str) -> Resource:
    """The Provenance of one version of a joint plan."""
    key = plan_key(str(plan["id"])) or "x"
    return {
        "resourceType": "Provenance",
        "id": f"joint.{key}.v{kept.version}",
        "meta": {
            "profile": [ukcore.PROFILE_PROVENANCE],
            "source": ukcore.source_uri(JOINT_SOURCE),
            "tag": list(plan.get("meta", {}).get("tag", ())),
            **(
                {"security": plan["meta"]["security"]}
                if plan.get("meta", {}).get("security")
                else {}
            ),
        },
        "target": [{"reference": f"CarePlan/{plan['id']}/_history/{kept.version}"}],
        "recorded": kept.recorded.astimezone(UTC).isoformat(timespec="milliseconds"),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE" if kept.version == 1 else "UPDATE",
                }
            ]
        },
        "agent": [_participant("author", kept.org), _participant("custodian", custodian)],
    }


class JointPlanSource:
    """The ``joint`` source: a :class:`~adapters.base.SourceAdapter` over the plan store."""

    def __init__(self, store: JointPlanStore) -> None:
        self.store = store

    @property
    def name(self) -> str:
        return JOINT_SOURCE

    @property
    def organisation(self) -> str:
        return JOINT_ORGANISATION

    @property
    def domain(self) -> Domain:
        return "health"  # unused: every joint resource carries its own care-domain tag

    async def fetch(self, nhs_number: str) -> SourceResult:
        """The person's plans and their Provenance; ``not-found`` when they have none.
        A database failure propagates: the record service reports the source as failed."""
        plans, versions = await self.store.for_person(nhs_number)
        now = datetime.now(UTC)
        if not plans:
            return SourceResult(
                JOINT_SOURCE, JOINT_ORGANISATION, "health", Outcome.NOT_FOUND, fetched_at=now
            )
        custodian = {p.resource["id"]: p.author_org for p in plans}
        resources: list[Resource] = [p.resource for p in plans]
        by_id = {p.resource["id"]: p.resource for p in plans}
        for kept in versions:
            plan_id = str(kept.resource["id"])
            if plan_id in by_id:
                resources.append(version_provenance(by_id[plan_id], kept, custodian[plan_id]))
        return SourceResult(
            JOINT_SOURCE,
            JOINT_ORGANISATION,
            "health",
            Outcome.FOUND,
            resources=tuple(resources),
            fetched_at=now,
        )

    async def nhs_number_for(self, person_id: str) -> str | None:
        """``CarePlan/joint.{key}.plan`` finds its person by the plan (``person_id`` is the
        key: a joint plan id carries no person id of its own, never an NHS number)."""
        return await self.store.nhs_number_of(f"joint.{person_id}.plan")

    async def aclose(self) -> None:
        return None

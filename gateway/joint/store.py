"""Where joint care plans live: the gateway's own database, every version kept.

Two tables, written together in one transaction:

- ``joint_care_plan``: one row per plan (its current version), keyed by the plan's id and
  indexed by the person's NHS number; ``resource`` is the CarePlan JSON exactly as served,
  ``meta.versionId`` equal to ``version``. ``author_org`` (the custodian), ``status`` and
  ``has_lead`` are kept as columns so that the joint care summary is counted in SQL.
- ``joint_care_plan_version``: every version of every plan, ``(id, version)``, never
  changed once written, with the organisation that wrote it (``org``): ``_history`` and
  ``vread`` read it, and each version's ``Provenance`` is made from it.

A change is one conditional ``UPDATE ... WHERE id = :id AND version = :n`` whose row count
decides (FHIR ``If-Match``): of two writers expecting the same version, on one process or on
two replicas sharing the database, exactly one wins and the other gets
:class:`PlanVersionConflict` (``412``, naming the current version). The version row of the
winner is inserted in the same transaction, only after the row count says it won, so a
failed write leaves no version behind. The ``UPDATE`` is the transaction's first statement,
so on SQLite it takes the write lock at once and waits for (rather than fails on) a
concurrent writer.

::

    store = JointPlanStore(engine)
    stored = await store.create(stamp, plan_id=new_plan_id(), nhs=nhs, org="F81001",
                                domain="health")         # stamp(version, now) -> resource
    await store.update(stored["id"], stamp2, nhs=nhs, org="LA883", expected_version=1)  # v2
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Boolean, Integer, String, Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UTCDateTime, make_session_factory
from gateway.errors import PlanVersionConflict as PlanVersionConflict  # re-exported
from gateway.joint.rules import lead_count

Clock = Callable[[], datetime]
Stamp = Callable[[int, datetime], dict[str, Any]]
"""Makes the stored resource for (version, time): the caller's plan with the server's fields."""

JOINT_ID_PREFIX = "joint."
JOINT_ID_SUFFIX = ".plan"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def new_plan_id() -> str:
    """``joint.{32 hex}.plan``: the ``{source}.{key}.{local}`` shape of every CarePlan id the
    gateway serves, so ``CarePlan/{id}`` finds its source by the first part."""
    return f"{JOINT_ID_PREFIX}{uuid.uuid4().hex}{JOINT_ID_SUFFIX}"


def plan_key(plan_id: str) -> str | None:
    """The middle part of a joint plan id, or None when ``plan_id`` is not one."""
    parts = plan_id.split(".")
    if len(parts) != 3 or parts[0] != "joint" or parts[2] != "plan" or not parts[1]:
        return None
    return parts[1]


class JointPlanRow(Base):
    """The current version of one joint care plan."""

    __tablename__ = "joint_care_plan"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    status: Mapped[str] = mapped_column(String(32))
    author_org: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(16))
    has_lead: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
    resource: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)


class JointPlanVersionRow(Base):
    """One version of one joint care plan, as it was served, and who wrote it."""

    __tablename__ = "joint_care_plan_version"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    status: Mapped[str] = mapped_column(String(32))
    org: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(Text)
    recorded: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """A plan's current version and the columns the routes decide on."""

    resource: dict[str, Any]
    nhs_number: str
    author_org: str
    domain: str
    version: int


@dataclass(frozen=True, slots=True)
class PlanVersion:
    """One kept version (for ``_history`` and the Provenance of that version)."""

    resource: dict[str, Any]
    version: int
    org: str
    recorded: datetime


@dataclass(frozen=True, slots=True)
class SummaryCounts:
    """Raw counts for the joint care summary (suppression is applied by the caller)."""

    people_with_active_plan: int
    people_active_with_lead: int
    plans_by_author: dict[str, int]
    plans_by_status: dict[str, int]


def _load(text: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(text)
    return value


def _utc(value: datetime) -> datetime:
    """A ``recorded`` read by a Core statement: SQLite gives it back naive (it is UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _has_lead(resource: Mapping[str, Any]) -> bool:
    return lead_count(resource) == 1


class JointPlanStore:
    """Joint care plans by id and by person; every version kept."""

    def __init__(self, engine: AsyncEngine, clock: Clock = _utc_now) -> None:
        self._engine = engine
        self._sessions = make_session_factory(engine)
        self._clock = clock

    async def create(
        self, stamp: Stamp, *, plan_id: str, nhs: str, org: str, domain: str
    ) -> dict[str, Any]:
        """Store version 1 of a new plan; ``stamp(1, now)`` makes the resource to keep."""
        now = self._clock()
        stored = stamp(1, now)
        text = orjson.dumps(stored).decode()
        status = str(stored.get("status", ""))
        async with self._sessions() as session, session.begin():
            session.add(
                JointPlanRow(
                    id=plan_id,
                    nhs_number=nhs,
                    status=status,
                    author_org=org,
                    domain=domain,
                    has_lead=_has_lead(stored),
                    version=1,
                    resource=text,
                    created=now,
                    updated=now,
                )
            )
            await session.flush()  # the plan first: one transaction, ordered inserts
            session.add(
                JointPlanVersionRow(
                    id=plan_id, version=1, nhs_number=nhs, status=status, org=org,
                    resource=text, recorded=now,
                )
            )  # fmt: skip
        return stored

    async def update(
        self, plan_id: str, stamp: Stamp, *, nhs: str, org: str, expected_version: int
    ) -> dict[str, Any]:
        """Write ``expected_version + 1`` if ``expected_version`` is current, in one
        conditional ``UPDATE``; else :class:`PlanVersionConflict` naming the current one."""
        now = self._clock()
        version = expected_version + 1
        stored = stamp(version, now)
        text = orjson.dumps(stored).decode()
        status = str(stored.get("status", ""))
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(JointPlanRow)
                .where(JointPlanRow.id == plan_id, JointPlanRow.version == expected_version)
                .values(
                    status=status,
                    has_lead=_has_lead(stored),
                    version=version,
                    resource=text,
                    updated=now,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                # Same transaction as the UPDATE: both are committed, or neither.
                session.add(
                    JointPlanVersionRow(
                        id=plan_id,
                        version=version,
                        nhs_number=nhs,
                        status=status,
                        org=org,
                        resource=text,
                        recorded=now,
                    )
                )
                await session.flush()
                return stored
            current = await session.scalar(
                select(JointPlanRow.version).where(JointPlanRow.id == plan_id)
            )
        raise PlanVersionConflict(expected_version, int(current or 0))

    async def get(self, plan_id: str) -> StoredPlan | None:
        async with self._sessions() as session:
            row = await session.get(JointPlanRow, plan_id)
        if row is None:
            return None
        return StoredPlan(_load(row.resource), row.nhs_number, row.author_org, row.domain,
                          row.version)  # fmt: skip

    async def nhs_number_of(self, plan_id: str) -> str | None:
        async with self._sessions() as session:
            nhs: str | None = await session.scalar(
                select(JointPlanRow.nhs_number).where(JointPlanRow.id == plan_id)
            )
        return nhs

    async def version(self, plan_id: str, version: int) -> dict[str, Any] | None:
        async with self._sessions() as session:
            text = await session.scalar(
                select(JointPlanVersionRow.resource).where(
                    JointPlanVersionRow.id == plan_id, JointPlanVersionRow.version == version
                )
            )
        return None if text is None else _load(text)

    async def history(self, plan_id: str) -> list[dict[str, Any]]:
        """Every version, newest first; ``[]`` for an unknown id."""
        async with self._sessions() as session:
            texts = await session.scalars(
                select(JointPlanVersionRow.resource)
                .where(JointPlanVersionRow.id == plan_id)
                .order_by(JointPlanVersionRow.version.desc())
            )
            return [_load(t) for t in texts]

    async def for_person(self, nhs: str) -> tuple[list[StoredPlan], list[PlanVersion]]:
        """The person's plans (current versions, oldest first) and every version of them
        (for their Provenance), read in one transaction so the two agree.

        On the read path of every request about the person (a cache miss): Core statements
        on one connection, no ORM objects."""
        plan = JointPlanRow.__table__.c
        kept = JointPlanVersionRow.__table__.c
        async with self._engine.connect() as conn, conn.begin():
            rows = (
                await conn.execute(
                    select(plan.resource, plan.nhs_number, plan.author_org, plan.domain,
                           plan.version)
                    .where(plan.nhs_number == nhs)
                    .order_by(plan.created, plan.id)
                )
            ).all()  # fmt: skip
            if not rows:
                return [], []
            versions = (
                await conn.execute(
                    select(kept.id, kept.version, kept.org, kept.recorded)
                    .where(kept.nhs_number == nhs)
                    .order_by(kept.id, kept.version)
                )
            ).all()
        plans = [StoredPlan(_load(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
        return plans, [
            PlanVersion({"id": pid}, int(v), str(org), _utc(recorded))
            for pid, v, org, recorded in versions
        ]

    async def summary_counts(self) -> SummaryCounts:
        """Counts over every current plan, for the joint care summary."""
        active = JointPlanRow.status == "active"
        async with self._sessions() as session, session.begin():
            people = await session.scalar(
                select(func.count(func.distinct(JointPlanRow.nhs_number))).where(active)
            )
            with_lead = await session.scalar(
                select(func.count(func.distinct(JointPlanRow.nhs_number))).where(
                    active, JointPlanRow.has_lead.is_(True)
                )
            )
            by_author = await session.execute(
                select(JointPlanRow.author_org, func.count()).group_by(JointPlanRow.author_org)
            )
            by_status = await session.execute(
                select(JointPlanRow.status, func.count()).group_by(JointPlanRow.status)
            )
            return SummaryCounts(
                int(people or 0),
                int(with_lead or 0),
                {str(k): int(n) for k, n in by_author},
                {str(k): int(n) for k, n in by_status},
            )

"""IG reviews of audited accesses (table ``audit_review``) and the break-glass queue.

An IG lead (``R0001`` Privacy Officer, ``R5105`` Caldicott Guardian) records whether an
audited access was ``appropriate`` or ``inappropriate``, with a note. :class:`ReviewStore`
keeps one row per review in ``audit_review``; an event may be reviewed more than once (the
newest review stands). The break-glass queue is every break-glass AuditEvent with no review.
Reviews live beside the hash-chained trail, never in it: the trail is append-only, and the
``$review`` request is itself audited like every other ``/fhir`` request.

:func:`parse_review` reads the ``$review`` request's ``Parameters`` body and
:func:`review_parameters` is the answer, so the route only passes them along.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import Index, String, Table, Text, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from gateway.audit.codes import USER_SYSTEM
from gateway.audit.rows import audit_event, loads_event
from gateway.db import Base, UTCDateTime
from gateway.errors import BadRequest

ReviewOutcome = Literal["appropriate", "inappropriate"]
REVIEW_OUTCOMES: Final[frozenset[str]] = frozenset({"appropriate", "inappropriate"})
MAX_NOTE: Final = 4000


class AuditReviewRow(Base):
    """One IG review of one audited access."""

    __tablename__ = "audit_review"
    __table_args__ = (Index("ix_audit_review_event", "event_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    reviewer_sub: Mapped[str] = mapped_column(String(255))
    reviewer_org: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime)


audit_review = cast(Table, AuditReviewRow.__table__)


@dataclass(frozen=True, slots=True)
class Review:
    id: str
    event_id: str
    reviewer_sub: str
    reviewer_org: str | None
    outcome: str
    note: str
    reviewed_at: datetime


class ReviewStore:
    """Reviews in ``audit_review`` on the audit trail's database (the table is made if absent)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            async with self.engine.begin() as conn:
                await conn.run_sync(lambda c: audit_review.create(c, checkfirst=True))
            self._ready = True

    async def add(
        self,
        event_id: str,
        *,
        reviewer_sub: str,
        reviewer_org: str | None,
        outcome: ReviewOutcome,
        note: str,
        at: datetime | None = None,
    ) -> Review:
        await self._ensure()
        review = Review(
            id=str(uuid.uuid4()),
            event_id=event_id,
            reviewer_sub=reviewer_sub,
            reviewer_org=reviewer_org,
            outcome=outcome,
            note=note,
            reviewed_at=at or datetime.now(UTC),
        )
        async with self.engine.begin() as conn:
            await conn.execute(insert(audit_review).values(asdict(review)))
        return review

    async def for_event(self, event_id: str) -> list[Review]:
        """Reviews of one event, oldest first."""
        await self._ensure()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(audit_review)
                    .where(audit_review.c.event_id == event_id)
                    .order_by(audit_review.c.reviewed_at)
                )
            ).mappings()
            return [Review(**dict(r)) for r in rows]

    async def break_glass_queue(self, *, count: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Break-glass AuditEvents with no review yet, oldest first."""
        await self._ensure()
        reviewed = select(audit_review.c.event_id)
        query = (
            select(audit_event.c.resource)
            .where(audit_event.c.break_glass.is_(True), audit_event.c.id.not_in(reviewed))
            .order_by(audit_event.c.recorded, audit_event.c.seq)
            .limit(max(0, count))
            .offset(max(0, offset))
        )
        async with self.engine.connect() as conn:
            stored = (await conn.execute(query)).scalars().all()
        return [loads_event(s) for s in stored]

    async def break_glass_queue_size(self) -> int:
        await self._ensure()
        reviewed = select(audit_review.c.event_id)
        query = (
            select(func.count())
            .select_from(audit_event)
            .where(audit_event.c.break_glass.is_(True), audit_event.c.id.not_in(reviewed))
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


async def reviewed_among(conn: AsyncConnection, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` have at least one review."""
    if not event_ids:
        return set()
    query = select(audit_review.c.event_id).where(audit_review.c.event_id.in_(event_ids))
    return set((await conn.execute(query)).scalars())


async def reviews_of(conn: AsyncConnection, event_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The reviews of ``event_ids`` as JSON-ready dicts, oldest first (for an archive)."""
    query = (
        select(audit_review)
        .where(audit_review.c.event_id.in_(event_ids))
        .order_by(audit_review.c.reviewed_at, audit_review.c.id)
    )
    out: list[dict[str, Any]] = []
    for row in (await conn.execute(query)).mappings():
        review = dict(row)
        review["reviewed_at"] = review["reviewed_at"].isoformat()
        out.append(review)
    return out


def parse_review(body: Any) -> tuple[ReviewOutcome, str]:
    """The outcome and note of a ``$review`` request's body (parsed JSON), or ``400``."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("The request body must be a FHIR Parameters resource.")
    params = body.get("parameter")
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise BadRequest("Parameters.parameter must be a list of parameters.")
    outcomes = [p for p in params if p.get("name") == "outcome"]
    notes = [p for p in params if p.get("name") == "note"]
    if len(outcomes) != 1 or outcomes[0].get("valueCode") not in REVIEW_OUTCOMES:
        raise BadRequest(
            "Give exactly one outcome parameter, valueCode appropriate or inappropriate.",
            expression=["Parameters.parameter.where(name='outcome')"],
        )
    note = notes[0].get("valueString") if len(notes) == 1 else None
    if not isinstance(note, str) or not note.strip() or len(note) > MAX_NOTE:
        raise BadRequest(
            f"Give exactly one note parameter (valueString, 1-{MAX_NOTE} characters).",
            expression=["Parameters.parameter.where(name='note')"],
        )
    outcome: ReviewOutcome = (
        "appropriate" if outcomes[0]["valueCode"] == "appropriate" else ("inappropriate")
    )
    return outcome, note.strip()


def review_parameters(review: Review, reviewer_name: str | None) -> dict[str, Any]:
    """The ``$review`` answer: the stored review as a FHIR ``Parameters`` resource."""
    reviewer: dict[str, Any] = {"identifier": {"system": USER_SYSTEM, "value": review.reviewer_sub}}
    if reviewer_name:
        reviewer["display"] = reviewer_name
    parameters: list[dict[str, Any]] = [
        {"name": "review", "valueId": review.id},
        {"name": "event", "valueReference": {"reference": f"AuditEvent/{review.event_id}"}},
        {"name": "outcome", "valueCode": review.outcome},
        {"name": "note", "valueString": review.note},
        {"name": "reviewer", "valueReference": reviewer},
        {"name": "reviewed-at", "valueInstant": review.reviewed_at.isoformat()},
    ]
    if review.reviewer_org:
        parameters.append({"name": "reviewer-organisation", "valueString": review.reviewer_org})
    return {"resourceType": "Parameters", "parameter": parameters}

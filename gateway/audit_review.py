"""Break-glass review records (table ``audit_review``) and the privacy monitoring rules.

Reviews
    An IG lead (``R0001`` Privacy Officer, ``R5105`` Caldicott Guardian) records whether an
    audited access was ``appropriate`` or ``inappropriate``, with a note. :class:`ReviewStore`
    keeps one row per review in ``audit_review``; an event may be reviewed more than once (the
    newest review stands). The break-glass queue is every break-glass AuditEvent with no review.
    Reviews live beside the hash-chained trail, never in it: the trail is append-only, and the
    ``$review`` request is itself audited like every other ``/fhir`` request.

Monitoring rules
    Pure functions over AuditEvent dicts (as :mod:`gateway.audit.events` builds them), each
    returning :class:`Alert` values that point at the events behind them. :func:`run_rules`
    runs all six:

    ==============================  ========================================================
    ``break-glass``                 every emergency access (``meta.security`` BTG)
    ``no-legitimate-relationship``  a refused attempt (outcome ``4``) with that reason code;
                                    never a source outage (reason ``source-unavailable``)
    ``out-of-hours``                record access in the local (Europe/London) window
                                    ``CAREGW_OUT_OF_HOURS``, e.g. ``19:00-07:00``; per user
    ``volume``                      one user opening more than ``CAREGW_VOLUME_ALERT_PER_HOUR``
                                    distinct people within any 60 minutes
    ``surname-match``               the user's display name ends with the person's surname
    ``deceased``                    a permitted access to a person recorded as deceased
    ==============================  ========================================================

    "Record access" means an event about a person (a patient entity) made for a purpose other
    than ``HOPERAT``: IG work on the audit trail itself does not count towards volume or
    out-of-hours. Nor does the person's own request (``PATRQT``, a patient token), except for
    the deceased rule: a sign-in as a person who has died is worth a look. The surname and
    deceased rules need facts the AuditEvent does not carry; they
    take a mapping NHS number -> :class:`PersonFacts`, which the ``$privacy-alerts`` route
    fills from the sources (and which is empty, so the rules stay silent, when it cannot).

Alert texts never contain NHS numbers or names: they say which rule fired, for which user
(the token ``sub``) and how many events; the events themselves are referenced.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final, Literal, cast
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Index, String, Table, Text, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from gateway.audit import events as ev
from gateway.audit.store import audit_event
from gateway.db import Base, UTCDateTime
from vocabulary import IG_PURPOSE
from vocabulary import PATIENT_PURPOSE as OWN_REQUEST_PURPOSE  # the person themself

ReviewOutcome = Literal["appropriate", "inappropriate"]
REVIEW_OUTCOMES: Final[frozenset[str]] = frozenset({"appropriate", "inappropriate"})
LONDON: Final = ZoneInfo("Europe/London")

NO_RELATIONSHIP: Final = "no-legitimate-relationship"
SOURCE_UNAVAILABLE: Final = "source-unavailable"
RULE_SYSTEM: Final = "urn:caregateway:privacy-rule"
EXT_ALERT_USER: Final = "urn:caregateway:extension:alert-user"

# --- reviews -----------------------------------------------------------------------------


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
            await conn.execute(
                insert(audit_review).values(
                    id=review.id,
                    event_id=review.event_id,
                    reviewer_sub=review.reviewer_sub,
                    reviewer_org=review.reviewer_org,
                    outcome=review.outcome,
                    note=review.note,
                    reviewed_at=review.reviewed_at,
                )
            )
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
        return [_loads(s) for s in stored]

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


def _loads(stored: str | bytes) -> dict[str, Any]:
    value = orjson.loads(stored)
    if not isinstance(value, dict):
        raise ValueError("stored audit event is not a JSON object")
    return value


# --- reading an AuditEvent ---------------------------------------------------------------


def user_agent(event: Mapping[str, Any]) -> Mapping[str, Any]:
    for agent in event.get("agent", ()):
        if agent.get("requestor"):
            return cast(Mapping[str, Any], agent)
    return {}


def user_display(event: Mapping[str, Any]) -> str | None:
    value = user_agent(event).get("who", {}).get("display")
    return str(value) if value else None


def user_role(event: Mapping[str, Any]) -> str | None:
    for concept in user_agent(event).get("role", ()):
        for coding in concept.get("coding", ()):
            if coding.get("code"):
                return str(coding["code"])
    return None


def subtype(event: Mapping[str, Any]) -> str | None:
    for coding in event.get("subtype", ()):
        if coding.get("code"):
            return str(coding["code"])
    return None


def reasons(event: Mapping[str, Any]) -> tuple[str, ...]:
    """Decision reason codes: from the extensions, else from ``outcomeDesc`` (``reasons a, b``)."""
    found = [
        str(ext["valueCoding"]["code"])
        for ext in event.get("extension", ())
        if ext.get("url") == ev.EXT_DECISION_REASON and ext.get("valueCoding", {}).get("code")
    ]
    if found:
        return tuple(found)
    desc = str(event.get("outcomeDesc", ""))
    for part in desc.split(";"):
        part = part.strip()
        if part.startswith("reasons "):
            return tuple(r.strip() for r in part[len("reasons ") :].split(",") if r.strip())
    return ()


def request_id(event: Mapping[str, Any]) -> str | None:
    for entity in event.get("entity", ()):
        if entity.get("type", {}).get("code") == "XrequestId":
            value = entity.get("what", {}).get("identifier", {}).get("value")
            return str(value) if value else None
    return None


def recorded(event: Mapping[str, Any]) -> datetime:
    value = datetime.fromisoformat(str(event["recorded"]).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _dict(event: Mapping[str, Any]) -> dict[str, Any]:
    return dict(event)


def is_record_access(event: Mapping[str, Any], *, own: bool = False) -> bool:
    """An event about a person, for a purpose other than IG work on the trail, and (unless
    ``own``) other than the person's own request (``PATRQT``): a person reading their own
    record at night, or sharing their own surname, is not what these rules look for."""
    purpose = ev.event_purpose(_dict(event))
    excluded = (IG_PURPOSE,) if own else (IG_PURPOSE, OWN_REQUEST_PURPOSE)
    return ev.event_patient(_dict(event)) is not None and purpose not in excluded


# --- alerts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """One monitoring finding: the rule, who (token ``sub``), a PII-free text, the events."""

    rule: str
    user: str | None
    detail: str
    event_ids: tuple[str, ...]
    severity: Literal["high", "moderate", "low"] = "moderate"

    @property
    def id(self) -> str:
        """Stable for the same rule, user and events (so a console can de-duplicate)."""
        key = "|".join((self.rule, self.user or "", *sorted(self.event_ids)))
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """What the surname and deceased rules need to know about a person."""

    surname: str | None = None
    deceased: bool = False


@dataclass(frozen=True, slots=True)
class OutOfHours:
    """A local-time window; it wraps midnight when ``start > end``; ``start == end`` is empty."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> OutOfHours:
        try:
            first, second = text.strip().split("-")
            return cls(time.fromisoformat(first.strip()), time.fromisoformat(second.strip()))
        except ValueError as exc:
            raise ValueError(
                f"out-of-hours window {text!r} is not 'HH:MM-HH:MM' (e.g. 19:00-07:00)"
            ) from exc

    def contains(self, local: time) -> bool:
        local = local.replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class MonitoringConfig:
    out_of_hours: OutOfHours = field(default_factory=lambda: OutOfHours(time(19, 0), time(7, 0)))
    volume_per_hour: int = 30
    tz: ZoneInfo = LONDON

    @classmethod
    def from_settings(cls, out_of_hours: str, volume_per_hour: int) -> MonitoringConfig:
        return cls(out_of_hours=OutOfHours.parse(out_of_hours), volume_per_hour=volume_per_hour)


def _ids(events: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(str(e.get("id")) for e in events)


def _by_user(events: Iterable[Mapping[str, Any]]) -> dict[str | None, list[Mapping[str, Any]]]:
    grouped: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        grouped[ev.event_agent_sub(_dict(event))].append(event)
    return grouped


def rule_break_glass(events: Sequence[Mapping[str, Any]]) -> list[Alert]:
    return [
        Alert(
            rule="break-glass",
            user=ev.event_agent_sub(_dict(e)),
            detail="Emergency access (break-glass) used; it waits for IG review.",
            event_ids=_ids([e]),
            severity="high",
        )
        for e in events
        if ev.event_break_glass(_dict(e))
    ]


def rule_no_legitimate_relationship(events: Sequence[Mapping[str, Any]]) -> list[Alert]:
    alerts: list[Alert] = []
    # A relationship that could not be looked for (a source did not answer) is an outage,
    # not an attempt to open a record without one.
    hits = [
        e
        for e in events
        if str(e.get("outcome")) == "4"
        and NO_RELATIONSHIP in reasons(e)
        and SOURCE_UNAVAILABLE not in reasons(e)
    ]
    for user, mine in _by_user(hits).items():
        alerts.append(
            Alert(
                rule="no-legitimate-relationship",
                user=user,
                detail=(
                    f"{len(mine)} refused attempt(s) to open a record without a legitimate "
                    "relationship."
                ),
                event_ids=_ids(mine),
                severity="high",
            )
        )
    return alerts


def rule_out_of_hours(
    events: Sequence[Mapping[str, Any]], window: OutOfHours, tz: ZoneInfo = LONDON
) -> list[Alert]:
    hits = [
        e
        for e in events
        if is_record_access(e) and window.contains(recorded(e).astimezone(tz).time())
    ]
    return [
        Alert(
            rule="out-of-hours",
            user=user,
            detail=(
                f"{len(mine)} record access(es) between "
                f"{window.start:%H:%M} and {window.end:%H:%M} local time."
            ),
            event_ids=_ids(mine),
            severity="low",
        )
        for user, mine in _by_user(hits).items()
    ]


def rule_volume(events: Sequence[Mapping[str, Any]], threshold: int) -> list[Alert]:
    """A user opening more than ``threshold`` distinct people within any 60 minutes.

    One alert per user: the busiest window found (earliest if several tie).
    """
    alerts: list[Alert] = []
    hour = timedelta(hours=1)
    for user, mine in _by_user(e for e in events if is_record_access(e)).items():
        ordered = sorted(mine, key=recorded)
        times = [recorded(e) for e in ordered]
        people = [ev.event_patient(_dict(e)) for e in ordered]
        in_window: Counter[str | None] = Counter()
        best: tuple[int, int] = (0, 0)
        best_people = 0
        start = 0
        for end, person in enumerate(people):  # a sliding window of at most one hour
            in_window[person] += 1
            while times[end] - times[start] > hour:
                in_window[people[start]] -= 1
                if not in_window[people[start]]:
                    del in_window[people[start]]
                start += 1
            if len(in_window) > best_people:
                best, best_people = (start, end + 1), len(in_window)
        if best_people > threshold:
            alerts.append(
                Alert(
                    rule="volume",
                    user=user,
                    detail=(
                        f"{best_people} distinct people opened within one hour "
                        f"(threshold {threshold})."
                    ),
                    event_ids=_ids(ordered[best[0] : best[1]]),
                    severity="moderate",
                )
            )
    return alerts


def _surname_of_display(display: str) -> str | None:
    words = [w for w in display.replace(",", " ").split() if w]
    return words[-1] if words else None


def rule_surname_match(
    events: Sequence[Mapping[str, Any]], facts: Mapping[str, PersonFacts]
) -> list[Alert]:
    """The user's display name ends with the person's surname (case-insensitive)."""
    hits: list[Mapping[str, Any]] = []
    for e in events:
        patient = ev.event_patient(_dict(e))
        display = user_display(e)
        person = facts.get(patient) if patient else None
        if not (is_record_access(e) and display and person and person.surname):
            continue
        user_surname = _surname_of_display(display)
        if user_surname and user_surname.casefold() == person.surname.strip().casefold():
            hits.append(e)
    return [
        Alert(
            rule="surname-match",
            user=user,
            detail=(
                f"{len(mine)} access(es) to a person who shares the user's surname "
                "(possible family member)."
            ),
            event_ids=_ids(mine),
            severity="moderate",
        )
        for user, mine in _by_user(hits).items()
    ]


def rule_deceased(
    events: Sequence[Mapping[str, Any]], facts: Mapping[str, PersonFacts]
) -> list[Alert]:
    """A permitted access to a person the sources record as deceased."""
    hits = []
    for e in events:
        patient = ev.event_patient(_dict(e))
        person = facts.get(patient) if patient else None
        # the person's own login too: someone signing in as a person who has died
        if (
            person
            and person.deceased
            and is_record_access(e, own=True)
            and str(e.get("outcome")) == "0"
        ):
            hits.append(e)
    return [
        Alert(
            rule="deceased",
            user=user,
            detail=f"{len(mine)} access(es) to the record of a person who has died.",
            event_ids=_ids(mine),
            severity="moderate",
        )
        for user, mine in _by_user(hits).items()
    ]


def run_rules(
    events: Sequence[Mapping[str, Any]],
    config: MonitoringConfig,
    facts: Mapping[str, PersonFacts] | None = None,
) -> list[Alert]:
    """Every rule over ``events``; alerts in rule order, then by user."""
    known = facts or {}
    return [
        *rule_break_glass(events),
        *rule_no_legitimate_relationship(events),
        *rule_out_of_hours(events, config.out_of_hours, config.tz),
        *rule_volume(events, config.volume_per_hour),
        *rule_surname_match(events, known),
        *rule_deceased(events, known),
    ]


def person_facts(resources: Iterable[Mapping[str, Any]]) -> PersonFacts:
    """Surname and deceased flag from the Patient resources the sources returned."""
    surname: str | None = None
    deceased = False
    for resource in resources:
        if resource.get("resourceType") != "Patient":
            continue
        if resource.get("deceasedBoolean") is True or resource.get("deceasedDateTime"):
            deceased = True
        for name in resource.get("name", ()):
            family = name.get("family")
            if surname is None and isinstance(family, str) and family.strip():
                surname = family.strip()
    return PersonFacts(surname=surname, deceased=deceased)


def alert_resource(alert: Alert, identified: datetime) -> dict[str, Any]:
    """The alert as a FHIR R4 ``DetectedIssue`` (rule in ``code``, events in ``implicated``)."""
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": alert.id,
        "status": "preliminary",
        "code": {"coding": [{"system": RULE_SYSTEM, "code": alert.rule}], "text": alert.rule},
        "severity": alert.severity,
        "identifiedDateTime": identified.astimezone(UTC).isoformat(timespec="seconds"),
        "implicated": [{"reference": f"AuditEvent/{eid}"} for eid in alert.event_ids],
        "detail": alert.detail,
    }
    if alert.user:
        issue["extension"] = [
            {
                "url": EXT_ALERT_USER,
                "valueIdentifier": {"system": ev.USER_SYSTEM, "value": alert.user},
            }
        ]
    return issue

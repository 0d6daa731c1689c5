"""The privacy monitoring rules: pure functions over AuditEvent dicts.

Each rule reads events as :mod:`gateway.audit.events` builds them (through
:mod:`gateway.audit.fields`, so reason codes are read as data) and returns :class:`Alert`
values that point at the events behind them. :func:`run_rules` runs all six:

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
deceased rules need facts the AuditEvent does not carry; they take a mapping NHS number ->
:class:`PersonFacts`, which :func:`gather_facts` fills from the sources (and which is empty,
so the rules stay silent, when it cannot).

Alert texts never contain NHS numbers or names: they say which rule fired, for which user
(the token ``sub``) and how many events; the events themselves are referenced.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from gateway.audit.codes import USER_SYSTEM
from gateway.audit.fields import (
    event_agent_sub,
    event_break_glass,
    event_patient,
    event_purpose,
    reasons,
    recorded,
    user_display,
)
from vocabulary import IG_PURPOSE
from vocabulary import PATIENT_PURPOSE as OWN_REQUEST_PURPOSE  # the person themself

LONDON: Final = ZoneInfo("Europe/London")

NO_RELATIONSHIP: Final = "no-legitimate-relationship"
SOURCE_UNAVAILABLE: Final = "source-unavailable"
RULE_SYSTEM: Final = "urn:caregateway:privacy-rule"
EXT_ALERT_USER: Final = "urn:caregateway:extension:alert-user"
FACTS_MAX: Final = 200  # distinct people whose surname / deceased flag is looked up
FACTS_CONCURRENCY: Final = 8


def is_record_access(event: Mapping[str, Any], *, own: bool = False) -> bool:
    """An event about a person, for a purpose other than IG work on the trail, and (unless
    ``own``) other than the person's own request (``PATRQT``): a person reading their own
    record at night, or sharing their own surname, is not what these rules look for."""
    purpose = event_purpose(event)
    excluded = (IG_PURPOSE,) if own else (IG_PURPOSE, OWN_REQUEST_PURPOSE)
    return event_patient(event) is not None and purpose not in excluded


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
        grouped[event_agent_sub(event)].append(event)
    return grouped


def rule_break_glass(events: Sequence[Mapping[str, Any]]) -> list[Alert]:
    return [
        Alert(
            rule="break-glass",
            user=event_agent_sub(e),
            detail="Emergency access (break-glass) used; it waits for IG review.",
            event_ids=_ids([e]),
            severity="high",
        )
        for e in events
        if event_break_glass(e)
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
        people = [event_patient(e) for e in ordered]
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
        patient = event_patient(e)
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
        patient = event_patient(e)
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


async def gather_facts(
    events: Sequence[Mapping[str, Any]],
    resources_of: Callable[[str], Awaitable[Sequence[Mapping[str, Any]]]],
) -> dict[str, PersonFacts]:
    """Surname and deceased flag per person the events are about (best effort, capped).

    ``resources_of`` returns what the sources hold about one NHS number; a person it fails
    for is left out, which only leaves the surname and deceased rules blind to them. IG
    work on the trail (purpose ``HOPERAT``) is not an access to look up.
    """
    people: list[str] = []
    for event in events:
        nhs = event_patient(event)
        if nhs and nhs not in people and event_purpose(event) != IG_PURPOSE:
            people.append(nhs)
    gate = asyncio.Semaphore(FACTS_CONCURRENCY)

    async def one_person(nhs: str) -> tuple[str, PersonFacts | None]:
        async with gate:
            try:
                found = await resources_of(nhs)
            except Exception:  # a source fault only leaves these two rules blind here
                return nhs, None
        return nhs, person_facts(found)

    pairs = await asyncio.gather(*(one_person(n) for n in people[:FACTS_MAX]))
    return {nhs: f for nhs, f in pairs if f is not None}


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
                "valueIdentifier": {"system": USER_SYSTEM, "value": alert.user},
            }
        ]
    return issue

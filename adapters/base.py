"""The one contract every source adapter meets, and the result it returns.

An adapter speaks for one source system (one data controller, named by ODS code). Given an
NHS number it returns that source's records for the person already normalised to UK Core R4
resources (plain dicts, validated when made), or a typed failure. It never raises for a
source problem: failures are values, so the gateway can answer with a partial Bundle.

Resource conventions every adapter follows (the gateway relies on them):

* every resource has ``meta.profile`` (UK Core),
  ``meta.source`` = ``urn:caregateway:source:{name}``,
  a ``meta.tag`` ``urn:caregateway:care-domain|{domain}``, and ``meta.security`` v3
  Confidentiality labels where the source marks the data (``R``/``V``);
* ids are ``{source}.{personId}`` for the source's Patient and
  ``{source}.{personId}.{localId}`` for everything else (``[A-Za-z0-9\\-.]{1,64}``);
* CarePlan/CareTeam/Goal ``subject`` is ``{"reference": "Patient/{nhs}"}`` (the merged Patient's
  id is the NHS number);
* ``Patient`` resources come first; a source that holds duplicates returns each of them and
  says so in ``issues``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

Resource = dict[str, Any]
Domain = Literal["social-care", "health"]
#: The kinds of source system the sources file may name. Each is registered, with the care
#: domain its records belong to and the adapter that speaks it, in :mod:`adapters.kinds`.
SourceKind = Literal["social-care-api", "community-fhir-stu3"]


class Outcome(enum.StrEnum):
    FOUND = "found"
    NOT_FOUND = "not-found"
    UNAVAILABLE = "unavailable"  # refused, 5xx, 429 after retries, connection error, circuit open
    TIMED_OUT = "timed-out"
    BAD_DATA = "bad-data"  # answered, but with content we could not normalise


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One entry of the sources file (``CAREGW_SOURCES_FILE``)."""

    name: str
    kind: SourceKind
    base_url: str
    organisation: str  # ODS code of the data controller
    timeout_s: float = 2.0
    api_key: str | None = None
    bearer_token: str | None = None
    domain: Domain | None = None
    max_connections: int = 20  # requests in flight to this source at once, per gateway process

    @property
    def care_domain(self) -> Domain:
        """The domain the sources file gives, else the one registered for the kind."""
        if self.domain is not None:
            return self.domain
        # Imported here: the registry imports every adapter, and every adapter imports this.
        from adapters.kinds import KINDS

        return KINDS[self.kind].domain


@dataclass(frozen=True, slots=True)
class DataIssue:
    """A data-quality finding worth telling the caller (never contains identifiers).

    ``about`` is the type of resource the finding concerns (``"Patient"``, ``"CarePlan"``,
    ``"CareTeam"``, ``"Goal"``...), or ``None`` when not known. The gateway needs it to drop
    findings about resources the decision withheld from the caller.

    ``labelled``: the finding is about a resource carrying a confidentiality label (``R``,
    ``V``) that the adapter itself had to leave out, so no decision ever sees it and nobody
    can tell whether the caller would have been allowed to; the gateway keeps such findings
    for operators and out of answers.
    """

    code: str  # e.g. "duplicate-person", "invalid-nhs-number", "unknown-code"
    text: str
    about: str | None = None
    labelled: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataIssue:
        """Also reads entries cached before ``about``/``labelled`` existed (None / False)."""
        about = data.get("about")
        return cls(
            data["code"],
            data["text"],
            about if isinstance(about, str) else None,
            data.get("labelled") is True,
        )


@dataclass(frozen=True, slots=True)
class SourceResult:
    """What one source holds for one NHS number, or why we could not find out."""

    source: str
    organisation: str
    domain: Domain
    outcome: Outcome
    resources: tuple[Resource, ...] = ()
    issues: tuple[DataIssue, ...] = ()
    detail: str | None = None  # for failures: short text naming the problem, no identifiers
    fetched_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.FOUND, Outcome.NOT_FOUND)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able form (the cache stores this)."""
        return {
            "source": self.source,
            "organisation": self.organisation,
            "domain": self.domain,
            "outcome": self.outcome.value,
            "resources": list(self.resources),
            "issues": [i.to_json() for i in self.issues],
            "detail": self.detail,
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceResult:
        fetched = data.get("fetched_at")
        return cls(
            source=data["source"],
            organisation=data["organisation"],
            domain=data["domain"],
            outcome=Outcome(data["outcome"]),
            resources=tuple(data.get("resources", ())),
            issues=tuple(DataIssue.from_json(i) for i in data.get("issues", ())),
            detail=data.get("detail"),
            fetched_at=datetime.fromisoformat(fetched) if fetched else None,
        )


@dataclass(frozen=True, slots=True)
class ChangedPerson:
    """One entry of a source's change feed (for cache invalidation)."""

    nhs_number: str
    changed_at: datetime


@runtime_checkable
class ChangeFeed(Protocol):
    """A source that can say who changed since a time (the social care API's ``/changes``).

    The gateway polls every adapter that has one and evicts those people from its cache
    (``gateway/cache/invalidation.py``); a source without a feed relies on the cache TTL.
    """

    @property
    def name(self) -> str: ...

    async def changes(self, since: datetime) -> list[ChangedPerson]:
        """People whose record changed after ``since`` (timezone-aware), each with a valid
        NHS number. Raises :class:`~adapters.resilience.SourceFault` when the source cannot
        answer."""
        ...


@runtime_checkable
class SourceAdapter(Protocol):
    """The interface between the gateway and one source system."""

    @property
    def name(self) -> str: ...

    @property
    def organisation(self) -> str: ...

    @property
    def domain(self) -> Domain: ...

    async def fetch(self, nhs_number: str) -> SourceResult:
        """Everything this source holds for the person, normalised; never raises for faults."""
        ...

    async def nhs_number_for(self, person_id: str) -> str | None:
        """Resolve the source's own person id (from a resource id) to a valid NHS number."""
        ...

    async def aclose(self) -> None: ...

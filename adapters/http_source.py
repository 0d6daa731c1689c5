"""What every HTTP source adapter shares: its client, the fetch template and result values.

An HTTP adapter is a :class:`HTTPSourceAdapter` with a :class:`SourceClient`. The base owns
the steps every source takes the same way, so no adapter repeats them:

* :meth:`HTTPSourceAdapter.fetch` runs the rounds of one fetch
  (:meth:`~HTTPSourceAdapter._collect`: the people, what is held about each, each person
  normalised and validated) under the source's overall deadline (``timeout_s``) and turns
  the deadline and any :class:`~adapters.resilience.SourceFault` into a failed
  :class:`SourceResult`: failures are values, never exceptions;
* :meth:`HTTPSourceAdapter.nhs_number_for` checks the id's shape, reads the person (the
  adapter's :meth:`~HTTPSourceAdapter._read_nhs_number`) under the deadline, and answers
  ``None`` for an unknown person;
* :class:`SourceClient` makes every GET one call of
  :func:`adapters.resilience.get_with_one_retry` (breaker, status mapping, one polite
  ``Retry-After`` retry); each client says only which statuses it retries and how its
  source's error bodies read.

The client itself is a :class:`~adapters.pool.BoundedClient` (one bulkhead per source).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

import httpx

from adapters import nhs_number
from adapters.base import DataIssue, Domain, Outcome, Resource, SourceConfig, SourceResult
from adapters.context import MappingContext, keep_valid
from adapters.pool import BoundedClient
from adapters.resilience import (
    CircuitBreaker,
    SourceFault,
    answer_or_fault,
    deadline_scope,
    get_with_one_retry,
)

__all__ = ["BoundedClient", "HTTPSourceAdapter", "SourceClient"]

T = TypeVar("T")


class SourceClient:
    """Calls one source over a shared ``httpx.AsyncClient``, every GET under the breaker.

    Subclasses give the source's verbs (``people``, ``search``...), :attr:`retry_on` and
    :meth:`_detail`, their reading of the source's error bodies (codes only, never text:
    sources may echo identifiers there).
    """

    #: Statuses retried once when ``Retry-After`` is short and fits the fetch deadline.
    retry_on: ClassVar[frozenset[int]] = frozenset({429})

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        breaker: CircuitBreaker,
        headers: Mapping[str, str],
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/") + "/"
        self._breaker = breaker
        self._headers = dict(headers)

    def _url(self, path: str) -> str:
        """The URL of ``path``, relative to the source's base URL."""
        return self._base + path

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Resource:
        """One GET under the breaker, with at most one ``Retry-After`` retry."""
        return await get_with_one_retry(
            self._http,
            self._url(path),
            params=params,
            headers=self._headers,
            breaker=self._breaker,
            retry_on=self.retry_on,
            parse=self._body,
        )

    def _body(self, response: httpx.Response) -> Resource:
        return answer_or_fault(response, self._detail)

    def _detail(self, response: httpx.Response) -> str:
        return f"HTTP {response.status_code}"


ClientT = TypeVar("ClientT", bound=SourceClient)
ContextT = TypeVar("ContextT", bound=MappingContext)
#: What a source holds about one person besides the person record: two lists of its own
#: records (the social care source's plans and involvements, the community's plans and teams).
Care = tuple[list[Resource], list[Resource]]


class HTTPSourceAdapter(Generic[ClientT, ContextT]):
    """Base for adapters that speak HTTP to one source (one pooled ``httpx.AsyncClient``).

    A subclass gives :meth:`_connect` (its :class:`SourceClient`), :attr:`person_id` and
    :attr:`record_noun`, the rounds' steps (:meth:`_context`, :meth:`_people`,
    :meth:`_care_of`, :meth:`_normalise`) and :meth:`_read_nhs_number` (one person by id).
    Without a breaker passed in, the adapter has its own. A client passed in is the
    caller's to close; one made here is closed by :meth:`aclose`.
    """

    #: The shape of an id :meth:`nhs_number_for` may send to the source.
    person_id: ClassVar[re.Pattern[str]]
    #: What the source calls a person record ("person", "patient"), for findings.
    record_noun: ClassVar[str]

    def __init__(
        self,
        config: SourceConfig,
        client: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._config = config
        self._owns_http = client is None
        self._http = client or BoundedClient(
            max_in_flight=config.max_connections, timeout=httpx.Timeout(config.timeout_s)
        )
        self._client: ClientT = self._connect(self._http, config, breaker or CircuitBreaker())

    def _connect(
        self, http: httpx.AsyncClient, config: SourceConfig, breaker: CircuitBreaker
    ) -> ClientT:
        """The source's :class:`SourceClient` over the shared ``http`` client."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def organisation(self) -> str:
        return self._config.organisation

    @property
    def domain(self) -> Domain:
        return self._config.care_domain

    @property
    def pool_renewals(self) -> int:
        """How often this source's connection pool was replaced (see :class:`BoundedClient`)."""
        return int(getattr(self._http, "renewals", 0))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- the template ---------------------------------------------------------------------

    async def fetch(self, nhs_number: str) -> SourceResult:
        """Everything this source holds for the person, normalised; never raises for faults."""
        fetched_at = datetime.now(UTC)
        try:
            resources, issues = await self._within_deadline(
                lambda: self._collect(nhs_number, fetched_at)
            )
        except TimeoutError:
            detail = f"no answer within {self._config.timeout_s:g}s"
            return self._failed(Outcome.TIMED_OUT, detail, fetched_at)
        except SourceFault as fault:
            return self._failed(fault.outcome, fault.detail, fetched_at)
        outcome = Outcome.FOUND if resources else Outcome.NOT_FOUND
        return self._result(outcome, fetched_at, resources=resources, issues=issues)

    async def nhs_number_for(self, person_id: str) -> str | None:
        """The valid, normalised NHS number of the source's person ``person_id``, or ``None``.

        Raises :class:`~adapters.resilience.SourceFault` when the source cannot answer (an
        unknown person is ``None``, not a fault).
        """
        if not self.person_id.fullmatch(person_id):
            return None
        try:
            return await self._asked(lambda: self._read_nhs_number(person_id))
        except SourceFault as fault:
            if fault.outcome is Outcome.NOT_FOUND:
                return None
            raise

    async def _collect(
        self, nhs: str, fetched_at: datetime
    ) -> tuple[tuple[Resource, ...], tuple[DataIssue, ...]]:
        """The source's normalised resources for the person and the findings on the way;
        raises :class:`~adapters.resilience.SourceFault` for what fails the whole source.

        The rounds: the person records that hold the NHS number (:meth:`_people`; more than
        one is reported, never hidden), then what the source holds about each
        (:meth:`_care_of`), then each person normalised (:meth:`_normalise`). Patients come
        first, Provenances last; a person whose Patient is left out adds nothing.
        """
        ctx = self._context()
        if not nhs_number.is_valid(nhs):
            return (), ()
        nhs = nhs_number.normalise(nhs)
        people = await self._people(nhs, ctx)
        if not people:
            return (), tuple(ctx.issues)
        if len(people) > 1:
            ctx.issue(
                "duplicate-person",
                f"{len(people)} {self.record_noun} records share one NHS number",
                about="Patient",
            )
        found = await self._care_of(people, ctx)
        heads: list[Resource] = []
        body: list[Resource] = []
        provenance: list[Resource] = []
        for person, care in zip(people, found, strict=True):
            made = self._normalise(person, care, nhs, ctx, fetched_at)
            if made is None:
                continue
            patient, rest, prov = made
            if keep_valid(prov, ctx):
                provenance.append(prov)
            heads.append(patient)
            body.extend(rest)
        if not heads:
            raise SourceFault(Outcome.BAD_DATA, "no person record could be normalised")
        return (*heads, *body, *provenance), tuple(ctx.issues)

    # --- what each source does its own way ------------------------------------------------

    def _context(self) -> ContextT:
        """A fresh mapping context for one fetch."""
        raise NotImplementedError

    async def _people(self, nhs: str, ctx: ContextT) -> list[Resource]:
        """The source's person records that really hold ``nhs``, each once."""
        raise NotImplementedError

    async def _care_of(self, people: list[Resource], ctx: ContextT) -> list[Care]:
        """What the source holds about each person (in ``people``'s order), fetched
        concurrently; whatever the mapping needs besides goes on ``ctx``."""
        raise NotImplementedError

    def _normalise(
        self, person: Resource, care: Care, nhs: str, ctx: ContextT, fetched_at: datetime
    ) -> tuple[Resource, list[Resource], Resource] | None:
        """One person's validated Patient, the rest that passed UK Core validation and the
        Provenance over them (validated here), or ``None`` when the Patient failed."""
        raise NotImplementedError

    async def _read_nhs_number(self, person_id: str) -> str | None:
        """Read the source's person ``person_id`` (a ``NOT_FOUND`` fault when unknown) and
        give the valid, normalised NHS number the record holds, if any."""
        raise NotImplementedError

    async def _within_deadline(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` under the source's overall deadline (shared with the client's retry)."""
        async with deadline_scope(self._config.timeout_s):
            return await call()

    async def _asked(self, call: Callable[[], Awaitable[T]]) -> T:
        """:meth:`_within_deadline` for a question outside a fetch (a person by id, the
        change feed): running out of time is a ``TIMED_OUT`` fault."""
        try:
            return await self._within_deadline(call)
        except TimeoutError:
            raise SourceFault(Outcome.TIMED_OUT, "no answer in time") from None

    def _result(
        self,
        outcome: Outcome,
        fetched_at: datetime,
        *,
        resources: tuple[Resource, ...] = (),
        issues: tuple[DataIssue, ...] = (),
        detail: str | None = None,
    ) -> SourceResult:
        return SourceResult(
            source=self.name,
            organisation=self.organisation,
            domain=self.domain,
            outcome=outcome,
            resources=resources,
            issues=issues,
            detail=detail,
            fetched_at=fetched_at,
        )

    def _failed(self, outcome: Outcome, detail: str, fetched_at: datetime) -> SourceResult:
        return self._result(outcome, fetched_at, detail=detail)

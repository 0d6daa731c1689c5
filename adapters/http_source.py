"""What every HTTP source adapter shares: its config, its pooled client, and result values."""

from __future__ import annotations

from datetime import datetime

import httpx

from adapters.base import DataIssue, Domain, Outcome, Resource, SourceConfig, SourceResult


class HTTPSourceAdapter:
    """Base for adapters that speak HTTP to one source (one pooled ``httpx.AsyncClient``).

    A client passed in is the caller's to close; one made here is closed by :meth:`aclose`.
    """

    def __init__(self, config: SourceConfig, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._owns_http = client is None
        self._http = client or httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s))

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def organisation(self) -> str:
        return self._config.organisation

    @property
    def domain(self) -> Domain:
        return self._config.care_domain

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

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

"""HTTP access to the council's social care API (``specs/social-care-api.md``).

Every request carries ``X-Api-Key`` and goes through :func:`adapters.resilience.guarded`
(:class:`adapters.http_source.SourceClient`), so httpx errors and HTTP failures become
:class:`~adapters.resilience.SourceFault` values counted by the circuit breaker. Statuses
are mapped so:

=================  ==========================================================
``200``            the JSON body (must be a JSON object)
``404``            ``NOT_FOUND`` (a healthy answer: the breaker ignores it)
``429``            retried once after ``Retry-After`` when the wait is short and fits
                   the fetch deadline, otherwise ``UNAVAILABLE``
``503``            ``UNAVAILABLE`` (the caller's answer is partial; no retry)
``401`` / ``403``  ``UNAVAILABLE`` ("refused": a configuration problem, never retried)
anything else      ``UNAVAILABLE`` with the status
=================  ==========================================================

Lists are ``{"items": [...], "next": cursor}``; :meth:`SocialCareClient.list` follows
``next`` (as ``cursor=``) up to :data:`MAX_PAGES` pages. Failure details carry statuses and
error codes only, never bodies (the source may echo identifiers).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

import httpx

from adapters.base import Outcome, Resource
from adapters.http_source import SourceClient
from adapters.resilience import CircuitBreaker, SourceFault

MAX_PAGES = 100
RETRY_ON = frozenset({429})  # a 503 is not retried: the caller's answer is partial


class SocialCareClient(SourceClient):
    """Calls one social care source over a shared ``httpx.AsyncClient``."""

    retry_on = RETRY_ON

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        breaker: CircuitBreaker,
        api_key: str | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-Api-Key"] = api_key
        super().__init__(http, base_url, breaker, headers)

    async def people(self, nhs_number: str) -> list[Resource]:
        """``GET /people?nhsNumber=`` (every page): 0, 1 or more (duplicate) people."""
        return await self.list("people", {"nhsNumber": nhs_number})

    async def person(self, person_id: str) -> Resource:
        """``GET /people/{personId}``; an unknown person raises a ``NOT_FOUND`` fault."""
        return await self.get(f"people/{_segment(person_id)}")

    async def support_plans(self, person_id: str) -> list[Resource]:
        return await self.list(f"people/{_segment(person_id)}/support-plans")

    async def involvements(self, person_id: str) -> list[Resource]:
        return await self.list(f"people/{_segment(person_id)}/involvements")

    async def changes(self, since: datetime) -> list[Resource]:
        """``GET /changes?since=`` (every page)."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        return await self.list("changes", {"since": since.isoformat()})

    async def list(self, path: str, params: Mapping[str, str] | None = None) -> list[Resource]:
        """Every item of a paged list, following ``next`` cursors."""
        items: list[Resource] = []
        query: dict[str, str] = dict(params or {})
        for _ in range(MAX_PAGES):
            page = await self.get(path, query)
            found = page.get("items")
            if not isinstance(found, list):
                raise SourceFault(Outcome.BAD_DATA, f"{_name(path)} list has no items")
            items.extend(i for i in found if isinstance(i, dict))
            cursor = page.get("next")
            if cursor is None or cursor == "":
                return items
            query = {**dict(params or {}), "cursor": str(cursor)}
        raise SourceFault(Outcome.BAD_DATA, f"{_name(path)} list has too many pages")

    def _detail(self, response: httpx.Response) -> str:
        if response.status_code == 429:
            return "rate limited by source (HTTP 429)"
        return f"HTTP {response.status_code}{_error_code(response)}"


def _segment(value: str) -> str:
    return quote(value, safe="")


def _name(path: str) -> str:
    """The last word of a list path (never a person id), for failure details."""
    return path.rsplit("/", 1)[-1]


def _error_code(response: httpx.Response) -> str:
    """`` (code)`` from a ``{"error": code}`` body when it is a plain word, else nothing."""
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("error") if isinstance(body, dict) else None
    if isinstance(code, str) and code.replace("_", "").isalpha() and len(code) <= 40:
        return f" ({code})"
    return ""

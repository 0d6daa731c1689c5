"""HTTP access to the community source's STU3 API.

Every request carries the bearer token and goes through :func:`adapters.resilience.guarded`
(:class:`adapters.http_source.SourceClient`), so httpx errors and HTTP failures become
:class:`~adapters.resilience.SourceFault` values counted by the circuit breaker. Statuses
are mapped so:

======================  =====================================================
``200``                 the JSON body (must be a JSON object)
``404``                 ``NOT_FOUND`` (a healthy answer; the breaker ignores it)
``429`` / ``503``       retried once after ``Retry-After`` if it is short and fits the deadline,
                        otherwise ``UNAVAILABLE``
``401`` / ``403``       ``UNAVAILABLE`` ("refused")
anything else           ``UNAVAILABLE``, with the STU3 OperationOutcome issue code
======================  =====================================================

Failure details carry the status and OperationOutcome codes, never diagnostics text (the
source may echo identifiers there).

A search's pages follow one another (each ``next`` link comes with the page before it), so
every page a source splits a patient's list into is one more round trip in the chain of
dependent requests; the adapter asks for :data:`PAGE_COUNT` entries a page (FHIR's
``_count``), one round trip for a whole list. A server may answer with fewer: ``next``
links are always followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import httpx

from adapters.base import Outcome, Resource
from adapters.http_source import SourceClient
from adapters.resilience import CircuitBreaker, SourceFault

FHIR_JSON = "application/fhir+json"
MAX_PAGES = 200
#: Entries asked for per search page (``_count``): the patient's whole list in one answer,
#: within what FHIR servers commonly allow per page.
PAGE_COUNT = "100"
TRANSIENT = frozenset({429, 503})


class CommunityClient(SourceClient):
    """Searches and reads against one community source over a shared ``httpx.AsyncClient``."""

    retry_on = TRANSIENT

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        breaker: CircuitBreaker,
        bearer_token: str | None = None,
    ) -> None:
        headers = {"Accept": FHIR_JSON}
        if bearer_token:
            headers["Authorization"] = f"Bearer {bearer_token}"
        super().__init__(http, base_url, breaker, headers)
        self._origin = _origin(self._base)

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        """``GET /{type}/{id}``; a 404 raises a ``NOT_FOUND`` fault."""
        return await self.get(f"{resource_type}/{resource_id}")

    async def search(
        self, resource_type: str, params: Mapping[str, str]
    ) -> list[tuple[Resource, str]]:
        """Every entry of a searchset, following ``link[relation=next]``: (resource, mode)."""
        found: list[tuple[Resource, str]] = []
        url: str | None = resource_type
        query: Mapping[str, str] | None = params
        for _ in range(MAX_PAGES):
            if url is None:
                return found
            bundle = await self.get(url, query)
            if bundle.get("resourceType") != "Bundle":
                raise SourceFault(Outcome.BAD_DATA, f"{resource_type} search gave no Bundle")
            for entry in bundle.get("entry") or ():
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict):
                    mode = (entry.get("search") or {}).get("mode") or "match"
                    found.append((resource, str(mode)))
            url, query = self._next_link(bundle), None
        raise SourceFault(Outcome.BAD_DATA, f"{resource_type} search has too many pages")

    def _next_link(self, bundle: Resource) -> str | None:
        for link in bundle.get("link") or ():
            if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
                url = urljoin(self._base, str(link["url"]))
                if _origin(url) != self._origin:
                    # Never send the source's bearer token anywhere else.
                    raise SourceFault(Outcome.BAD_DATA, "next link points outside the source")
                return url
        return None

    def _url(self, path: str) -> str:
        """``path`` relative to the base URL, or a ``next`` link already made absolute."""
        return urljoin(self._base, path)

    def _detail(self, response: httpx.Response) -> str:
        codes = _outcome_codes(response)
        suffix = f" ({', '.join(codes)})" if codes else ""
        return f"HTTP {response.status_code}{suffix}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _outcome_codes(response: httpx.Response) -> list[str]:
    """The issue codes of a STU3 OperationOutcome body (codes only: no diagnostics)."""
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return []
    codes = [
        str(issue.get("code"))
        for issue in body.get("issue") or ()
        if isinstance(issue, dict) and isinstance(issue.get("code"), str)
    ]
    return [c for c in codes if c.replace("-", "").isalpha()][:3]

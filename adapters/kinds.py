"""The one registry of source kinds: what a sources file may name as ``kind``, the care
domain a kind's records belong to unless the entry says otherwise, and the adapter that
speaks it.

A new kind of source is one more :class:`SourceKindInfo` here (and its name in
:data:`adapters.base.SourceKind`, the type a config's ``kind`` has); the sources file's
check (``gateway/settings.py``), the gateway's wiring and ``SourceConfig.care_domain`` all
read this table. ``tests/adapters/test_kinds.py`` checks the table and the type agree.

>>> make_adapter(SourceConfig("lascare", "social-care-api", "http://127.0.0.1:8081/api/v1",
...     "LA883", api_key="..."))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import httpx

from adapters.base import Domain, SourceAdapter, SourceConfig, SourceKind
from adapters.community import CommunityAdapter
from adapters.resilience import CircuitBreaker
from adapters.socialcare import SocialCareAdapter

__all__ = ["KINDS", "SourceKindInfo", "make_adapter"]


class AdapterClass(Protocol):
    """How every adapter is made: its source's config, optionally the caller's HTTP client
    and the source's circuit breaker (shared with readiness checks)."""

    def __call__(
        self,
        config: SourceConfig,
        client: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> SourceAdapter: ...


@dataclass(frozen=True, slots=True)
class SourceKindInfo:
    name: SourceKind
    domain: Domain  # the care domain of its records unless the sources file gives one
    adapter: AdapterClass
    spec: str  # the interface it speaks (``specs/`` in the shared design documents)


KINDS: Final[Mapping[str, SourceKindInfo]] = {
    kind.name: kind
    for kind in (
        SourceKindInfo(
            "social-care-api", "social-care", SocialCareAdapter, "specs/social-care-api.md"
        ),
        SourceKindInfo(
            "community-fhir-stu3", "health", CommunityAdapter, "specs/community-fhir-stu3.md"
        ),
    )
}


def make_adapter(config: SourceConfig, breaker: CircuitBreaker | None = None) -> SourceAdapter:
    """The adapter for ``config``'s kind (each makes and owns its pooled HTTP client)."""
    return KINDS[config.kind].adapter(config, breaker=breaker)

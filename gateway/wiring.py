"""Build a running gateway's state from configuration (used by ``serve``, ``demo`` and tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from adapters.socialcare.adapter import SocialCareAdapter

from adapters.base import SourceAdapter, SourceConfig
from adapters.community.adapter import CommunityAdapter
from gateway.access import Decider, RecordAccess, permit_all
from gateway.auth import TokenVerifier
from gateway.cache import RecordCache
from gateway.record import RecordService
from gateway.state import GatewayState


def make_adapter(config: SourceConfig) -> SourceAdapter:
    if config.kind == "social-care-api":
        return SocialCareAdapter(config)
    return CommunityAdapter(config)


async def build_state(
    *,
    base_url: str,
    sources: Sequence[SourceConfig],
    verifier: TokenVerifier,
    cache: RecordCache | None = None,
    decider: Decider = permit_all,
) -> tuple[GatewayState, Callable[[], Awaitable[None]]]:
    adapters = [make_adapter(c) for c in sources]
    records = RecordService(adapters, {c.name: c.timeout_s for c in sources}, cache)
    state = GatewayState(
        base_url=base_url.rstrip("/"),
        verifier=verifier,
        access=RecordAccess(records, decider),
    )

    async def close() -> None:
        await records.aclose()
        if cache is not None:
            await cache.aclose()

    return state, close

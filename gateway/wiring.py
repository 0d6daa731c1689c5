"""Build a running gateway's state from configuration (used by ``serve``, ``demo`` and tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from adapters.base import SourceAdapter, SourceConfig
from adapters.community.adapter import CommunityAdapter
from adapters.socialcare.adapter import SocialCareAdapter
from consent import load_policy
from gateway.access import Decider, RecordAccess
from gateway.auth import TokenVerifier
from gateway.cache import RecordCache
from gateway.consent_store import BreakGlassStore, ConsentStore
from gateway.db import create_schema, make_engine
from gateway.decision import PolicyDecider
from gateway.record import RecordService
from gateway.state import GatewayState


def make_adapter(config: SourceConfig) -> SourceAdapter:
    adapter: SourceAdapter
    if config.kind == "social-care-api":
        adapter = SocialCareAdapter(config)
    else:
        adapter = CommunityAdapter(config)
    return adapter


async def build_state(
    *,
    base_url: str,
    sources: Sequence[SourceConfig],
    verifier: TokenVerifier,
    database_url: str,
    policy_file: Path | None = None,
    cache: RecordCache | None = None,
    decider: Decider | None = None,
) -> tuple[GatewayState, Callable[[], Awaitable[None]]]:
    """Everything a gateway process shares between requests, and the function that closes it.

    The database schema is brought up to date here, so a fresh database needs no extra step.
    ``decider`` replaces the consent policy (tests of the read path alone use ``permit_all``).
    """
    policy = load_policy(policy_file)
    engine = make_engine(database_url)
    await create_schema(engine)
    consents = ConsentStore(engine)
    adapters = [make_adapter(c) for c in sources]
    records = RecordService(adapters, {c.name: c.timeout_s for c in sources}, cache)
    state = GatewayState(
        base_url=base_url.rstrip("/"),
        verifier=verifier,
        access=RecordAccess(
            records, decider or PolicyDecider(policy, consents, BreakGlassStore(engine))
        ),
        policy=policy,
        consents=consents,
    )

    async def close() -> None:
        await records.aclose()
        if cache is not None:
            await cache.aclose()
        await engine.dispose()

    return state, close

"""Build a running gateway's state from configuration (used by ``serve``, ``demo`` and tests).

With a cache, ``build_state`` also starts the cache's runtime, and ``close`` stops it:

* a :class:`~gateway.cache.ChangePoller` for every source whose adapter has a change feed
  (``changes(since)``: the social care API's ``GET /changes``), evicting changed people every
  ``change_poll_interval_s`` (``CAREGW_CHANGE_POLL_INTERVAL_S``). ``0`` turns polling off:
  no poller is built, and cached records change only when their TTL ends. ``None`` builds
  the pollers without running them, so tests drive ``poll_once`` themselves. The first poll
  looks back one cache TTL, so a replica that was down misses no change to a record it
  might still hold;
* an :class:`~gateway.cache.EvictionListener` when an in-process layer sits in front of
  Redis, so evictions made by other replicas reach this one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

import structlog

from adapters.base import ChangeFeed, SourceAdapter, SourceConfig
from adapters.kinds import make_adapter as make_adapter  # the one registry of source kinds
from adapters.resilience import CircuitBreaker
from consent import load_policy
from gateway import schema
from gateway.access import Decider, RecordAccess
from gateway.audit import AuditStore, ensure_current
from gateway.auth import TokenVerifier
from gateway.cache import (
    ChangePoller,
    EvictionListener,
    RecordCache,
    RedisBackend,
    TieredBackend,
)
from gateway.consent_store import BreakGlassStore, ConsentStore
from gateway.db import make_engine
from gateway.decision import PolicyDecider
from gateway.hot_reads import HotReads
from gateway.joint.source import JointPlanSource
from gateway.joint.store import JointPlanStore
from gateway.record import RecordService
from gateway.smart import SmartConfig, build_smart, trust_own_issuer
from gateway.state import GatewayState

log = structlog.get_logger(__name__)

JOINT_TIMEOUT_S = 2.0
"""Seconds the record service waits for the joint plan store (a local database read)."""

DEFAULT_CHANGE_POLL_INTERVAL_S = 10.0
"""Seconds between change-feed polls (``CAREGW_CHANGE_POLL_INTERVAL_S``'s default)."""


def change_pollers(
    adapters: Sequence[SourceAdapter],
    cache: RecordCache,
    interval_s: float = DEFAULT_CHANGE_POLL_INTERVAL_S,
) -> tuple[ChangePoller, ...]:
    """A poller for every adapter with a change feed (:class:`adapters.base.ChangeFeed`)."""
    pollers: list[ChangePoller] = []
    for adapter in adapters:
        if isinstance(adapter, ChangeFeed):
            pollers.append(
                ChangePoller(
                    adapter.changes,
                    cache,
                    interval_s,
                    lookback=timedelta(seconds=cache.ttl_s),
                    name=adapter.name,
                )
            )
    return tuple(pollers)


def eviction_listener(cache: RecordCache) -> EvictionListener | None:
    """A listener when the cache has an in-process layer in front of Redis, else None."""
    backend = cache.backend
    if isinstance(backend, TieredBackend) and isinstance(backend.remote, RedisBackend):
        return EvictionListener(backend.remote, cache)
    return None


async def build_state(
    *,
    base_url: str,
    sources: Sequence[SourceConfig],
    verifier: TokenVerifier,
    database_url: str,
    policy_file: Path | None = None,
    cache: RecordCache | None = None,
    decider: Decider | None = None,
    change_poll_interval_s: float | None = DEFAULT_CHANGE_POLL_INTERVAL_S,
    auto_upgrade: bool = True,
    smart: SmartConfig | None = None,
) -> tuple[GatewayState, Callable[[], Awaitable[None]]]:
    """Everything a gateway process shares between requests, and the function that closes it.

    The database schema is brought up to date here (migrations, :mod:`gateway.schema`), so a
    fresh database needs no extra step; with ``auto_upgrade=False`` it is only checked, and a
    schema that is not at head raises :class:`gateway.schema.SchemaOutOfDate`.
    ``decider`` replaces the consent policy (tests of the read path alone use ``permit_all``).
    ``change_poll_interval_s``: seconds between change-feed polls; ``0`` polls nothing,
    ``None`` builds the pollers without running them (see the module docstring).
    ``smart``: run the SMART authorization server (:mod:`gateway.smart`) on this state.
    """
    if change_poll_interval_s is not None and not change_poll_interval_s >= 0:
        raise ValueError("change_poll_interval_s must be 0 (off) or a positive number")
    policy = load_policy(policy_file)
    engine = make_engine(database_url)
    try:
        await schema.prepare(engine, auto_upgrade=auto_upgrade)
    except BaseException:
        await engine.dispose()
        raise
    await ensure_current(engine)  # PostgreSQL: this month's and next month's audit partitions
    consents = ConsentStore(engine)
    hot = HotReads(engine)
    audit = AuditStore(engine)
    await audit.start()
    breakers = {c.name: CircuitBreaker() for c in sources}
    adapters: list[SourceAdapter] = [make_adapter(c, breakers[c.name]) for c in sources]
    # Joint care plans: the gateway's own store, served as one more source (``joint``).
    joint = JointPlanStore(engine)
    timeouts = {c.name: c.timeout_s for c in sources}
    joint_source = JointPlanSource(joint)
    timeouts[joint_source.name] = JOINT_TIMEOUT_S
    records = RecordService([*adapters, joint_source], timeouts, cache)
    pollers: tuple[ChangePoller, ...] = ()
    if cache is not None and change_poll_interval_s == 0:
        log.info("change_feed_polling_off")  # cached records then last their full TTL
    elif cache is not None:
        interval = change_poll_interval_s or DEFAULT_CHANGE_POLL_INTERVAL_S
        pollers = change_pollers(adapters, cache, interval)
    state = GatewayState(
        base_url=base_url.rstrip("/"),
        verifier=verifier,
        access=RecordAccess(
            records,
            decider
            or PolicyDecider(
                policy, consents, BreakGlassStore(engine), inputs=hot.decision_inputs
            ),
        ),
        policy=policy,
        consents=consents,
        audit=audit,
        cache=cache,
        change_pollers=pollers,
        breakers=breakers,
        joint=joint,
    )
    if smart is not None:
        state.smart = build_smart(smart, engine, policy)
        trust_own_issuer(verifier, state.smart, revoked=hot.is_revoked)

    tasks: list[asyncio.Task[None]] = []
    if cache is not None:
        if change_poll_interval_s is not None:
            for poller in pollers:
                tasks.append(asyncio.create_task(poller.run(), name=f"changes:{poller.name}"))
        listener = eviction_listener(cache)
        if listener is not None:
            tasks.append(asyncio.create_task(listener.run(), name="cache-evictions"))

    async def close() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await audit.close(timeout_s=5.0)
        await records.aclose()
        if cache is not None:
            await cache.aclose()
        hot.close()
        await engine.dispose()

    return state, close

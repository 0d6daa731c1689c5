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
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import structlog

from adapters.base import ChangeFeed, SourceAdapter, SourceConfig
from adapters.kinds import make_adapter as make_adapter  # the one registry of source kinds
from adapters.resilience import CircuitBreaker
from consent import load_policy
from gateway import schema
from gateway.audit import AuditStore, MonitoringConfig, ReviewStore, ensure_current
from gateway.auth import TokenVerifier
from gateway.cache import (
    ChangePoller,
    EvictionListener,
    RecordCache,
    RedisBackend,
    TieredBackend,
)
from gateway.db import make_engine
from gateway.joint.source import JointPlanSource
from gateway.joint.store import JointPlanStore
from gateway.policy.decision import PolicyDecider
from gateway.policy.hot_reads import HotReads
from gateway.policy.store import BreakGlassStore, ConsentStore
from gateway.records.access import Decider, RecordAccess
from gateway.records.service import RecordService
from gateway.settings import ConfigurationError, Settings, load_sources
from gateway.smart import SmartConfig, build_smart, trust_own_issuer
from gateway.state import Closer, GatewayState

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


@dataclass(frozen=True, slots=True)
class Overrides:
    """What a caller gives :func:`build_state` instead of reading it from the settings.

    ``serve`` passes what it has already built to check the configuration before it starts
    (the verifier, sources, cache, SMART server); ``demo``, benchmarks and tests also pass
    their own base URL and database. ``None`` means "from the settings", except for
    ``cache``, ``decider`` and ``smart``, where it means none (the read path alone reads
    through no cache, under the consent policy, without a SMART server) and
    ``change_poll_interval_s``, where ``None`` builds the pollers without running them.
    """

    base_url: str | None = None
    sources: Sequence[SourceConfig] | None = None
    verifier: TokenVerifier | None = None
    database_url: str | None = None
    policy_file: Path | None = None
    cache: RecordCache | None = None
    decider: Decider | None = None
    change_poll_interval_s: float | None | Literal["settings"] = "settings"
    auto_upgrade: bool | None = None
    smart: SmartConfig | None = None
    monitoring: MonitoringConfig | None = None


def defaults() -> Settings:
    """The settings' defaults, with the environment and ``.env`` left unread: for benchmarks
    and tests, which give what they need in :class:`Overrides` and nothing else."""
    return Settings.model_construct()


def verifier_from_settings(settings: Settings) -> TokenVerifier:
    """The token verifier ``CAREGW_AUTH_*`` describe; ``ConfigurationError`` naming the
    variable when they do not make one."""
    if not settings.auth_issuer:
        raise ConfigurationError("CAREGW_AUTH_ISSUER is required")
    jwks = None
    if settings.auth_jwks_file:
        try:
            jwks = json.loads(settings.auth_jwks_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"CAREGW_AUTH_JWKS_FILE: cannot read JWKS: {exc}") from exc
    try:
        return TokenVerifier(
            issuer=settings.auth_issuer,
            audience=settings.audience,
            jwks=jwks,
            jwks_url=settings.auth_jwks_url,
        )
    except ValueError as exc:
        variable = "CAREGW_AUTH_JWKS_FILE" if jwks is not None else "CAREGW_AUTH_JWKS_URL"
        raise ConfigurationError(f"{variable}: {exc}") from exc


def monitoring_from_settings(settings: Settings) -> MonitoringConfig:
    """The privacy-alert rules of ``CAREGW_OUT_OF_HOURS`` and ``CAREGW_VOLUME_ALERT_PER_HOUR``."""
    try:
        return MonitoringConfig.from_settings(settings.out_of_hours, settings.volume_alert_per_hour)
    except ValueError as exc:
        raise ConfigurationError(f"Monitoring settings are not usable: {exc}") from exc


async def build_state(
    settings: Settings, overrides: Overrides | None = None
) -> tuple[GatewayState, Closer]:
    """Everything a gateway process shares between requests, and the function that closes it.

    The one composition root: ``serve``, ``demo``, the benchmarks and every test harness
    build their gateway here, from the settings and what :class:`Overrides` replaces.
    The database schema is brought up to date here (migrations, :mod:`gateway.schema`), so a
    fresh database needs no extra step; with ``auto_upgrade`` false it is only checked, and a
    schema that is not at head raises :class:`gateway.schema.SchemaOutOfDate`.
    ``decider`` replaces the consent policy (tests of the read path alone use ``permit_all``).
    ``change_poll_interval_s``: seconds between change-feed polls; ``0`` polls nothing,
    ``None`` builds the pollers without running them (see the module docstring).
    ``smart``: run the SMART authorization server (:mod:`gateway.smart`) on this state.
    """
    o = overrides or Overrides()
    change_poll_interval_s = (
        settings.change_poll_interval_s
        if o.change_poll_interval_s == "settings"
        else o.change_poll_interval_s
    )
    base_url = o.base_url or settings.fhir_base_url
    database_url = o.database_url or settings.database_url
    auto_upgrade = settings.auto_upgrade_schema if o.auto_upgrade is None else o.auto_upgrade
    cache, decider, smart = o.cache, o.decider, o.smart
    if change_poll_interval_s is not None and not change_poll_interval_s >= 0:
        raise ValueError("change_poll_interval_s must be 0 (off) or a positive number")
    monitoring = o.monitoring or monitoring_from_settings(settings)
    if o.sources is not None:
        sources: Sequence[SourceConfig] = o.sources
    elif settings.sources_file is not None:
        sources = load_sources(settings.sources_file)
    else:
        raise ConfigurationError("CAREGW_SOURCES_FILE is required")
    verifier = o.verifier or verifier_from_settings(settings)
    policy = load_policy(o.policy_file or settings.policy_file)
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
        reviews=ReviewStore(engine),
        monitoring=monitoring,
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

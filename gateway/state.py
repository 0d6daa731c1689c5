"""What a running gateway holds: built once, by :func:`gateway.wiring.build_state`, and shared
by every request (``app.state.gateway``; routes take it as ``StateDep``).

Every field has its real type, so a route reads ``state.policy`` as a ``Policy`` without an
``isinstance`` guard. The optional ones are ``None`` only where a part is switched off (no
cache, no SMART server, no rate limit) or, for the stores, in a test that builds a gateway
from parts. Nothing else rides on ``app.state``: what a request needs is here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.auth import TokenVerifier
from gateway.cache import ChangePoller, RecordCache
from gateway.records.access import RecordAccess

if TYPE_CHECKING:  # these import the gateway's routes or stores, which import this module
    from adapters.resilience import CircuitBreaker
    from consent import Policy
    from gateway.audit import AuditStore, MonitoringConfig, ReviewStore
    from gateway.joint.store import JointPlanStore
    from gateway.ops import Drain, RateLimiter
    from gateway.policy.store import ConsentStore
    from gateway.smart import SmartServer


@dataclass(slots=True)
class GatewayState:
    base_url: str
    verifier: TokenVerifier
    access: RecordAccess
    policy: Policy | None = None  # the consent policy (None: a read path without one)
    consents: ConsentStore | None = None  # consent directives and their versions
    audit: AuditStore | None = None  # the audit trail
    reviews: ReviewStore | None = None  # IG reviews of audit events, on the audit database
    monitoring: MonitoringConfig | None = None  # privacy-alert rules (CAREGW_OUT_OF_HOURS ...)
    cache: RecordCache | None = None  # the record cache the record service reads through
    change_pollers: tuple[ChangePoller, ...] = ()  # one per source with a change feed
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)  # per source name
    smart: SmartServer | None = None  # the SMART authorization server, when it is on
    joint: JointPlanStore | None = None  # the joint care plans
    rate_limiter: RateLimiter | None = None  # when CAREGW_RATE_LIMIT is set (gateway.ops)
    drain: Drain | None = None  # readiness says 503 while it is draining (gateway.ops)


Closer = Callable[[], Awaitable[None]]
"""Closes what a :class:`GatewayState` opened (stores, pools, background tasks)."""
StateFactory = Callable[[], Awaitable[tuple[GatewayState, Closer]]]
"""What :func:`gateway.app.create_app` calls at start-up; it returns
:func:`gateway.wiring.build_state`'s answer."""

"""What a running gateway holds: built once in the app lifespan, shared by every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.access import RecordAccess
from gateway.auth import TokenVerifier
from gateway.cache import ChangePoller, RecordCache


@dataclass(slots=True)
class GatewayState:
    base_url: str
    verifier: TokenVerifier
    access: RecordAccess
    policy: Any = None  # consent.Policy when the consent policy is wired
    consents: Any = None  # gateway.consent_store.ConsentStore
    audit: Any = None  # gateway.audit.AuditTrail
    cache: RecordCache | None = None  # the record cache the record service reads through
    change_pollers: tuple[ChangePoller, ...] = ()  # one per source with a change feed
    breakers: dict[str, Any] = field(default_factory=dict)  # source name -> CircuitBreaker
    smart: Any = None  # gateway.smart.SmartServer when the SMART authorization server is on
    joint: Any = None  # gateway.joint.store.JointPlanStore: the joint care plans
    rate_limiter: Any = None  # gateway.ops.RateLimiter when CAREGW_RATE_LIMIT is set
    drain: Any = None  # gateway.ops.Drain: readiness says 503 while it is draining

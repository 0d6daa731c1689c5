"""Per-client rate limits (``CAREGW_RATE_LIMIT``, e.g. ``600/minute``), shared by replicas.

Each caller — a user by the token's ``sub``, a system client by its client id — may make
``limit`` requests in any ``period``; beyond that the request is answered ``429``
(``issue.code`` ``throttled``) with ``Retry-After`` in whole seconds, as an OperationOutcome,
and audited like any refusal (the check runs in :func:`gateway.deps.gate`, after the token
is verified, so the event names the caller). A request without a valid token is never
counted: it is refused with ``401`` before, and cannot spend another caller's allowance.

The algorithm is GCRA (the generic cell rate algorithm): one number per caller, the
theoretical arrival time of its next request, so a full allowance may be used in a burst and
is then given back smoothly, one request every ``period / limit``. With ``CAREGW_REDIS_URL``
that number lives in Redis and is updated by one Lua script using Redis's own clock, so
every replica counts against the same allowance whatever their clocks say. The key is a hash
of the caller, never the ``sub`` itself.

Without Redis, or while Redis cannot be reached, the same algorithm runs in the process (the
limit is then per replica): a rate limit protects the sources and the gateway, it is not an
access control, so a Redis outage must not become an outage of the API. After a Redis
failure the in-process limiter is used for :data:`REDIS_RETRY_S` before Redis is tried again,
so a dead Redis costs one failed round trip per interval, not one per request.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog

from gateway.errors import TooManyRequests as TooManyRequests  # re-exported

log = structlog.get_logger(__name__)

REDIS_RETRY_S: Final = 2.0
REDIS_TIMEOUT_S: Final = 0.5
LOCAL_KEYS_KEPT: Final = 100_000  # callers the in-process limiter remembers, at most
KEY_PREFIX: Final = "cgw:v1:rl:"

_PERIODS: Final = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
_SPELLINGS: Final = {"s": "second", "sec": "second", "m": "minute", "min": "minute", "h": "hour"}
_FORM = re.compile(r"\s*(\d{1,9})\s*/\s*([a-z]+)\s*")

# KEYS[1]: the caller's key. ARGV[1]: emission interval, ARGV[2]: period (microseconds).
# Returns {1, 0} when allowed, else {0, microseconds until the next request is allowed}.
_GCRA_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - period
if now < allow_at then return {0, allow_at - now} end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX',
           math.max(1, math.ceil((next_tat - now) / 1000)))
return {1, 0}
"""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests per ``period_s`` seconds."""

    limit: int
    period_s: float

    @property
    def interval_us(self) -> int:
        return max(1, int(self.period_s * 1_000_000 / self.limit))

    @property
    def period_us(self) -> int:
        return int(self.period_s * 1_000_000)

    def __str__(self) -> str:
        unit = next(name for name, s in _PERIODS.items() if s == self.period_s)
        return f"{self.limit}/{unit}"


def parse_rate_limit(text: str) -> RateLimit:
    """``N/second``, ``N/minute`` or ``N/hour`` (``s``, ``m``, ``h`` too); ValueError else."""
    match = _FORM.fullmatch(text.lower())
    if match is None:
        raise ValueError("must look like 600/minute (N/second, N/minute or N/hour)")
    count, unit = int(match.group(1)), match.group(2)
    unit = _SPELLINGS.get(unit, unit.removesuffix("s"))
    if unit not in _PERIODS:
        raise ValueError("the period must be second, minute or hour")
    if count < 1:
        raise ValueError("the limit must be at least 1")
    return RateLimit(count, _PERIODS[unit])


def caller_of(principal: Any) -> tuple[str, str]:
    """(kind, identity) a request is counted under: a system client by its client id, a
    user (or a person) by the token's ``sub``."""
    kind = str(getattr(principal, "client_kind", "user") or "user")
    if kind == "system":
        return kind, str(getattr(principal, "client_id", None) or principal.sub)
    return kind, str(principal.sub)


def _key(kind: str, identity: str) -> str:
    digest = hashlib.sha256(f"{kind}\x00{identity}".encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}{digest}"


class LocalLimiter:
    """GCRA in this process (monotonic clock); remembers at most :data:`LOCAL_KEYS_KEPT`
    callers, forgetting the longest idle first (a forgotten caller has its full allowance,
    which is what its idleness would have given it back anyway, give or take)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tat: OrderedDict[str, int] = OrderedDict()

    def hit(self, key: str) -> int:
        """0 when allowed, else microseconds until the next request is allowed."""
        now = int(self._clock() * 1_000_000)
        tat = max(self._tat.get(key, now), now)
        next_tat = tat + self.limit.interval_us
        allow_at = next_tat - self.limit.period_us
        if now < allow_at:
            return allow_at - now
        self._tat[key] = next_tat
        self._tat.move_to_end(key)
        while len(self._tat) > LOCAL_KEYS_KEPT:
            self._tat.popitem(last=False)
        return 0


class RateLimiter:
    """The limiter :func:`gateway.deps.gate` calls; Redis-backed when ``redis_url`` is set.

    ``refused`` counts refusals by caller kind, ``redis_failures`` the Redis round trips that
    failed (each then decided in process); the metrics read both.
    """

    def __init__(
        self,
        limit: RateLimit,
        redis_url: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.local = LocalLimiter(limit, clock)
        self._clock = clock
        self.refused: Counter[str] = Counter()
        self.redis_failures = 0
        self._redis: Any = None
        self._script: Any = None
        self._redis_down_until = 0.0
        if redis_url:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError

            self._redis = aioredis.Redis.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                max_connections=64,
                # After a Redis restart each pooled connection is dead: one retry on a new
                # connection, at once, instead of one fallback per stale connection. A
                # timeout is not retried (it would double the wait on a hung Redis).
                retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
            )
            self._script = self._redis.register_script(_GCRA_LUA)

    @property
    def shared(self) -> bool:
        return self._redis is not None

    async def check(self, principal: Any) -> None:
        """Count one request of ``principal``; :class:`TooManyRequests` beyond the limit."""
        kind, identity = caller_of(principal)
        key = _key(kind, identity)
        wait_us = await self._hit(key)
        if wait_us > 0:
            self.refused[kind] += 1
            raise TooManyRequests(max(1, math.ceil(wait_us / 1_000_000)), self.limit)

    async def _hit(self, key: str) -> int:
        if self._script is not None and self._clock() >= self._redis_down_until:
            try:
                allowed, wait_us = await self._script(
                    keys=[key], args=[self.limit.interval_us, self.limit.period_us]
                )
            except Exception as exc:  # unreachable, timed out, restarted mid-call ...
                self.redis_failures += 1
                self._redis_down_until = self._clock() + REDIS_RETRY_S
                log.warning("rate_limit_redis_unavailable", error=type(exc).__name__)
            else:
                return 0 if int(allowed) else int(wait_us)
        return self.local.hit(key)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

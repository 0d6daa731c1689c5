"""The encrypted record cache end to end: a real gateway reading through a Redis-backed
``RecordCache`` (built by ``build_record_cache`` with freshly generated keys) in front of the
real social care and community simulators, on loopback.

Source calls are counted by the simulators themselves (``GET /_control``: data requests per
path), so "served from the cache" means "no source was asked", not a timing; Redis reads are
counted by the redis-server itself (``INFO commandstats``). Two gateways sharing one Redis
stand for two replicas, each with its own in-process tier. The cache settings
(``CAREGW_CACHE_LOCAL_TTL_S``, ``CAREGW_CHANGE_POLL_INTERVAL_S``) are checked from parsing
to a running ``caregateway serve`` and ``demo``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.auth import TokenVerifier
from gateway.cache import (
    EVICTION_CHANNEL,
    CacheConfigError,
    IndexKey,
    MemoryBackend,
    RecordCache,
    RedisBackend,
    TieredBackend,
    build_record_cache,
    generate_index_key,
    generate_key_entry,
)
from gateway.cli import main as cli_main
from gateway.embedded import free_port
from gateway.settings import ConfigurationError, Settings, get_settings
from gateway.wiring import DEFAULT_CHANGE_POLL_INTERVAL_S, Overrides, build_state, defaults
from simulators.population import SCENARIO_NHS_NUMBERS, SCENARIOS, Population
from simulators.runner import RunningSources, source_configs
from tests.consent.factories import objection_body
from tests.gateway import test_settings_secrets
from tests.gateway.harness import Gateway, running_gateway
from tests.redis_server import RedisServer, own_redis_server, redis_server  # noqa: F401
from tests.support import processes

SOCIAL = "socialcare"
COMMUNITY = "community"
PEOPLE_SEARCH = "/people"  # GET /people?nhsNumber=... at social care
PATIENT_SEARCH = "/Patient"  # GET /Patient?identifier=... at community
CHANGES = "/changes"  # social care change feed: read by a polling gateway, not a record read
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
KEY_FORMAT = re.compile(rb"cgw:v1:r:[0-9a-f]{64}:[0-9a-f]{16}")
ISO_DATE = re.compile(rb"\d{4}-\d{2}-\d{2}")
NHS_LIKE = re.compile(rb"\d{3}[ -]?\d{3}[ -]?\d{4}")

# Every NHS number this module asks the gateway for (the Redis scan looks for all of them).
REQUESTED: set[str] = set()


# --- the people ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    nhs: str
    person_id: str  # social care person id (for /_control/touch)
    gp: str  # ODS code of the GP practice: the token's organisation (legitimate relationship)


def _general_people(population: Population) -> Iterator[Person]:
    """People held by both sources, outside the fixed scenarios, unrestricted, with a GP."""
    for nhs in sorted(population.nhs_numbers()):
        if nhs in SCENARIO_NHS_NUMBERS:
            continue
        council = population.council_people_with(nhs)
        if len(council) != 1 or not population.community_patients_with(nhs):
            continue
        person = council[0]
        if person.restricted or person.gp is None or person.death_date is not None:
            continue
        yield Person(nhs, person.person_id, person.gp.ods_code)


class People:
    """Hands out a different person to every test, so no test sees another's cache entries."""

    def __init__(self, population: Population) -> None:
        self._people = _general_people(population)

    def take(self) -> Person:
        person = next(self._people)
        REQUESTED.add(person.nhs)
        return person


@pytest.fixture(scope="module")
def people(running_sources: RunningSources) -> People:
    return People(running_sources.population)


# --- the gateway ---------------------------------------------------------------------------


@dataclass
class CachedGateway:
    gw: Gateway
    running: RunningSources
    index: IndexKey
    server: RedisServer

    async def everything(self, person: Person, **token: Any) -> httpx.Response:
        REQUESTED.add(person.nhs)
        headers = self.gw.headers(org=person.gp, **token)
        return await self.gw.get(f"/Patient/{person.nhs}/$everything", headers=headers)

    async def counts(self) -> dict[str, dict[str, int]]:
        """Data requests each simulator has seen, per path."""
        out: dict[str, dict[str, int]] = {}
        for name, url in (
            (SOCIAL, self.running.social_care_url),
            (COMMUNITY, self.running.community_url),
        ):
            resp = await self.gw.client.get(f"{url}/_control")
            resp.raise_for_status()
            out[name] = dict(resp.json()["requests"])
        return out

    async def ready(self) -> dict[str, Any]:
        base = self.gw.base_url.removesuffix("/fhir")
        resp = await self.gw.client.get(f"{base}/health/ready")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    @property
    def cache(self) -> RecordCache:
        cache = self.gw.state.cache
        assert cache is not None
        return cache

    def raw(self) -> redis.Redis:
        return redis.Redis.from_url(self.server.url)

    def keys_of(self, person: Person) -> list[bytes]:
        return [self.index.record_key(source, person.nhs) for source in (SOCIAL, COMMUNITY)]


def calls(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, int]:
    """Record requests made between two ``counts()``, per source, all paths together but the
    change feed (which a gateway polling it reads on its own)."""

    def total(counts: dict[str, int]) -> int:
        return sum(n for path, n in counts.items() if path != CHANGES)

    return {source: total(after[source]) - total(before[source]) for source in (SOCIAL, COMMUNITY)}


def searches(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> tuple[int, int]:
    """(social care person searches, community Patient searches) between two ``counts()``."""
    return (
        after[SOCIAL].get(PEOPLE_SEARCH, 0) - before[SOCIAL].get(PEOPLE_SEARCH, 0),
        after[COMMUNITY].get(PATIENT_SEARCH, 0) - before[COMMUNITY].get(PATIENT_SEARCH, 0),
    )


@dataclass(frozen=True)
class CacheSecrets:
    """``CAREGW_CACHE_KEYS`` and ``CAREGW_CACHE_INDEX_KEY``: replicas of one gateway share them."""

    cache_keys: str
    index_key: str

    @classmethod
    def generate(cls) -> CacheSecrets:
        return cls(generate_key_entry(), generate_index_key())


def make_cache(
    redis_url: str, secrets: CacheSecrets | None = None, *, local_ttl_s: float = 0
) -> tuple[RecordCache, IndexKey]:
    """The cache as ``serve`` builds it: real generated keys, demo keys refused."""
    secrets = secrets or CacheSecrets.generate()
    cache = build_record_cache(
        redis_url=redis_url,
        cache_keys=secrets.cache_keys,
        index_key=secrets.index_key,
        ttl_s=300,
        sources=[SOCIAL, COMMUNITY],
        demo=False,
        local_ttl_s=local_ttl_s,
    )
    return cache, IndexKey.parse(secrets.index_key)


@asynccontextmanager
async def cached_gateway(
    running: RunningSources, signing_key: tuple[bytes, dict[str, Any]], server: RedisServer
) -> AsyncIterator[CachedGateway]:
    cache, index = make_cache(server.url)
    async with running_gateway(source_configs(running), *signing_key, cache=cache) as gw:
        yield CachedGateway(gw, running, index, server)


@pytest.fixture(scope="module")
async def cgw(
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    redis_server: RedisServer,  # noqa: F811
) -> AsyncIterator[CachedGateway]:
    async with cached_gateway(running_sources, signing_key, redis_server) as gateway:
        yield gateway


def assert_record(resp: httpx.Response, person: Person) -> dict[str, Any]:
    """A 200 ``$everything`` Bundle with the person's Patient and data from both sources."""
    assert resp.status_code == 200, resp.text
    bundle: dict[str, Any] = resp.json()
    assert bundle["resourceType"] == "Bundle"
    resources = [e["resource"] for e in bundle.get("entry", ())]
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    assert len(patients) == 1
    assert {"system": NHS_SYSTEM, "value": person.nhs} in [
        {"system": i.get("system"), "value": i.get("value")}
        for i in patients[0].get("identifier", ())
    ]
    assert not [r for r in resources if r["resourceType"] == "OperationOutcome"], resources
    return bundle


def patient_last_updated(bundle: dict[str, Any]) -> datetime:
    """``meta.lastUpdated`` of the Bundle's (merged) Patient."""
    (patient,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    return datetime.fromisoformat(patient["meta"]["lastUpdated"])


def ids(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (e["resource"]["resourceType"], e["resource"].get("id", "")) for e in bundle["entry"]
    )


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0
) -> None:
    """Check ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)  # the interval between checks, not a wait for the event


def redis_gets(server: RedisServer) -> int:
    """Reads (GET and MGET commands) the redis-server has executed since it started."""
    with redis.Redis.from_url(server.url) as raw:
        stats: dict[str, dict[str, int]] = raw.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "mget"))


def eviction_subscribers(server: RedisServer) -> int:
    """Connections subscribed to the eviction channel (one per replica's listener)."""
    with redis.Redis.from_url(server.url) as raw:
        ((_, n),) = raw.pubsub_numsub(EVICTION_CHANNEL)
    return int(n)


def local_tier(cache: RecordCache) -> MemoryBackend:
    backend = cache.backend
    assert isinstance(backend, TieredBackend), backend
    return backend.local


async def held_locally(cgw: CachedGateway, person: Person) -> list[bool]:
    """Per source: is the person's entry in this gateway's own in-process tier?"""
    local = local_tier(cgw.cache)
    return [await local.get(key) is not None for key in cgw.keys_of(person)]


# --- hit and miss ------------------------------------------------------------------------


async def test_second_everything_does_not_call_the_sources(
    cgw: CachedGateway, people: People
) -> None:
    person = people.take()
    before = await cgw.counts()
    first = assert_record(await cgw.everything(person), person)
    after_first = await cgw.counts()
    assert searches(before, after_first) == (1, 1)
    assert all(n > 0 for n in calls(before, after_first).values())

    second = assert_record(await cgw.everything(person), person)
    after_second = await cgw.counts()
    assert calls(after_first, after_second) == {SOCIAL: 0, COMMUNITY: 0}
    assert ids(second) == ids(first)

    with cgw.raw() as raw:  # both sources' results are in Redis, under opaque keys
        assert all(raw.exists(key) for key in cgw.keys_of(person))


async def test_ten_concurrent_requests_fetch_once_per_source(
    cgw: CachedGateway, people: People
) -> None:
    person = people.take()
    # Slow sources, so the ten requests overlap while the first fetch is under way (the
    # count below holds either way: a late request is a cache hit).
    urls = (cgw.running.social_care_url, cgw.running.community_url)
    previous = [(await cgw.gw.client.get(f"{u}/_control")).json()["latency_ms"] for u in urls]
    for url in urls:
        (await cgw.gw.client.post(f"{url}/_control", json={"latency_ms": 150})).raise_for_status()
    try:
        before = await cgw.counts()
        responses = await asyncio.gather(*(cgw.everything(person) for _ in range(10)))
        after = await cgw.counts()
    finally:
        for url, latency in zip(urls, previous, strict=True):
            await cgw.gw.client.post(f"{url}/_control", json={"latency_ms": latency})
    bundles = [assert_record(r, person) for r in responses]
    assert searches(before, after) == (1, 1)
    assert len({tuple(ids(b)) for b in bundles}) == 1


# --- invalidation by the change feed ---------------------------------------------------------


async def test_a_change_in_the_feed_makes_the_next_request_refetch(
    cgw: CachedGateway, people: People
) -> None:
    person = people.take()
    pollers = cgw.gw.state.change_pollers
    assert [p.name for p in pollers] == [SOCIAL]  # only social care has a change feed
    poller = pollers[0]
    await poller.poll_once()  # start from a quiet feed

    assert_record(await cgw.everything(person), person)
    cached = await cgw.counts()
    assert_record(await cgw.everything(person), person)
    assert calls(cached, await cgw.counts()) == {SOCIAL: 0, COMMUNITY: 0}

    touch = f"{cgw.running.social_care_url}/_control/touch/{person.person_id}"
    (await cgw.gw.client.post(touch)).raise_for_status()
    assert await poller.poll_once() >= 1
    with cgw.raw() as raw:  # every source's entry for the person is gone
        assert not any(raw.exists(key) for key in cgw.keys_of(person))

    before = await cgw.counts()
    assert_record(await cgw.everything(person), person)
    after = await cgw.counts()
    assert searches(before, after) == (1, 1)
    assert_record(await cgw.everything(person), person)  # and it is cached again
    assert calls(after, await cgw.counts()) == {SOCIAL: 0, COMMUNITY: 0}


async def test_an_eviction_by_one_replica_reaches_the_other_replicas_in_process_tier(
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    own_redis_server: RedisServer,  # noqa: F811
    people: People,
) -> None:
    """Replica A polls the social care change feed; replica B does not poll at all, so what
    empties B's in-process tier can only be A's eviction, heard over Redis pub/sub."""
    async with asyncio.timeout(60):
        secrets = CacheSecrets.generate()
        cache_a, index = make_cache(own_redis_server.url, secrets, local_ttl_s=60)
        cache_b, _ = make_cache(own_redis_server.url, secrets, local_ttl_s=60)
        configs = source_configs(running_sources)
        async with (
            running_gateway(
                configs, *signing_key, cache=cache_a, change_poll_interval_s=0.05
            ) as gw_a,
            running_gateway(configs, *signing_key, cache=cache_b) as gw_b,
        ):
            a = CachedGateway(gw_a, running_sources, index, own_redis_server)
            b = CachedGateway(gw_b, running_sources, index, own_redis_server)
            (poller_a,) = a.gw.state.change_pollers
            (poller_b,) = b.gw.state.change_pollers  # built, never run

            async def both_listening() -> bool:
                return eviction_subscribers(own_redis_server) == 2

            await wait_until(both_listening, "both replicas subscribed to evictions")

            person = people.take()
            before = await b.counts()
            first = assert_record(await b.everything(person), person)
            assert searches(before, await b.counts()) == (1, 1)
            assert await held_locally(b, person) == [True, True]

            # B's repeat read is served from its own tier: no source, not even Redis, asked
            before, gets = await b.counts(), redis_gets(own_redis_server)
            assert ids(assert_record(await b.everything(person), person)) == ids(first)
            assert calls(before, await b.counts()) == {SOCIAL: 0, COMMUNITY: 0}
            assert redis_gets(own_redis_server) == gets

            touch = f"{running_sources.social_care_url}/_control/touch/{person.person_id}"
            touched = await b.gw.client.post(touch)
            touched.raise_for_status()
            changed_at = datetime.fromisoformat(touched.json()["changedAt"])
            assert patient_last_updated(first) < changed_at

            async def dropped_by_b() -> bool:
                return await held_locally(b, person) == [False, False]

            await wait_until(dropped_by_b, "replica B dropped the person from its own tier")
            assert poller_a.evicted >= 1 and poller_b.polls == 0
            with b.raw() as raw:  # A cleared the shared tier too
                assert not any(raw.exists(key) for key in b.keys_of(person))

            before = await b.counts()
            refetched = assert_record(await b.everything(person), person)
            assert searches(before, await b.counts()) == (1, 1)
            assert patient_last_updated(refetched) == changed_at  # the source's new data

            before = await b.counts()  # and B holds the new data in its own tier again
            again = assert_record(await b.everything(person), person)
            assert calls(before, await b.counts()) == {SOCIAL: 0, COMMUNITY: 0}
            assert patient_last_updated(again) == changed_at


async def test_ready_reports_the_cache_the_sources_and_the_feed(cgw: CachedGateway) -> None:
    body = await cgw.ready()
    assert body["status"] == "ok"
    assert body["sources"] == {SOCIAL: "closed", COMMUNITY: "closed"}
    cache = body["cache"]
    assert cache["backend"] == "redis"
    assert cache["reachable"] is True and cache["degraded"] is False
    assert cache["hits"] > 0 and cache["writes"] > 0
    assert body["changeFeeds"][SOCIAL]["polls"] >= 1


# --- consent is decided after the cache, on every request -------------------------------


def objection(nhs: str) -> dict[str, Any]:
    return objection_body(nhs)


async def test_an_objection_applies_to_the_very_next_request_though_cached(
    cgw: CachedGateway, people: People
) -> None:
    person = people.take()
    assert_record(await cgw.everything(person), person)
    cached = await cgw.counts()
    warm = [assert_record(await cgw.everything(person), person) for _ in range(3)]
    assert calls(cached, await cgw.counts()) == {SOCIAL: 0, COMMUNITY: 0}
    # Warm answers of an unchanged record are the same Bundle but for its id and time.
    bundles = warm
    assert len({b["id"] for b in bundles}) == 3
    assert len({json.dumps({**b, "id": None, "meta": None}) for b in bundles}) == 1

    officer = cgw.gw.headers(
        role="R0001", purpose="HOPERAT", org="X26", scopes=("user/*.cruds",), sub="ig-0001"
    )
    created = await cgw.gw.client.post(
        f"{cgw.gw.base_url}/Consent",
        json=objection(person.nhs),
        headers={**officer, "Content-Type": "application/fhir+json"},
    )
    assert created.status_code == 201, created.text

    refused = await cgw.everything(person)
    assert refused.status_code == 403, refused.text
    issue = refused.json()["issue"][0]
    assert "patient-objected" in [c["code"] for c in issue.get("details", {}).get("coding", ())]
    with cgw.raw() as raw:  # the objection evicted nothing: the record is still cached
        assert all(raw.exists(key) for key in cgw.keys_of(person))

    stored = created.json()
    lifted = await cgw.gw.client.put(
        f"{cgw.gw.base_url}/Consent/{stored['id']}",
        json={**stored, "status": "inactive"},
        headers={**officer, "Content-Type": "application/fhir+json"},
    )
    assert lifted.status_code == 200, lifted.text
    before = await cgw.counts()
    assert_record(await cgw.everything(person), person)  # from the cache again
    assert calls(before, await cgw.counts()) == {SOCIAL: 0, COMMUNITY: 0}


# --- nothing identifying in Redis ---------------------------------------------------------


def _date_forms(day: date) -> list[bytes]:
    return [s.encode() for s in (day.isoformat(), day.strftime("%Y%m%d"), day.strftime("%d/%m/%Y"))]


def _name_forms(name: str) -> list[bytes]:
    # Short names are looked for as JSON strings ("Amy"): three bare letters turn up in
    # kilobytes of random ciphertext by chance, a quoted one does not.
    raw = name.encode()
    return [raw] if len(raw) >= 6 else [b'"' + raw + b'"']


def secrets_of(population: Population, nhs: str) -> list[bytes]:
    """Everything about a person that must never be found in clear in Redis."""
    digits = nhs.encode()
    found = [
        digits,
        f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}".encode(),
        f"{nhs[:3]}-{nhs[3:6]}-{nhs[6:]}".encode(),
    ]
    holders: list[Any] = [
        *population.council_people_with(nhs),
        *population.community_patients_with(nhs),
    ]
    for who in holders:
        if who.nhs_number:
            found.append(who.nhs_number.encode())
        for given in who.name.given:
            found += _name_forms(given)
        found += _name_forms(who.name.family)
        found.append(f"{' '.join(who.name.given)} {who.name.family}".encode())
        found += _date_forms(who.birth_date)
    return found


async def test_no_nhs_number_name_or_date_in_clear_in_redis(
    cgw: CachedGateway, people: People
) -> None:
    # an end-to-end run: general people and the scenario people with a valid NHS number
    for _ in range(3):
        person = people.take()
        assert_record(await cgw.everything(person), person)
    population = cgw.running.population
    for scenario in SCENARIOS.values():
        if scenario.nhs_number is None:
            continue
        council = population.council_people_with(scenario.nhs_number)
        gp = next((p.gp.ods_code for p in council if p.gp), "F81001")
        resp = await cgw.everything(Person(scenario.nhs_number, "", gp))
        assert resp.status_code in (200, 403, 404), resp.text

    forbidden = sorted({s for nhs in REQUESTED for s in secrets_of(population, nhs)})
    assert len(REQUESTED) >= 8 and forbidden
    with cgw.raw() as raw:
        keys = []
        cursor = 0
        while True:  # SCAN the whole keyspace
            cursor, batch = raw.scan(cursor=cursor, count=100)
            keys += batch
            if cursor == 0:
                break
        assert len(keys) >= 2 * 8
        for key in keys:
            assert KEY_FORMAT.fullmatch(key), key
            value = raw.get(key)
            assert isinstance(value, bytes) and len(value) > 40, key
            assert not ISO_DATE.search(value), key
            assert not NHS_LIKE.search(value), key
            for secret in forbidden:
                assert secret not in key, (key, secret)
                assert secret not in value, (key, secret)


# --- Redis failure and recovery -----------------------------------------------------------


async def test_redis_down_keeps_answering_degraded_and_caching_returns_with_it(
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    own_redis_server: RedisServer,  # noqa: F811
    people: People,
) -> None:
    async with cached_gateway(running_sources, signing_key, own_redis_server) as cgw:
        cached, fresh = people.take(), people.take()
        assert_record(await cgw.everything(cached), cached)
        before = await cgw.counts()
        assert_record(await cgw.everything(cached), cached)
        assert calls(before, await cgw.counts()) == {SOCIAL: 0, COMMUNITY: 0}
        assert (await cgw.ready())["status"] == "ok"

        own_redis_server.stop()
        before = await cgw.counts()
        assert_record(await cgw.everything(cached), cached)  # from the sources now
        assert searches(before, await cgw.counts()) == (1, 1)
        assert_record(await cgw.everything(fresh), fresh)
        ready = await cgw.ready()
        assert ready["status"] == "degraded"
        assert ready["cache"]["reachable"] is False and ready["cache"]["degraded"] is True
        assert ready["cache"]["unavailable"] > 0
        assert ready["sources"] == {SOCIAL: "closed", COMMUNITY: "closed"}

        own_redis_server.start()  # same port, empty (no persistence)
        ready = await cgw.ready()
        assert ready["status"] == "ok" and ready["cache"]["reachable"] is True
        before = await cgw.counts()
        assert_record(await cgw.everything(fresh), fresh)  # a miss: Redis came back empty
        refetched = await cgw.counts()
        assert searches(before, refetched) == (1, 1)
        assert_record(await cgw.everything(fresh), fresh)  # and a hit again
        assert calls(refetched, await cgw.counts()) == {SOCIAL: 0, COMMUNITY: 0}


# --- configuration: the in-process tier and the change-feed poll interval -----------------

LOCAL_TTL_VAR = "CAREGW_CACHE_LOCAL_TTL_S"
POLL_VAR = "CAREGW_CHANGE_POLL_INTERVAL_S"
# The settings tests' fixture: no ``CAREGW_*`` variable and no ``.env`` file but the ones a
# test sets.
env = test_settings_secrets.env


def test_cache_settings_default_to_polling_every_ten_seconds_and_no_local_tier(
    env: pytest.MonkeyPatch,
) -> None:
    settings = get_settings()
    assert settings.change_poll_interval_s == DEFAULT_CHANGE_POLL_INTERVAL_S == 10.0
    assert settings.cache_local_ttl_s == 0
    cache = build_record_cache(
        redis_url="redis://127.0.0.1:6379/0",
        cache_keys=generate_key_entry(),
        index_key=generate_index_key(),
        ttl_s=settings.cache_ttl_s,
        local_ttl_s=settings.cache_local_ttl_s,
    )
    assert isinstance(cache.backend, RedisBackend)  # Redis alone, as before the setting


@pytest.mark.parametrize(
    ("variables", "local_ttl_s", "poll_interval_s"),
    [
        ({LOCAL_TTL_VAR: "30", POLL_VAR: "2.5"}, 30.0, 2.5),
        ({LOCAL_TTL_VAR: "0", POLL_VAR: "0"}, 0.0, 0.0),
        ({LOCAL_TTL_VAR: "0.5", POLL_VAR: "60"}, 0.5, 60.0),
        ({"CAREGW_CACHE_TTL_S": "20", LOCAL_TTL_VAR: "20"}, 20.0, 10.0),
    ],
)
def test_cache_settings_parse(
    env: pytest.MonkeyPatch,
    variables: dict[str, str],
    local_ttl_s: float,
    poll_interval_s: float,
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    settings = get_settings()
    assert (settings.cache_local_ttl_s, settings.change_poll_interval_s) == (
        local_ttl_s,
        poll_interval_s,
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (POLL_VAR, "-1", "greater than or equal to 0"),
        (POLL_VAR, "0.2", "must be 0 (no polling) or at least 1.0 seconds"),
        (POLL_VAR, "often", "valid number"),
        (POLL_VAR, "inf", "finite number"),
        (LOCAL_TTL_VAR, "-0.5", "greater than or equal to 0"),
        (LOCAL_TTL_VAR, "nan", "finite number"),
        (LOCAL_TTL_VAR, "301", "must not exceed CAREGW_CACHE_TTL_S (300)"),
    ],
)
def test_a_bad_cache_setting_is_refused_naming_the_variable(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    says: str,
) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        get_settings()
    assert str(refused.value).startswith(f"{variable}: ")
    assert says in str(refused.value)
    for command in ("serve", "demo"):  # both stop at once, with the same message
        get_settings.cache_clear()
        assert cli_main([command]) == 2
        assert capsys.readouterr().err == f"caregateway: {refused.value}\n"


@pytest.mark.parametrize(
    ("local_ttl_s", "ttl_s", "says"),
    [
        (-1.0, 300, f"{LOCAL_TTL_VAR} must be 0 (no in-process tier) or positive"),
        (float("nan"), 300, f"{LOCAL_TTL_VAR} must be 0"),
        (301.0, 300, f"{LOCAL_TTL_VAR} (301) exceeds CAREGW_CACHE_TTL_S (300)"),
    ],
)
def test_build_record_cache_refuses_a_bad_local_tier(
    local_ttl_s: float, ttl_s: int, says: str
) -> None:
    with pytest.raises(CacheConfigError) as refused:
        build_record_cache(
            redis_url="redis://127.0.0.1:6379/0",
            cache_keys=generate_key_entry(),
            index_key=generate_index_key(),
            ttl_s=ttl_s,
            local_ttl_s=local_ttl_s,
        )
    assert str(refused.value).startswith(says)


async def test_build_state_refuses_a_negative_poll_interval(
    running_sources: RunningSources, signing_key: tuple[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    _, jwk = signing_key
    with pytest.raises(ValueError, match="change_poll_interval_s"):
        await build_state(
            defaults(),
            Overrides(
                base_url="http://127.0.0.1:1/fhir",
                sources=source_configs(running_sources),
                verifier=TokenVerifier(issuer="urn:x", audience="urn:y", jwks={"keys": [jwk]}),
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'never.db'}",
                change_poll_interval_s=-1,
            ),
        )
    assert not (tmp_path / "never.db").exists()  # refused before anything was opened


def settings_with(env: pytest.MonkeyPatch, **variables: str) -> Settings:
    for name, value in variables.items():
        env.setenv(name, value)
    return get_settings()


@pytest.mark.parametrize(
    ("local_ttl_s", "redis_gets_per_repeat_read", "backend"),
    [("0", 1, "redis"), ("30", 0, "redis+memory")],  # 1: one MGET, sources and joint plans
)
async def test_the_local_tier_setting_decides_whether_each_read_goes_to_redis(
    env: pytest.MonkeyPatch,
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    own_redis_server: RedisServer,  # noqa: F811
    people: People,
    local_ttl_s: str,
    redis_gets_per_repeat_read: int,
    backend: str,
) -> None:
    """Off (0): every read asks Redis, once for all its entries (both sources and the joint
    plans). On: a repeat read stays in process."""
    async with asyncio.timeout(60):
        settings = settings_with(env, CAREGW_CACHE_LOCAL_TTL_S=local_ttl_s)
        cache, index = make_cache(own_redis_server.url, local_ttl_s=settings.cache_local_ttl_s)
        async with running_gateway(
            source_configs(running_sources), *signing_key, cache=cache
        ) as gw:
            cgw = CachedGateway(gw, running_sources, index, own_redis_server)
            assert (await cgw.ready())["cache"]["backend"] == backend
            person = people.take()
            first = assert_record(await cgw.everything(person), person)
            for _ in range(3):
                before, gets, hits = (
                    await cgw.counts(),
                    redis_gets(own_redis_server),
                    cgw.cache.stats.hits,
                )
                assert ids(assert_record(await cgw.everything(person), person)) == ids(first)
                assert calls(before, await cgw.counts()) == {SOCIAL: 0, COMMUNITY: 0}
                assert redis_gets(own_redis_server) - gets == redis_gets_per_repeat_read
                # a hit for each source (and the joint plans, source "joint") either way
                assert cgw.cache.stats.hits - hits == 3


def change_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("changes:")}


@asynccontextmanager
async def polling_gateway(
    env: pytest.MonkeyPatch,
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    redis_url: str,
    interval: str,
) -> AsyncIterator[tuple[Gateway, IndexKey, set[asyncio.Task[Any]]]]:
    """A cached gateway whose change polling is ``CAREGW_CHANGE_POLL_INTERVAL_S=interval``
    (read through the settings, as ``serve`` reads it); with the change-feed tasks that
    were running before it started."""
    settings = settings_with(env, CAREGW_CHANGE_POLL_INTERVAL_S=interval)
    cache, index = make_cache(redis_url)
    running_before = change_tasks()
    async with running_gateway(
        source_configs(running_sources),
        *signing_key,
        cache=cache,
        change_poll_interval_s=settings.change_poll_interval_s,
    ) as gw:
        yield gw, index, running_before


async def test_with_polling_off_no_poller_runs_and_a_changed_record_stays_cached(
    env: pytest.MonkeyPatch,
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    redis_server: RedisServer,  # noqa: F811
    people: People,
) -> None:
    async with (
        asyncio.timeout(60),
        polling_gateway(env, running_sources, signing_key, redis_server.url, "0") as started,
    ):
        gw, index, running_before = started
        cgw = CachedGateway(gw, running_sources, index, redis_server)
        assert gw.state.change_pollers == ()
        assert change_tasks() - running_before == set()
        assert "changeFeeds" not in await cgw.ready()

        person = people.take()
        first = assert_record(await cgw.everything(person), person)
        touch = f"{running_sources.social_care_url}/_control/touch/{person.person_id}"
        (await gw.client.post(touch)).raise_for_status()
        before = await cgw.counts()
        cached = assert_record(await cgw.everything(person), person)
        assert calls(before, await cgw.counts()) == {SOCIAL: 0, COMMUNITY: 0}
        assert patient_last_updated(cached) == patient_last_updated(first)


async def test_with_polling_on_the_poller_runs_at_the_set_interval(
    env: pytest.MonkeyPatch,
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    async with asyncio.timeout(60):
        gateway = polling_gateway(env, running_sources, signing_key, redis_server.url, "1")
        async with gateway as (gw, _, running_before):
            (poller,) = gw.state.change_pollers
            assert poller.interval_s == 1.0
            started = [t.get_name() for t in change_tasks() - running_before]
            assert started == [f"changes:{SOCIAL}"]

            async def polled_thrice() -> bool:
                return poller.polls >= 3  # at the default 10 s, 20 s or more

            await wait_until(polled_thrice, "three polls of the change feed")
        assert change_tasks() - running_before == set()  # stopped with the gateway


# --- the settings reach a running `caregateway serve` and `demo` --------------------------

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def gateway_process(command: str, variables: dict[str, str], workdir: Path) -> Iterator[Path]:
    """``caregateway <command>`` as a child process configured only by ``variables`` (no
    other ``CAREGW_*``); yields its output file. Stopped by its own PID."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREGW_")}
    env.update(variables, CAREGW_HOST="127.0.0.1", CAREGW_LOG_FORMAT="json")
    output = workdir / f"{command}.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", command],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield output
    finally:
        processes.stop(proc, timeout_s=10)


async def ready_at(client: httpx.AsyncClient, port: int, output: Path) -> dict[str, Any]:
    """``/health/ready`` of the child gateway once it answers (within 30 s)."""
    url = f"http://127.0.0.1:{port}/health/ready"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        try:
            resp = await client.get(url)
        except httpx.TransportError:
            await asyncio.sleep(0.05)  # the interval between checks
            continue
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body
    raise AssertionError(f"no answer from {url} within 30 s:\n{output.read_text()[-2000:]}")


@asynccontextmanager
async def gateway_ready(
    command: str, variables: dict[str, str], workdir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Path, dict[str, Any]]]:
    """``gateway_process`` once its ``/health/ready`` says ``ok`` (on ``CAREGW_PORT``): a client
    for it, its output file and that first ready body. The whole is bounded at 60 s."""
    port = int(variables["CAREGW_PORT"])
    async with asyncio.timeout(60), httpx.AsyncClient(timeout=5) as client:
        with gateway_process(command, variables, workdir) as output:
            ready = await ready_at(client, port, output)
            assert ready["status"] == "ok", ready
            yield client, output, ready


async def test_serve_with_polling_and_local_tier_off(
    tmp_path: Path,
    running_sources: RunningSources,
    signing_key: tuple[bytes, dict[str, Any]],
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps([asdict(s) for s in source_configs(running_sources)]))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signing_key[1]]}))
    port = free_port()
    secrets = CacheSecrets.generate()
    variables = {
        "CAREGW_PORT": str(port),
        "CAREGW_SOURCES_FILE": str(sources),
        "CAREGW_AUTH_ISSUER": "urn:caregateway:settings-test",
        "CAREGW_AUTH_JWKS_FILE": str(jwks),
        "CAREGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "CAREGW_REDIS_URL": own_redis_server.url,
        "CAREGW_CACHE_KEYS": secrets.cache_keys,
        "CAREGW_CACHE_INDEX_KEY": secrets.index_key,
        LOCAL_TTL_VAR: "0",
        POLL_VAR: "0",
    }
    async with gateway_ready("serve", variables, tmp_path) as (_, _, ready):
        assert ready["cache"]["backend"] == "redis"  # no in-process tier
        assert "changeFeeds" not in ready  # no poller
        assert eviction_subscribers(own_redis_server) == 0  # no tier, so no listener


async def test_demo_with_a_local_tier_and_a_fast_poll(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    port = free_port()
    variables = {
        "CAREGW_PORT": str(port),
        "CAREGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        "CAREGW_REDIS_URL": own_redis_server.url,
        LOCAL_TTL_VAR: "30",
        POLL_VAR: "1",
    }
    async with gateway_ready("demo", variables, tmp_path) as (client, output, ready):
        assert ready["cache"]["backend"] == "redis+memory"

        async def listening() -> bool:
            return eviction_subscribers(own_redis_server) == 1

        await wait_until(listening, "the demo's eviction listener subscribed")

        async def polled_thrice() -> bool:
            body = await ready_at(client, port, output)
            return int(body["changeFeeds"][SOCIAL]["polls"]) >= 3  # 20 s at the default

        await wait_until(polled_thrice, "three polls of the change feed")

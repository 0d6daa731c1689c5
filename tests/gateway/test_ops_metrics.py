"""Prometheus metrics on their own listener (``CAREGW_METRICS_PORT``), scraped after traffic.

``caregateway serve`` as a child process with the metrics listener on; a GP reads a person
three times (the first a cache miss, the others hits), a stranger's organisation is refused,
a request without a token, an unknown path. The scrape must carry each series with the
counts that traffic makes — and no NHS number, no user id, no request id anywhere in it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters import nhs_number
from gateway.embedded import free_port
from simulators.population import SCENARIOS
from simulators.runner import RunningSources
from tests.gateway.serve_support import Replica, ReplicaSet

SUBS = ("metrics-gp-7f3a", "metrics-stranger-91c2")


@pytest.fixture
async def served(
    running_sources: RunningSources, tmp_path: Path
) -> AsyncIterator[tuple[ReplicaSet, Replica, int]]:
    metrics_port = free_port()
    replicas = ReplicaSet(tmp_path, running_sources, CAREGW_METRICS_PORT=str(metrics_port))
    gw = replicas.replica("metrics")
    try:
        await gw.start()
        yield replicas, gw, metrics_port
    finally:
        replicas.stop_all()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_scrape_after_traffic_has_every_series_and_no_identifier(
    served: tuple[ReplicaSet, Replica, int],
) -> None:
    replicas, gw, metrics_port = served
    number, gp = replicas.gp_of("both")
    request_ids = [f"metrics-rid-{i}-5d2e" for i in range(6)]
    async with httpx.AsyncClient(timeout=15) as client:
        own_gp = replicas.token(sub=SUBS[0], org=gp)
        for i in range(3):
            resp = await client.get(
                f"{gw.base_url}/Patient/{number}",
                headers={**own_gp, "X-Request-ID": request_ids[i]},
            )
            assert resp.status_code == 200 and resp.json()["resourceType"] == "Patient"
        stranger = replicas.token(sub=SUBS[1], org="Y99999")
        resp = await client.get(
            f"{gw.base_url}/Patient/{number}/$everything",
            headers={**stranger, "X-Request-ID": request_ids[3]},
        )
        assert resp.status_code == 403, resp.text
        resp = await client.get(f"{gw.base_url}/Patient/{number}")  # no token
        assert resp.status_code == 401
        resp = await client.get(f"{gw.base_url}/NoSuchThing/{number}")
        assert resp.status_code == 404
        # Metrics are never on the API port.
        assert (await client.get(f"{gw.url}/metrics")).status_code == 404

        scrape = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        text = scrape.text
        assert (await client.get(f"http://127.0.0.1:{metrics_port}/other")).status_code == 404

    s = _samples(text)
    patient = "/fhir/Patient/{nhs}"
    everything = "/fhir/Patient/{nhs}/$everything"
    requests = "caregateway_http_requests_total"
    assert _value(s, requests, method="GET", route=patient, status="200") == 3
    assert _value(s, requests, method="GET", route=patient, status="401") == 1
    assert _value(s, requests, method="GET", route=everything, status="403") == 1
    # The unknown path and /metrics on the API port: never the raw path as a label.
    assert _value(s, requests, method="GET", route="unmatched", status="404") == 2
    duration = "caregateway_http_request_duration_seconds"
    assert _value(s, f"{duration}_count", method="GET", route=patient) == 4
    assert _value(s, f"{duration}_bucket", method="GET", route=patient, le="+Inf") == 4

    assert _value(s, "caregateway_access_decisions_total", effect="permit") == 3
    assert _value(s, "caregateway_access_decisions_total", effect="deny") == 1

    for source in ("socialcare", "community"):
        # One fetch per source: the first read (and the stranger's, a hit) and the rest hits.
        assert _value(s, "caregateway_source_fetch_duration_seconds_count", source=source) == 1
        assert _value(s, "caregateway_source_fetches_total", source=source, outcome="found") == 1
        assert _value(s, "caregateway_source_failures_total", source=source) == 0
        assert _value(s, "caregateway_source_circuit_state", source=source, state="closed") == 1
        assert _value(s, "caregateway_source_circuit_state", source=source, state="open") == 0
        assert _value(s, "caregateway_source_healthy", source=source) == 1
    # The cache holds each source's answer: socialcare, community and the joint plans.
    cached = 3
    assert _value(s, "caregateway_cache_misses_total") == cached  # first read, one per source
    assert _value(s, "caregateway_cache_hits_total") == 3 * cached  # two reads + the stranger's

    # Every audited request (4 reads, the 401, the 404) went through a group commit.
    written = _value(s, "caregateway_audit_events_written_total")
    assert written == 6
    assert _value(s, "caregateway_audit_batch_events_sum") == written
    assert _value(s, "caregateway_audit_commit_duration_seconds_count") >= 1
    assert _value(s, "caregateway_audit_commit_failures_total") == 0
    assert _value(s, "caregateway_draining") == 0

    # No identifier of a person, a user or a request, in a label or anywhere else.
    for scenario in SCENARIOS.values():
        if scenario.nhs_number:
            assert scenario.nhs_number not in text
    for candidate in re.findall(r"(?<!\d)\d{10}(?!\d)", text):
        assert not nhs_number.is_valid(candidate), "an NHS number in the metrics"
    for secret in (*SUBS, *request_ids, gp, "Y99999"):
        assert secret not in text

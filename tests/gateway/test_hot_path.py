"""The lean per-request path keeps its promises: fresh directives and grants on every read,
verified tokens remembered only within bounds, revocation checked every time, workers."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from consent import DirectiveKind
from gateway import schema
from gateway.audit.store import AuditStore
from gateway.auth import TokenVerifier, generate_signing_key, issue_token
from gateway.auth._verifier import InvalidToken, VerifiedTokens
from gateway.cli import cmd_serve
from gateway.db import make_engine
from gateway.embedded import free_port
from gateway.policy.hot_reads import HotReads
from gateway.policy.store import BreakGlassStore, ConsentStore
from simulators.population import SCENARIOS
from simulators.runner import RunningSources
from tests.consent.factories import objection_body
from tests.gateway.serve_procs import kill_if_running, serve_at, serve_workers, verified_chain
from tests.gateway.test_audit_events import T0
from tests.gateway.test_audit_store import event
from tests.gateway.test_serve_crash import (
    ISSUER,
    ROOT,
    _serve_env,
    _stored_request_ids,
    _wait_live,
)

NHS = SCENARIOS["both"].nhs_number or ""
SUB = "clinician-1"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'hot.db'}")
    await schema.upgrade(eng)
    yield eng
    await eng.dispose()


@pytest.mark.parametrize("driver", ["sqlite3 in the loop", "sqlalchemy core"])
async def test_every_read_sees_the_latest_directive_and_grant(
    engine: AsyncEngine, driver: str
) -> None:
    hot = HotReads(engine)
    if driver == "sqlalchemy core":
        hot._path = None  # the statement other databases (PostgreSQL) run
    consents, ledger = ConsentStore(engine), BreakGlassStore(engine)
    try:
        assert await hot.decision_inputs(NHS, SUB) == ((), None)

        stored = await consents.create(objection_body(NHS))
        directives, grant = await hot.decision_inputs(NHS, SUB)
        assert [(d.consent_id, d.kind, d.status) for d in directives] == [
            (stored["id"], DirectiveKind.OBJECTION, "active")
        ]
        assert grant is None

        # Withdrawn: the very next read has it (a new stored text, parsed afresh).
        await consents.update(stored["id"], {**stored, "status": "inactive"})
        directives, _ = await hot.decision_inputs(NHS, SUB)
        assert [d.status for d in directives] == ["inactive"]

        first = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
        await ledger.record(SUB, NHS, first, "collapsed in clinic")
        await ledger.record(SUB, NHS, first + timedelta(minutes=5), "again")
        await ledger.record("someone-else", NHS, first + timedelta(hours=1), "not theirs")
        _, grant = await hot.decision_inputs(NHS, SUB)
        assert grant == first + timedelta(minutes=5)
        assert grant == await ledger.last_grant(SUB, NHS)

        other = SCENARIOS["community_only"].nhs_number or ""
        assert await hot.decision_inputs(other, SUB) == ((), None)
    finally:
        hot.close()


async def test_revocation_lookup_reads_the_shared_table(engine: AsyncEngine) -> None:
    from gateway.smart.store import SmartStore

    hot = HotReads(engine)
    try:
        assert await hot.is_revoked("jti-1") is False
        await SmartStore(engine).revoke("jti-1", datetime.now(UTC) + timedelta(hours=1))
        assert await hot.is_revoked("jti-1") is True
        assert await hot.is_revoked("jti-2") is False
    finally:
        hot.close()


def test_verified_tokens_are_bounded_in_count_and_time() -> None:
    now = [1000.0]
    cache = VerifiedTokens(max_entries=2, max_age_s=300, clock=lambda: now[0])
    a, b, c = (VerifiedTokens.key(t) for t in ("token-a", "token-b", "token-c"))
    principal = object()
    cache.put(a, principal, exp=1010.0, revoked=None)  # type: ignore[arg-type]
    cache.put(b, principal, exp=5000.0, revoked=None)  # type: ignore[arg-type]
    assert cache.get(a) is not None and cache.get(b) is not None
    cache.put(c, principal, exp=5000.0, revoked=None)  # type: ignore[arg-type]
    assert cache.get(a) is None and len(cache) == 2  # the oldest went
    now[0] = 1299.0
    assert cache.get(b) is not None
    now[0] = 1300.0  # remembered for at most max_age_s, even before exp
    assert cache.get(b) is None
    assert a != VerifiedTokens.key("token-a ") and len(a) == 32  # a SHA-256, not the token


def _token(pem: bytes, issuer: str, audience: str, ttl_s: int = 600) -> str:
    return issue_token(
        pem, issuer=issuer, audience=audience, sub=SUB, role="R8000", org="F81001",
        purpose="TREAT", ttl_s=ttl_s,
    )  # fmt: skip


async def test_a_verified_token_is_verified_again_once_its_exp_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pem, jwk = generate_signing_key()
    verifier = TokenVerifier(issuer="urn:iss", audience="urn:aud", jwks={"keys": [jwk]})
    token = _token(pem, "urn:iss", "urn:aud", ttl_s=600)
    checked: list[str] = []
    real = verifier._averify_claims

    async def counting(t: str):
        checked.append(t)
        return await real(t)

    monkeypatch.setattr(verifier, "_averify_claims", counting)
    for _ in range(3):
        assert (await verifier.averify(token)).sub == SUB
    assert len(checked) == 1  # the signature was checked once
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    verifier._verified.clock = lambda: float(exp)  # the token's exp has come
    assert (await verifier.averify(token)).sub == SUB  # PyJWT's leeway still accepts it
    assert len(checked) == 2  # ... but only after verifying it again
    with pytest.raises(InvalidToken) as refused:
        await verifier.averify(token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"))
    assert refused.value.reason == "bad-signature"  # a different token is never a hit


async def test_revocation_is_checked_on_every_request_and_drops_the_cached_token() -> None:
    pem, jwk = generate_signing_key()
    own_pem, own_jwk = generate_signing_key()
    verifier = TokenVerifier(issuer="urn:external", audience="urn:aud", jwks={"keys": [jwk]})
    own = TokenVerifier(issuer="urn:own", audience="urn:aud", jwks={"keys": [own_jwk]})
    revoked: set[str] = set()
    asked: list[str] = []

    async def is_revoked(jti: str) -> bool:
        asked.append(jti)
        return jti in revoked

    verifier.trust_also(own, is_revoked)
    token = _token(own_pem, "urn:own", "urn:aud")
    first = await verifier.averify(token)
    second = await verifier.averify(token)  # from the cache, revocation asked again
    assert first == second and first.jti is not None
    assert asked == [first.jti, first.jti]
    revoked.add(first.jti)  # e.g. by another replica
    with pytest.raises(InvalidToken) as refused:
        await verifier.averify(token)
    assert refused.value.reason == "revoked"
    assert len(verifier._verified) == 0
    # A token of the configured issuer is never sent to the revocation check.
    assert (await verifier.averify(_token(pem, "urn:external", "urn:aud"))).sub == SUB
    assert len(asked) == 3


def test_serve_refuses_fewer_than_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_serve(argparse.Namespace(workers=0)) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
async def test_serve_with_two_workers_audits_every_answer_in_one_valid_chain(
    tmp_path: Path, running_sources: RunningSources
) -> None:
    at = serve_at()
    base_url = at.base_url
    number = SCENARIOS["both"].nhs_number or ""
    gp = running_sources.population.council_people_with(number)[0].gp
    assert gp is not None
    token = issue_token(
        at.private_pem, issuer=ISSUER, audience=base_url, sub="workers-test", role="R8000",
        org=gp.ods_code, purpose="TREAT",
    )  # fmt: skip
    proc = serve_workers(_serve_env(tmp_path, running_sources, at.public_jwk, at.port), 2)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await _wait_live(client, at.live_url, proc)
            assert len(_children(proc.pid)) == 2

            async def read(i: int) -> str:
                async with httpx.AsyncClient(timeout=10) as own:  # a connection each
                    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": f"w-{i}"}
                    r = await own.get(f"{base_url}/Patient/{number}/$everything", headers=headers)
                    assert r.status_code == 200 and r.json()["resourceType"] == "Bundle"
                    return r.headers["X-Request-ID"]

            released = await asyncio.gather(*(read(i) for i in range(24)))
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not [w for w in workers if Path(f"/proc/{w}").exists()]
    finally:
        kill_if_running(proc)
    stored, _ = _stored_request_ids(tmp_path / "gw.db")
    assert set(released) <= stored
    verified = await verified_chain(tmp_path / "gw.db")
    assert verified.ok and verified.checked >= len(released)


@pytest.mark.slow
async def test_serve_stops_when_a_worker_dies(
    tmp_path: Path, running_sources: RunningSources
) -> None:
    at = serve_at()
    proc = serve_workers(_serve_env(tmp_path, running_sources, at.public_jwk, at.port), 2)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await _wait_live(client, at.live_url, proc)
        first, second = sorted(_children(proc.pid))
        os.kill(first, signal.SIGKILL)
        assert proc.wait(timeout=30) == 1  # the process manager restarts the whole
        assert not Path(f"/proc/{second}").exists() or _zombie(second)
    finally:
        kill_if_running(proc)


def _zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"


async def test_serve_refuses_a_metrics_port_with_more_than_one_worker(
    tmp_path: Path, running_sources: RunningSources
) -> None:
    _, public_jwk = generate_signing_key()
    env = _serve_env(tmp_path, running_sources, public_jwk, free_port())
    env["CAREGW_METRICS_PORT"] = str(free_port())
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--workers", "2"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert b"CAREGW_METRICS_PORT cannot be used with --workers above 1" in done.stderr


async def test_audit_rows_of_the_stdlib_commit_are_the_engine_path_rows(tmp_path: Path) -> None:
    """Two stores on one file and one chain, one committing through the stdlib driver in its
    thread and one through the engine (as a store on another database would): one valid
    chain, identical column representations (a date search finds both), durable on disk."""
    db = tmp_path / "audit.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    await schema.upgrade(engine)
    fast, core = AuditStore(engine), AuditStore(engine)
    assert fast._sqlite is not None
    core._sqlite = None  # the engine path
    try:
        ids: list[tuple[str, str]] = []
        for i in range(6):
            store, via = (fast, "stdlib") if i % 2 == 0 else (core, "engine")
            ids.append((via, await store.append(event(user_sub=f"{via}-{i}"))))
        many = await asyncio.gather(*(fast.append(event(user_sub=f"batch-{i}")) for i in range(20)))
        verified = await fast.verify()
        assert verified.ok and verified.checked == 26
        with sqlite3.connect(db) as conn:  # what is on disk, read by a fresh connection
            recorded = dict(conn.execute("SELECT id, recorded FROM audit_event"))
        by_path = {via: recorded[i] for via, i in ids}
        assert len(recorded) == 26 and all(isinstance(v, str) for v in recorded.values())
        assert len(by_path["stdlib"]) == len(by_path["engine"])  # the same text form
        found = await core.search(date_ge=T0 - timedelta(days=1), count=100)
        assert {e["id"] for e in found} == {i for _, i in ids} | set(many)
    finally:
        await fast.close()
        await core.close()
        await engine.dispose()

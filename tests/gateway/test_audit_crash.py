"""Kill a process mid-load: every event whose ``append`` returned is on disk, chain whole.

A child process appends with 16 concurrent producers and prints each event id once its
``append`` has returned (the moment the HTTP layer would release data). The test kills it
with SIGKILL (by its own PID) mid-stream, then reads the SQLite file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gateway.audit.store import AuditStore
from gateway.db import make_engine

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, sys
from datetime import UTC, datetime
from gateway.audit.events import AuditRecord, build_audit_event
from gateway.audit.store import AuditStore
from gateway.db import create_schema, make_engine

async def main(path):
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await create_schema(engine)
    store = AuditStore(engine)
    await store.start()
    print("ready", flush=True)

    async def producer(p):
        n = 0
        while True:
            rec = AuditRecord(subtype="read", action="R", outcome="0",
                              recorded=datetime.now(UTC), user_sub=f"u{p}",
                              patient_nhs="9990000018", request_id=f"{p}-{n}")
            event_id = await store.append(build_audit_event(rec, "http://127.0.0.1/fhir"))
            sys.stdout.write(event_id + "\\n")
            sys.stdout.flush()
            n += 1

    await asyncio.gather(*(producer(p) for p in range(16)))

asyncio.run(main(sys.argv[1]))
"""


def test_killed_writer_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[str] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr
        deadline = time.monotonic() + 60
        while len(acknowledged) < 400 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged.append(line.strip())
        proc.kill()  # SIGKILL mid-load: no close(), no drain
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        # Lines already printed before the kill were acknowledged too.
        assert proc.stdout is not None
        acknowledged.extend(line.strip() for line in proc.stdout if line.strip())
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()

    assert len(acknowledged) >= 400
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM audit_event")}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged events lost"

    async def verify() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        try:
            result = await AuditStore(engine).verify()
        finally:
            await engine.dispose()
        assert result.ok and result.checked == len(stored)

    asyncio.run(verify())

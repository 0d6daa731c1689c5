"""``caregateway audit verify`` exit codes: 0 whole, 1 broken (and where), 2 unreadable."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from pathlib import Path

from gateway.audit.cli import EXIT_BROKEN, EXIT_OK, EXIT_UNREADABLE, verify_main
from gateway.audit.events import build_audit_event
from gateway.audit.store import AuditStore
from gateway.db import create_schema, make_engine
from tests.gateway.test_audit_events import BASE, make_record


def url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _fill(path: Path, n: int) -> None:
    engine = make_engine(url(path))
    await create_schema(engine)
    store = AuditStore(engine)
    await asyncio.gather(*(store.append(build_audit_event(make_record(), BASE)) for _ in range(n)))
    await store.close()
    await engine.dispose()


def run(database_url: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = verify_main(database_url, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_whole_chain_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    asyncio.run(_fill(db, 6))
    code, out, _ = run(url(db))
    assert code == EXIT_OK == 0
    assert "ok, 6 events" in out


def test_edited_row_exits_1_naming_the_seq(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    asyncio.run(_fill(db, 6))
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE audit_event SET resource = replace(resource, 'gp-1', 'gp-9') WHERE seq = 5"
        )
    code, out, _ = run(url(db))
    assert code == EXIT_BROKEN == 1
    assert "seq 5" in out and "BROKEN" in out


def test_unreadable_store_exits_2(tmp_path: Path) -> None:
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not an SQLite database" * 100)
    code, _, err = run(url(not_a_db))
    assert code == EXIT_UNREADABLE == 2
    assert "cannot read" in err and str(tmp_path) not in err

    assert run(url(tmp_path / "missing-dir" / "audit.db"))[0] == EXIT_UNREADABLE
    assert run("postgresql+asyncpg://audit:secret@127.0.0.1:1/none")[0] == EXIT_UNREADABLE


def test_a_missing_database_file_is_not_created_nor_reported_whole(tmp_path: Path) -> None:
    """A mistyped CAREGW_DATABASE_URL must not verify an empty new database as 'ok'."""
    missing = tmp_path / "no-such-audit.db"
    code, _, err = run(url(missing))
    assert code == EXIT_UNREADABLE
    assert "no database file at CAREGW_DATABASE_URL" in err
    assert not missing.exists()

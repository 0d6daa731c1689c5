"""Schema migrations (``gateway/migrations``, :mod:`gateway.schema`) on SQLite and PostgreSQL.

What must hold: an empty database is upgraded to head; a database made by the code from
before migrations (``create_all``, no ``alembic_version``) is adopted with its rows intact;
after upgrading, the tables are exactly what the models declare (autogenerate finds no
difference), so no table can be added without its migration; ``serve`` refuses an
out-of-date schema unless told to upgrade; ``db current`` reads without creating anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import schema
from gateway.db import Base, make_engine

TABLES = {"consent_directive", "break_glass_grant", "audit_event", "audit_checkpoint"}
# What create_all made before migrations existed (the baseline revision's tables).
BEFORE_MIGRATIONS = {*TABLES, "audit_review"}


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def empty_db(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """An engine on a new, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    else:
        server = request.getfixturevalue("postgres_url")
        name = f"migr_{uuid.uuid4().hex[:12]}"
        admin = make_engine(server, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        await engine.dispose()


def _differences(sync: Connection) -> list[object]:
    opts = {"compare_type": True, "include_name": schema.include_name}
    context = MigrationContext.configure(sync, opts=opts)
    return list(compare_metadata(context, schema.target_metadata()))


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def _made_with_only(engine: AsyncEngine, names: set[str]) -> MetaData:
    """The database as ``create_all`` made it when only the tables ``names`` existed (no
    ``alembic_version``): what code from before a migration left behind."""
    metadata = schema.target_metadata()
    older = [t for t in metadata.sorted_tables if t.name in names]
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: metadata.create_all(c, tables=older))
    return metadata


async def test_an_empty_database_is_upgraded_to_exactly_the_declared_schema(
    empty_db: tuple[str, AsyncEngine],
) -> None:
    _, engine = empty_db
    before = await schema.state(engine)
    assert before.current is None and not before.up_to_date
    after = await schema.upgrade(engine)
    assert after.up_to_date and after.current == schema.head_revision()
    assert TABLES <= await _tables(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_a_database_made_before_migrations_is_adopted_with_its_rows(
    empty_db: tuple[str, AsyncEngine],
) -> None:
    _, engine = empty_db
    metadata = await _made_with_only(engine, BEFORE_MIGRATIONS)  # create_schema's tables
    async with engine.begin() as conn:
        await conn.execute(
            metadata.tables["consent_directive"]
            .insert()
            .values(
                id="c-1",
                nhs_number="9991000003",
                status="active",
                version=1,
                resource="{}",
                created=datetime.now(UTC),
                updated=datetime.now(UTC),
            )
        )
    assert (await schema.state(engine)).current is None
    assert (await schema.upgrade(engine)).up_to_date
    async with engine.connect() as conn:
        ids = (await conn.execute(text("SELECT id FROM consent_directive"))).scalars().all()
        assert ids == ["c-1"]
        assert await conn.run_sync(_differences) == []


async def test_a_trail_from_before_archiving_gains_the_checkpoint_table(
    empty_db: tuple[str, AsyncEngine],
) -> None:
    _, engine = empty_db
    await _made_with_only(engine, BEFORE_MIGRATIONS - {"audit_checkpoint"})
    assert "audit_checkpoint" not in await _tables(engine)
    await schema.upgrade(engine)
    assert "audit_checkpoint" in await _tables(engine)


async def test_serving_refuses_a_schema_that_is_not_at_head_unless_told_to_upgrade(
    empty_db: tuple[str, AsyncEngine],
) -> None:
    _, engine = empty_db
    with pytest.raises(schema.SchemaOutOfDate, match="caregateway db upgrade"):
        await schema.prepare(engine, auto_upgrade=False)
    assert (await schema.state(engine)).current is None  # the check changed nothing
    assert (await schema.prepare(engine, auto_upgrade=True)).up_to_date
    assert (await schema.prepare(engine, auto_upgrade=False)).up_to_date


def test_every_declared_table_is_created_by_a_migration() -> None:
    declared = set(Base.metadata.tables) | set(schema.target_metadata().tables)
    assert TABLES <= declared
    # The upgrade tests compare every declared table with the migrated database; this
    # makes sure the declared set is the whole gateway's, not only what a test imported.
    assert {t for t in declared if not t.startswith("alembic")} == set(
        schema.target_metadata().tables
    )


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREGW_")}
    return {**env, "CAREGW_DATABASE_URL": url, **extra}


async def test_db_current_and_upgrade_from_the_command_line(
    empty_db: tuple[str, AsyncEngine], tmp_path: Path
) -> None:
    url, engine = empty_db
    assert (await schema.state(engine)).current is None  # (this opens, so creates, SQLite's file)
    behind = _cli("db", "current", env=_env(url))
    assert behind.returncode == 1, behind.stderr
    assert behind.stdout.strip() == f"none; head is {schema.head_revision()}"
    upgraded = _cli("db", "upgrade", env=_env(url))
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"{schema.head_revision()} (head)"
    assert _cli("db", "current", env=_env(url)).returncode == 0


def test_db_current_never_creates_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = _cli("db", "current", env=_env(f"sqlite+aiosqlite:///{missing}"))
    assert result.returncode == 2
    assert "no such SQLite file" in result.stderr
    assert not missing.exists()


def test_serve_stops_on_an_out_of_date_postgresql_schema_naming_the_command(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: no upgrade on start by default (replicas start together); a message."""
    from gateway.auth import generate_signing_key
    from gateway.cache import generate_index_key, generate_key_entry

    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "- {name: socialcare, kind: social-care-api, base_url: 'http://127.0.0.1:9', "
        "organisation: LA883, api_key: test}\n"
    )
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [generate_signing_key()[1]]}))
    name = f"migr_{uuid.uuid4().hex[:12]}"
    subprocess.run(  # a new empty database on the shared test server
        [sys.executable, "-c", _CREATE_DB, postgres_url, name], check=True, timeout=60
    )
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    env = _env(
        url,
        CAREGW_SOURCES_FILE=str(sources),
        CAREGW_AUTH_ISSUER="urn:test",
        CAREGW_AUTH_JWKS_FILE=str(jwks),
        CAREGW_CACHE_KEYS=generate_key_entry(),
        CAREGW_CACHE_INDEX_KEY=generate_index_key(),
        CAREGW_PORT="9",
    )
    result = _cli("serve", env=env)
    assert result.returncode == 2
    assert "CAREGW_DATABASE_URL" in result.stderr and "caregateway db upgrade" in result.stderr
    assert "CAREGW_DB_AUTO_UPGRADE" in result.stderr


_CREATE_DB = """
import asyncio, sys
from sqlalchemy import text
from gateway.db import make_engine
async def main():
    engine = make_engine(sys.argv[1], isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{sys.argv[2]}"'))
    await engine.dispose()
asyncio.run(main())
"""

"""The gateway's SQL database: one declarative ``Base``, one engine factory, schema creation.

Consent directives and the audit trail live here. Tables are declared on :class:`Base` by the
modules that own them (``gateway.audit.store`` declares ``audit_event``); importing such a
module registers its table, and :func:`create_schema` creates every registered table.

SQLite (the embedded default) is opened in WAL mode with ``synchronous=FULL``: a commit is on
disk when it returns, which is what "durable before data leaves" needs. PostgreSQL
(``postgresql+asyncpg://``) is durable on commit by default.

    engine = make_engine("sqlite+aiosqlite:///./caregateway.db")
    await create_schema(engine)
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        ...
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    """Declarative base for every gateway table."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_is_file(url: str) -> bool:
    database = make_url(url).database
    return (
        bool(database) and database != ":memory:" and not str(database).startswith("file::memory:")
    )


def missing_sqlite_file(url: str) -> bool:
    """Whether ``url`` names an SQLite file that does not exist (opening it would create an
    empty database: right for ``serve``, wrong for a tool that reads an existing trail)."""
    if not (is_sqlite(url) and _sqlite_is_file(url)):
        return False
    database = str(make_url(url).database)
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return not Path(database).is_file()


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url``; SQLite files get WAL, ``synchronous=FULL`` and a busy timeout.

    Extra keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine`.
    """
    if is_sqlite(url):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        wal = _sqlite_is_file(url)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            try:
                cursor = dbapi_conn.cursor()
                try:
                    if wal:
                        cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=FULL")
                    cursor.execute("PRAGMA foreign_keys=ON")
                    cursor.execute("PRAGMA busy_timeout=30000")
                finally:
                    cursor.close()
            except BaseException:
                # Not a database (or unreadable): close it here, or the driver's worker
                # thread outlives the event loop.
                dbapi_conn.close()
                raise

    return engine


async def create_schema(engine: AsyncEngine) -> None:
    """Create every table registered on :class:`Base` that does not exist yet (idempotent).

    For tests of one store on a scratch database only: a database the gateway serves from is
    made and changed by the migrations (:mod:`gateway.schema`), and one made here has no
    migration revision, so a later upgrade would try to create its tables again.
    """
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (``expire_on_commit=False``)."""
    return async_sessionmaker(engine, expire_on_commit=False)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

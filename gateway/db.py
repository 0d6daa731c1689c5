"""The gateway's SQL database: one declarative ``Base``, one engine factory, schema creation.

Consent directives and the audit trail live here. Tables are declared on :class:`Base` by the
modules that own them (``gateway.audit.store`` declares ``audit_event``); importing such a
module registers its table, and :func:`create_schema` creates every registered table.

SQLite (the embedded default) is opened in WAL mode with ``synchronous=FULL``: a commit is on
disk when it returns, which is what "durable before data leaves" needs. PostgreSQL
(``postgresql+asyncpg://``) is durable on commit by default.

Every engine is made with ``hide_parameters=True``: SQLAlchemy then keeps statement parameters
(an NHS number, a user's ``sub``, a break-glass reason) out of its exceptions' text, so a
failed statement cannot carry them into a log line or a traceback.
:func:`database_unavailable` says whether an exception means "the database cannot be used
now" (the error boundary answers those with ``503``); :func:`describe_db_error` is what may
be logged about one: its class and SQLSTATE, never its message.

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
from sqlalchemy import exc as sa_exc
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


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The path of ``engine``'s SQLite file, for code that opens it with the stdlib driver;
    ``None`` for any other database, an in-memory one or a ``file:`` URI."""
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if not database or database == ":memory:" or "mode=memory" in database:
        return None
    if database.startswith("file:"):
        return None  # URI forms: leave them to the engine
    return database


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
    kwargs.setdefault("hide_parameters", True)
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


def _driver_error_types() -> tuple[type[BaseException], ...]:
    """asyncpg's "the connection is gone" errors, when asyncpg is installed (``postgres``)."""
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - the postgres extra is not installed
        return ()
    return (asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa_exc.DBAPIError,  # OperationalError, InterfaceError and every driver error
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no pooled connection free in time
    sa_exc.ResourceClosedError,
    OSError,  # connect refused, reset, unreachable
    TimeoutError,
    *_driver_error_types(),
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the database cannot serve us now.

    Any error from the driver counts, whatever its SQLSTATE: a statement the database refused
    (read-only, a value it would not take) leaves the request as undone as a refused
    connection, and the answer to the caller is the same ``503`` (nothing was released or
    changed; the log names the class and SQLSTATE for the operator).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _UNAVAILABLE):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


def describe_db_error(exc: BaseException) -> dict[str, str]:
    """What may be logged about a database failure: class names and SQLSTATE, nothing else.

    ``str(exc)`` is never used: drivers put statement text, parameters and row values in it.
    """
    info = {"error": type(exc).__name__}
    seen: set[int] = set()
    current: BaseException | None = exc.__cause__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        info.setdefault("cause", type(current).__name__)
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            info.setdefault("driver_error", type(orig).__name__)
        for holder in (orig, current):
            sqlstate = getattr(holder, "sqlstate", None) or getattr(holder, "pgcode", None)
            if isinstance(sqlstate, str) and sqlstate and "sqlstate" not in info:
                info["sqlstate"] = sqlstate
        current = current.__cause__
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        info.setdefault("driver_error", type(orig).__name__)
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate:
            info.setdefault("sqlstate", sqlstate)
    return info


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

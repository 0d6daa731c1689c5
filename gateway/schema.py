"""The database schema's versions: Alembic migrations under ``gateway/migrations``.

Every table the gateway owns is created and changed by a migration, never by
``create_all`` in a running service, so replicas of two releases can share one database and
an operator decides when the schema changes::

    caregateway db upgrade      # bring the database named by CAREGW_DATABASE_URL to head
    caregateway db current      # print its revision, and whether that is head

``serve`` upgrades on start only when told to (``CAREGW_DB_AUTO_UPGRADE``; default on for
SQLite, where one process owns the file, off for PostgreSQL, where several replicas start at
once and should not race to migrate); otherwise it checks and refuses to start on a schema
that is not at head, saying what to run. A database made before migrations (tables, no
``alembic_version``) is adopted by the baseline revision, which creates only missing tables.

Alembic runs on the sync face of one connection of the gateway's async engine
(``AsyncConnection.run_sync``), so the URL, the driver and the SQLite pragmas are the
gateway's own (:func:`gateway.db.make_engine`).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import is_audit_partition
from gateway.db import Base

# Alembic narrates each plugin it loads and each step at INFO; the gateway's own log says what
# matters (the CLI prints the revision), so only its warnings and errors are kept.
logging.getLogger("alembic").setLevel(logging.WARNING)


class SchemaOutOfDate(Exception):
    """The database is not at the revision this code needs; the message says what to run."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None  # None: no migration has run (empty, or made before migrations)
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def target_metadata() -> MetaData:
    """Every table the gateway declares (importing the modules registers them on ``Base``)."""
    import gateway.audit  # noqa: F401  (audit_event, audit_checkpoint, audit_review)
    import gateway.joint.store  # noqa: F401
    import gateway.policy.store  # noqa: F401
    import gateway.smart.store  # noqa: F401

    return Base.metadata


def include_name(name: str | None, type_: str, parent_names: MutableMapping[Any, Any]) -> bool:
    """What Alembic compares with the models: not the audit trail's partitions on PostgreSQL
    (``audit_event_YYYY_MM``, ``audit_event_default``: made at run time, declared by none)."""
    return not (type_ == "table" and name is not None and is_audit_partition(name))


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("gateway") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "gateway/migrations has no revision"
    return head


async def state(engine: AsyncEngine) -> SchemaState:
    """Where the database is against this code's head; reads only, creates nothing."""

    def _current(sync: Connection) -> str | None:
        return MigrationContext.configure(sync).get_current_revision()

    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    return SchemaState(current=current, head=head_revision())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> SchemaState:
    """Run every migration up to ``revision`` in one transaction (PostgreSQL and SQLite both
    have transactional DDL): a failed migration leaves the schema as it was."""

    def _upgrade(sync: Connection) -> None:
        command.upgrade(_config(sync), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    return await state(engine)


async def require_current(engine: AsyncEngine) -> SchemaState:
    """The schema's state, or :class:`SchemaOutOfDate` naming the command that fixes it."""
    found = await state(engine)
    if found.up_to_date:
        return found
    at = found.current or "none (an empty database, or one made before migrations)"
    raise SchemaOutOfDate(
        f"The database schema is at revision {at}; this gateway needs {found.head}. "
        "Run `caregateway db upgrade` (once, from one machine), or set "
        "CAREGW_DB_AUTO_UPGRADE=true to let serve upgrade on start."
    )


async def prepare(engine: AsyncEngine, *, auto_upgrade: bool) -> SchemaState:
    """What ``serve`` does on start: upgrade when allowed, else insist on head."""
    if auto_upgrade:
        return await upgrade(engine)
    return await require_current(engine)

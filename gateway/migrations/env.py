"""Alembic's environment for the gateway's schema: always run through :mod:`gateway.schema`.

The gateway's engine is async; :mod:`gateway.schema` opens a connection and hands its sync
face to Alembic in ``config.attributes["connection"]``, so this file never builds an engine
of its own and never reads a URL (which may hold a password) from a file.
"""

from __future__ import annotations

from alembic import context

from gateway.schema import include_name, target_metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError("run migrations with `caregateway db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    compare_type=True,
    include_name=include_name,  # the audit trail's partitions are made at run time
)
with context.begin_transaction():
    context.run_migrations()

"""Databases the Consent tests start from, said once: a schema with the consent tables
emptied, and the tables emptied again after a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import create_schema, make_engine


async def delete_rows(engine: AsyncEngine, *tables: Any) -> None:
    """Every row of each of ``tables`` (ORM row classes) deleted, in one transaction."""
    async with engine.begin() as conn:
        for table in tables:
            await conn.execute(delete(table))


@asynccontextmanager
async def emptied_engine(url: str, *tables: Any) -> AsyncIterator[AsyncEngine]:
    """An engine on the database at ``url``: its schema created, ``tables`` emptied of what an
    earlier test left (the PostgreSQL database is the session's); disposed afterwards."""
    engine = make_engine(url)
    await create_schema(engine)
    await delete_rows(engine, *tables)
    yield engine
    await engine.dispose()

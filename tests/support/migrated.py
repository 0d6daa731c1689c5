"""SQLite databases already at the schema head, for gateways that start on a fresh one.

Every test gateway starts on a new SQLite file. Running the Alembic migrations into each
one repeats the same work per gateway; instead they run once per test run into a template
file, and each gateway gets a byte copy of it. The gateway still runs its own start-up
check (``schema.prepare`` with ``auto_upgrade``: at head it upgrades nothing), so a copy that
were not at head would still be brought there, or fail, as a real database would.

The migrations' own tests (``tests/gateway/test_migrations.py``) never use this: they run
real upgrades from empty and from each revision.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from gateway import schema
from gateway.db import make_engine

_template: Path | None = None


async def _make_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="caregw-template-"))
    atexit.register(shutil.rmtree, folder, True)
    building = folder / "building.db"
    engine = make_engine(f"sqlite+aiosqlite:///{building}")
    try:
        at = await schema.upgrade(engine)
    finally:
        await engine.dispose()  # the last connection checkpoints the WAL into the file
    assert at.up_to_date, at
    assert not Path(f"{building}-wal").exists(), "the template's WAL was not checkpointed"
    template = folder / "template.db"
    os.replace(building, template)
    return template


async def migrated_sqlite_url(path: Path) -> str:
    """Write a database at the schema head to ``path``; its URL for the gateway."""
    global _template
    if _template is None:  # two gateways starting at once may each build one: either serves
        _template = await _make_template()
    shutil.copyfile(_template, path)
    return f"sqlite+aiosqlite:///{path}"

"""The group-commit writer's transaction on an SQLite file, on the stdlib driver in one thread.

Through SQLAlchemy on aiosqlite one batch cost about ten hops to aiosqlite's thread (begin,
the write lock, the head, the insert, the cursors' closes, the commit), each a queue put and
a semaphore post with the GIL held, plus statement processing per row: at 32 concurrent
reads the writer was a sixth of the gateway's CPU. Here the whole transaction is one call in
a thread of its own, on a connection of its own:

1. ``BEGIN IMMEDIATE``: the database write lock, before the head is read (the same lock the
   engine path takes with its no-op update), so two processes on one file never fork a chain;
2. the chain head (or, for an empty chain, its newest checkpoint, or genesis);
3. the batch sealed by the writer's own ``seal`` (an abandoned event in its withdrawn form),
   then linked: ``hash = SHA-256(prev_hash || stored bytes)``, exactly as
   :mod:`gateway.audit.rows` defines it;
4. one ``executemany`` insert and ``COMMIT``, durable on return: the connection runs with
   ``synchronous=FULL`` in WAL mode, as every connection of :func:`gateway.db.make_engine`.

The connection is kept open between batches, but never onto a file that is no longer the
one at its path (removed or replaced: checked by inode before each batch), and it never
creates the file: a database that vanished fails closed, as a new engine connection would.

Column values go through the table's own bind processors (a ``recorded`` is stored as the
engine would store it), so searches, verification and the archive read these rows like any
other. Driver errors are raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``,
``DatabaseError``), so the writer's retry, split and fail-closed rules apply unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.rows import GENESIS_HASH, Prepared, audit_event, link_hash
from gateway.db import sqlite_file

_COLUMNS: Final = tuple(c.name for c in audit_event.columns)
_INSERT: Final = (
    f"INSERT INTO audit_event ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_HEAD: Final = "SELECT seq, hash FROM audit_event WHERE chain_id = ? ORDER BY seq DESC LIMIT 1"
_CHECKPOINT: Final = (
    "SELECT seq, hash FROM audit_checkpoint WHERE chain_id = ? ORDER BY seq DESC LIMIT 1"
)

Seal = Callable[[], list[Prepared]]


def _as_sqlalchemy(exc: sqlite3.Error, statement: str) -> sa_exc.DBAPIError:
    if isinstance(exc, sqlite3.IntegrityError):
        return sa_exc.IntegrityError(statement, None, exc)
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError):
        return sa_exc.OperationalError(statement, None, exc)
    return sa_exc.DatabaseError(statement, None, exc)


class SQLiteCommitter:
    """Commit linked batches of one store to its SQLite file (see the module docstring)."""

    def __init__(self, path: str, engine: AsyncEngine) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-commit")
        self._conn: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # (device, inode) of the file opened
        processors = {c.name: c.type.bind_processor(engine.dialect) for c in audit_event.columns}
        self._processors: tuple[tuple[str, Any], ...] = tuple(
            (name, processors[name]) for name in _COLUMNS
        )

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> SQLiteCommitter | None:
        """A committer for ``engine``'s SQLite file; ``None`` for any other database."""
        path = sqlite_file(engine)
        return None if path is None else cls(path, engine)

    async def commit(self, chain_id: str, seal: Seal) -> int:
        """Link what ``seal()`` gives onto ``chain_id``'s head and commit it; the rows
        written. ``seal`` runs in the commit thread while the write lock is held."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._commit, chain_id, seal)

    def close(self) -> None:
        """Close the connection after any commit still running; the thread then ends."""
        self._executor.submit(self._close)
        self._executor.shutdown(wait=False)

    # --- in the commit thread -------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._identity() != self._file:
            # The file was removed or replaced under the open connection: committing to
            # the old inode would be durable nowhere anyone reads. Reopen, which fails
            # closed if the path is gone.
            self._close()
        if self._conn is None:
            if not os.path.exists(self.path):  # connect() would create an empty database
                raise sqlite3.OperationalError("unable to open database file")
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA busy_timeout=30000")
            except BaseException:
                conn.close()
                raise
            self._conn, self._file = conn, self._identity()
        return self._conn

    def _identity(self) -> tuple[int, int] | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _commit(self, chain_id: str, seal: Seal) -> int:
        statement = "BEGIN IMMEDIATE"
        try:
            conn = self._connection()
            conn.execute(statement)
            try:
                statement = _HEAD
                head = conn.execute(_HEAD, (chain_id,)).fetchone()
                if head is None:
                    statement = _CHECKPOINT
                    head = conn.execute(_CHECKPOINT, (chain_id,)).fetchone()
                seq, prev = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS_HASH)
                rows = []
                for prepared in seal():
                    seq += 1
                    digest = link_hash(prev, prepared.stored)
                    rows.append(self._row(prepared, chain_id, seq, prev, digest))
                    prev = digest
                statement = _INSERT
                conn.executemany(_INSERT, rows)
                statement = "COMMIT"
                conn.execute(statement)
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if not isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
                self._close()  # a fresh connection for the next batch
            raise _as_sqlalchemy(exc, statement) from exc
        return len(rows)

    def _row(
        self, prepared: Prepared, chain_id: str, seq: int, prev: str, digest: str
    ) -> tuple[Any, ...]:
        values: dict[str, Any] = {
            **prepared.columns,
            "id": prepared.id,
            "chain_id": chain_id,
            "seq": seq,
            "resource": prepared.stored.decode("utf-8"),
            "prev_hash": prev,
            "hash": digest,
        }
        return tuple(
            values[name] if process is None else process(values[name])
            for name, process in self._processors
        )

"""The audit trail's group-commit writer: the write half of :class:`~gateway.audit.AuditStore`.

See :mod:`gateway.audit.store` for what it promises (durable before ``append`` returns, group
commit, events of callers that gave up withdrawn or corrected, one bad event failing alone).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog
from sqlalchemy import false, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit import events as ev
from gateway.audit.commit_failures import seq_taken, unreachable
from gateway.audit.deadlines import Deadlines
from gateway.audit.errors import AuditEventRejected, AuditUnavailable
from gateway.audit.partitions import PartitionKeeper
from gateway.audit.rows import (
    DEFAULT_CHAIN,
    Prepared,
    audit_event,
    chain_lock_key,
    chain_start,
    link_hash,
    loads_event,
    prepare,
)
from gateway.audit.sqlite_commit import SQLiteCommitter
from gateway.db import describe_db_error

log = structlog.get_logger("gateway.audit.store")

_LINK_RETRIES: Final = 5


@dataclass(slots=True, eq=False)
class _Item:
    """One queued event and its caller's future.

    ``abandoned``: the caller stopped waiting and answered 503. ``sealed``: the event as built
    is in the transaction being committed (the writer decided so while holding the lock).
    """

    prepared: Prepared
    future: asyncio.Future[str]
    abandoned: bool = False
    sealed: bool = False


_STOP: Final = None  # the queue's stop marker


class GroupCommitWriter:
    """Append to the audit trail; :class:`~gateway.audit.AuditStore` adds reading.

    ``group_commit=False`` makes :meth:`append` commit each event in its own transaction
    (what :meth:`append_one_by_one` always does); the benchmark compares the two.
    ``transactions`` counts committed write transactions, ``events_written`` the rows.
    ``timeout_s`` bounds how long :meth:`append` waits for its commit (a hung database then
    gives :class:`AuditUnavailable`, and the request fails closed with ``503``); what is
    committed later for that event says ``503`` (see the module docstring).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        chain_id: str = DEFAULT_CHAIN,
        group_commit: bool = True,
        max_batch: int = 512,
        timeout_s: float | None = 15.0,
    ) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.group_commit = group_commit
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.transactions = 0
        self.events_written = 0
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._one_lock = asyncio.Lock()
        self._inflight: list[_Item] = []
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._deadlines: Deadlines[_Item] = Deadlines()
        self._busy = 0  # events queued or being committed, corrections included
        self._partitions = PartitionKeeper(engine)  # PostgreSQL: next month's, ahead of time
        self._sqlite = SQLiteCommitter.for_engine(engine)  # an SQLite file: the stdlib driver
        # called after each commit with (events, seconds, committed): the metrics (gateway.ops)
        self.on_commit: Callable[[int, float, bool], None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the group-commit writer task (idempotent)."""
        if self._closed:
            raise AuditUnavailable("The audit store is closed.")
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._run_writer(), name="audit-writer")

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop taking events, commit everything already queued, stop the writer.

        With ``timeout_s``, a writer still busy after that long is cancelled and the callers
        it was serving get :class:`AuditUnavailable`.
        """
        self._closed = True
        await self._partitions.close()
        self._deadlines.close()  # what is still waiting is answered or refused below
        writer, self._writer = self._writer, None
        pending: set[asyncio.Task[None]] = set(self._background)
        if writer is not None and not writer.done():
            self._queue.put_nowait(_STOP)
            pending.add(writer)
        if not pending:
            self._close_sqlite()
            return
        _, late = await asyncio.wait(pending, timeout=timeout_s)
        if late:
            # Do not wait for a hung database: tell every waiting caller now, then let the
            # stuck tasks end in the background (cancelled).
            for item in self._inflight:
                if not item.future.done():
                    item.abandoned = True
                    item.future.set_exception(AuditUnavailable("The audit store is closed."))
            self._refuse_queued()
            for task in late:
                task.cancel()
        self._close_sqlite()

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()  # after a commit still running in its thread, if any

    # --- writing -------------------------------------------------------------------------

    async def append(self, event: dict[str, Any] | Prepared) -> str:
        """Store ``event`` durably and return its id; :class:`AuditUnavailable` if impossible.

        ``event`` is an AuditEvent, or one :func:`~gateway.audit.rows.prepare` (or a
        template, :mod:`gateway.audit.templates`) has made ready already.

        On :class:`AuditUnavailable` the caller must answer ``503`` and release nothing: a
        caller that timed out is taken at its word (see the module docstring).
        """
        if not self.group_commit:
            return await self.append_one_by_one(event)
        if self._closed:
            raise AuditUnavailable("The audit store is closed.")
        item = self._item(event)
        if self._writer is None or self._writer.done():
            await self.start()
        self._enqueue(item)
        return await self._wait(item)

    async def append_one_by_one(self, event: dict[str, Any] | Prepared) -> str:
        """Store ``event`` in a transaction of its own (no batching); durable on return."""
        if self._closed:
            raise AuditUnavailable("The audit store is closed.")
        item = self._item(event)
        # The commit runs in its own task so that a timed-out (or cancelled) caller returns at
        # once instead of waiting for a stuck driver call to unwind.
        self._track(1)
        task = asyncio.create_task(self._commit_alone(item))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_observe)
        return await self._wait(item)

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Return once nothing is queued or being committed (corrections included)."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    @staticmethod
    def _item(event: dict[str, Any] | Prepared) -> _Item:
        prepared = event if isinstance(event, Prepared) else prepare(event)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_observe)
        return _Item(prepared, future)

    def _track(self, count: int) -> None:
        self._busy += count
        if self._busy > 0:
            self._idle.clear()
        else:
            self._busy = 0
            self._idle.set()

    def _enqueue(self, item: _Item) -> None:
        self._track(1)
        self._queue.put_nowait(item)

    async def _wait(self, item: _Item) -> str:
        """The caller's wait for its commit, at most :attr:`timeout_s` (:class:`Deadlines`:
        one timer for every waiting caller). A caller cancelled here cancels only its own
        future, which the writer then leaves alone."""
        if self.timeout_s is not None:
            self._deadlines.watch(item, self.timeout_s)
        try:
            return await item.future
        except asyncio.CancelledError:
            self._abandon(item)
            raise

    def _abandon(self, item: _Item) -> None:
        """The caller stops waiting: its event must end up saying 503."""
        item.abandoned = True
        future = item.future
        if future.done() and not future.cancelled() and future.exception() is None:
            # Committed as built in the instant the wait ran out: record the 503 as well.
            self._correct(item)

    def _correct(self, item: _Item) -> None:
        """Queue the event that records the 503 of an event already committed as built."""
        try:
            original = loads_event(item.prepared.stored)
            correction = self._item(ev.withdrawn(original, corrects=item.prepared.id))
        except (AuditEventRejected, ValueError):  # pragma: no cover - built from a stored one
            return
        if self._closed:
            log.error("audit_correction_lost", event_id=item.prepared.id)
            return
        if not self.group_commit:
            self._track(1)
            task = asyncio.create_task(self._commit_alone(correction))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._run_writer(), name="audit-writer")
        self._enqueue(correction)

    async def _commit_alone(self, item: _Item) -> None:
        try:
            async with self._one_lock:
                await self._commit_batch([item])
        finally:
            self._track(-1)

    async def _run_writer(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch: list[_Item] = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                await self._commit_batch(batch)
            finally:
                self._track(-len(batch))
        self._refuse_queued()

    def _refuse_queued(self) -> None:
        """Anything still queued once the writer has stopped is refused, never left waiting."""
        while not self._queue.empty():
            left = self._queue.get_nowait()
            if left is not None:
                self._track(-1)
                if not left.future.done():
                    left.abandoned = True
                    left.future.set_exception(AuditUnavailable("The audit store is closed."))

    async def _commit_batch(self, batch: list[_Item]) -> None:
        self._inflight = batch
        started = time.perf_counter()
        try:
            await self._commit(batch)
        except BaseException as exc:
            if self.on_commit is not None:
                self.on_commit(len(batch), time.perf_counter() - started, False)
            cause = exc.__cause__ if isinstance(exc, AuditUnavailable) else exc
            if (
                isinstance(exc, Exception)
                and len(batch) > 1
                and cause is not None
                and not unreachable(cause)
            ):
                # Something in this batch was refused by the database (not the database
                # being gone): commit the events one by one, so only the culprit fails.
                log.warning("audit_batch_split", events=len(batch), **describe_db_error(cause))
                for item in batch:
                    await self._commit_batch([item])
                return
            lost = sum(1 for item in batch if item.abandoned)
            if lost:  # their callers answered 503; the database holds no trace of it
                log.error("audit_withdrawn_events_lost", events=lost)
            for item in batch:
                if not item.future.done():
                    failure = AuditUnavailable()
                    failure.__cause__ = cause
                    item.future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._inflight = []
        if self.on_commit is not None:
            self.on_commit(len(batch), time.perf_counter() - started, True)
        for item in batch:
            if item.abandoned and item.sealed:
                self._correct(item)  # the caller gave up while this very commit ran
            if not item.future.done():
                item.future.set_result(item.prepared.id)
        self._deadlines.forget_answered()

    async def _commit(self, batch: Sequence[_Item]) -> None:
        """Link ``batch`` onto the chain head and commit it in one transaction."""
        self._partitions.check()
        for attempt in range(_LINK_RETRIES):
            try:
                if self._sqlite is not None:
                    await self._sqlite.commit(self.chain_id, lambda: self._seal(batch))
                else:
                    async with self.engine.begin() as conn:
                        await self._insert_linked(conn, batch)
            except IntegrityError as exc:
                # Another writer (SQLite: another process) took the same seq on this chain:
                # re-read the head and retry. PostgreSQL writers are serialised by a lock.
                if attempt == _LINK_RETRIES - 1 or not seq_taken(exc):
                    raise AuditUnavailable() from exc
                await asyncio.sleep(0.005 * (attempt + 1))
                continue
            except AuditUnavailable:
                raise
            except Exception as exc:  # any failure to commit fails closed
                raise AuditUnavailable() from exc
            self.transactions += 1
            self.events_written += len(batch)
            return

    def _seal(self, batch: Sequence[_Item]) -> list[Prepared]:
        """What goes into this transaction, decided while holding the chain's write lock:
        an abandoned event in its withdrawn form, every other one as built."""
        chosen: list[Prepared] = []
        for item in batch:
            if item.abandoned:
                item.sealed = False
                chosen.append(prepare(ev.withdrawn(loads_event(item.prepared.stored))))
            else:
                item.sealed = True
                chosen.append(item.prepared)
        return chosen

    async def _insert_linked(self, conn: AsyncConnection, batch: Sequence[_Item]) -> None:
        if conn.dialect.name == "postgresql":
            # Writers on one chain (replicas) take turns; the head read below then sees the
            # newest committed row (READ COMMITTED reads per statement).
            await conn.execute(select(func.pg_advisory_xact_lock(chain_lock_key(self.chain_id))))
        else:
            # SQLite: take the database write lock now (a write that changes nothing), so a
            # wait for it happens before the batch is sealed and the head is read.
            await conn.execute(update(audit_event).where(false()).values(seq=audit_event.c.seq))
        head = (
            await conn.execute(
                select(audit_event.c.seq, audit_event.c.hash)
                .where(audit_event.c.chain_id == self.chain_id)
                .order_by(audit_event.c.seq.desc())
                .limit(1)
            )
        ).first()
        # An empty chain starts at genesis, or where its archived prefix ended.
        if head is not None:
            seq, prev = int(head[0]), str(head[1])
        else:
            seq, prev = await chain_start(conn, self.chain_id)
        rows: list[dict[str, Any]] = []
        for prepared in self._seal(batch):
            seq += 1
            digest = link_hash(prev, prepared.stored)
            rows.append(
                {
                    **prepared.columns,
                    "id": prepared.id,
                    "chain_id": self.chain_id,
                    "seq": seq,
                    "resource": prepared.stored.decode("utf-8"),
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
        await conn.execute(insert(audit_event), rows)


def _observe(future: asyncio.Future[Any]) -> None:
    """Mark a failure as seen even when its caller has gone (timed out or cancelled)."""
    if not future.cancelled():
        future.exception()

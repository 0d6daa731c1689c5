"""The durable, tamper-evident audit trail: table ``audit_event`` and :class:`AuditStore`.

Durable: :meth:`AuditStore.append` returns only after the transaction holding the event has
committed (SQLite: WAL with ``synchronous=FULL``; PostgreSQL: the default synchronous commit).
If it cannot commit, the caller gets :class:`AuditUnavailable` and must release nothing.

Group commit: callers put their event on a queue and await their own future; one writer task
takes everything queued (up to ``max_batch``), links it into the chain and commits it in one
transaction, then resolves each future. While one commit is flushing, the next batch gathers,
so N concurrent requests cost about one disk flush, not N. There is no timer: a lone event is
committed at once.

A caller that stops waiting (its :attr:`AuditStore.timeout_s` ran out, or it was cancelled)
answers ``503`` and releases nothing, so its event must not say otherwise. The writer looks at
every event once more after it holds the chain's write lock (PostgreSQL: the advisory lock;
SQLite: the database write lock), just before the insert: an event whose caller has gone is
replaced there by its :func:`~gateway.audit.events.withdrawn` form (same id, outcome ``8``,
``HTTP 503``). If the caller gives up later still, while that very transaction commits, the
event goes in as built and the writer appends a second event that records the ``503`` and
names the first (``AuditEvent/{id}``, "corrects"). Either way the chain stays a plain
append-only chain: nothing is ever rewritten after it was hashed.

An event that would not fit its row (a value longer than its column) is refused in its
caller's task, before it joins a batch (:class:`AuditEventRejected`); and if a batch fails
for a reason other than an unavailable database, its events are retried one by one, so one
bad event never costs the others their commit.

Tamper evidence: events form chains (``chain_id``; one per store by default). Each row keeps
the exact bytes stored (``orjson`` with sorted keys; never re-serialised through pydantic),
``prev_hash`` (the previous row's hash; 64 zeros for the first) and
``hash = SHA-256(prev_hash ascii || stored bytes)``. :meth:`AuditStore.verify` recomputes the
chain and reports the first row that does not fit (edited, deleted, inserted, reordered).
The writer reads the chain head inside each transaction and ``(chain_id, seq)`` is unique, so
two writers on one chain (two replicas) cannot fork it: the loser's batch is retried on the
new head.

    store = AuditStore(engine)
    await store.start()
    event_id = await store.append(build_audit_event(rec, base_url))   # durable now
    result = await store.verify()
    await store.close()                                               # drains the queue
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypedDict, Unpack, cast

import orjson
import structlog
from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import Select

from gateway.audit import events as ev
from gateway.audit.errors import AuditEventRejected, AuditUnavailable
from gateway.db import Base, UTCDateTime, database_unavailable, describe_db_error

log = structlog.get_logger(__name__)

GENESIS_HASH: Final = "0" * 64
DEFAULT_CHAIN: Final = "main"
_VERIFY_PAGE: Final = 1000
_LINK_RETRIES: Final = 5
MAX_EVENT_BYTES: Final = 1024 * 1024  # one stored event; the gateway's are far smaller


class AuditEventRow(Base):
    """One stored AuditEvent; ``resource`` holds the exact hashed bytes (UTF-8 JSON)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("chain_id", "seq", name="uq_audit_event_chain_seq"),
        Index("ix_audit_event_agent_recorded", "agent_sub", "recorded"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    recorded: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    patient: Mapped[str | None] = mapped_column(String(10), index=True)
    agent_sub: Mapped[str | None] = mapped_column(String(255))
    agent_org: Mapped[str | None] = mapped_column(String(32), index=True)
    purpose: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(2))
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    resource: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


audit_event = cast(Table, AuditEventRow.__table__)


class AuditCheckpointRow(Base):
    """Where a chain resumes after its oldest events were archived and removed.

    One row per archive step: the last removed ``seq`` and its ``hash`` (the next stored row's
    ``prev_hash``), and the SHA-256 of the archive manifest that holds the removed events.
    The newest row per chain (highest ``seq``) is where verification starts.
    """

    __tablename__ = "audit_checkpoint"

    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime)
    manifest_sha256: Mapped[str] = mapped_column(String(64))


audit_checkpoint = cast(Table, AuditCheckpointRow.__table__)


async def has_checkpoints(conn: AsyncConnection) -> bool:
    """Whether the database has the checkpoint table (a trail from before archiving may not;
    reading must not create it: ``verify`` may run against a read-only replica)."""
    return bool(await conn.run_sync(lambda c: inspect(c).has_table(audit_checkpoint.name)))


async def chain_start(
    conn: AsyncConnection, chain_id: str, *, archived: bool = True
) -> tuple[int, str]:
    """``(seq, hash)`` a chain's first stored row follows: its newest checkpoint, or genesis.

    ``archived=False`` when the checkpoint table does not exist (see :func:`has_checkpoints`).
    """
    if not archived:
        return 0, GENESIS_HASH
    row = (
        await conn.execute(
            select(audit_checkpoint.c.seq, audit_checkpoint.c.hash)
            .where(audit_checkpoint.c.chain_id == chain_id)
            .order_by(audit_checkpoint.c.seq.desc())
            .limit(1)
        )
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS_HASH)


def canonical_bytes(event: dict[str, Any]) -> bytes:
    """The bytes stored and hashed for ``event``: orjson, keys sorted, no whitespace."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def link_hash(prev_hash: str, stored: bytes) -> str:
    """``SHA-256(prev_hash || stored bytes)`` as lowercase hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + stored).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of :meth:`AuditStore.verify`: the first broken link, if any."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: str | None = None
    chain_id: str | None = None
    reason: str | None = None
    archived: int = 0  # events before the checkpoints, removed into archives
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)  # chain -> (seq, hash)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An event ready to insert, minus the chain fields the writer fills in."""

    id: str
    recorded: datetime
    stored: bytes
    columns: dict[str, Any]


def _parse_recorded(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("AuditEvent.recorded is required")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("AuditEvent.recorded must carry a timezone")
    return parsed


def _index_columns(event: dict[str, Any]) -> dict[str, Any]:
    """The searchable columns, derived from the event itself (verify re-derives them)."""
    return {
        "recorded": _parse_recorded(event.get("recorded")),
        "patient": ev.event_patient(event),
        "agent_sub": ev.event_agent_sub(event),
        "agent_org": ev.event_agent_org(event),
        "purpose": ev.event_purpose(event),
        "outcome": str(event.get("outcome", "")),
        "break_glass": ev.event_break_glass(event),
    }


def _column_widths() -> dict[str, int]:
    widths: dict[str, int] = {}
    for column in audit_event.columns:
        length = getattr(column.type, "length", None)
        if isinstance(length, int):
            widths[column.name] = length
    return widths


_WIDTHS: Final = _column_widths()


def check_fits(event_id: str, columns: dict[str, Any], stored: bytes) -> None:
    """Refuse an event that its row could not hold (:class:`AuditEventRejected`).

    PostgreSQL enforces ``VARCHAR(n)``; one value too long fails the insert and with it the
    whole batch, so the check runs before the event is queued. The message names the field,
    never its value.
    """
    if len(event_id) > _WIDTHS["id"]:
        raise AuditEventRejected("id")
    for name, value in columns.items():
        width = _WIDTHS.get(name)
        if width is not None and isinstance(value, str) and len(value) > width:
            raise AuditEventRejected(name)
    if len(stored) > MAX_EVENT_BYTES:
        raise AuditEventRejected("size")


def prepare(event: dict[str, Any]) -> _Prepared:
    """Check, serialise and index one event (in the caller's task, before it is queued)."""
    if event.get("resourceType") != "AuditEvent":
        raise ValueError("only AuditEvent resources go into the audit store")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        event = {**event, "id": str(uuid.uuid4())}
        event_id = event["id"]
    columns = _index_columns(event)
    stored = canonical_bytes(event)
    check_fits(event_id, columns, stored)
    return _Prepared(event_id, columns["recorded"], stored, columns)


@dataclass(slots=True, eq=False)
class _Item:
    """One queued event and its caller's future.

    ``abandoned``: the caller stopped waiting and answered 503. ``sealed``: the event as built
    is in the transaction being committed (the writer decided so while holding the lock).
    """

    prepared: _Prepared
    future: asyncio.Future[str]
    abandoned: bool = False
    sealed: bool = False


_STOP: Final = None  # the queue's stop marker


class AuditStore:
    """Append, verify and search the audit trail; see the module docstring.

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
        self._busy = 0  # events queued or being committed, corrections included

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
        writer, self._writer = self._writer, None
        pending: set[asyncio.Task[None]] = set(self._background)
        if writer is not None and not writer.done():
            self._queue.put_nowait(_STOP)
            pending.add(writer)
        if not pending:
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

    # --- writing -------------------------------------------------------------------------

    async def append(self, event: dict[str, Any]) -> str:
        """Store ``event`` durably and return its id; :class:`AuditUnavailable` if impossible.

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

    async def append_one_by_one(self, event: dict[str, Any]) -> str:
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
    def _item(event: dict[str, Any]) -> _Item:
        prepared = prepare(event)
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
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), self.timeout_s)
        except TimeoutError as exc:
            self._abandon(item)
            raise AuditUnavailable() from exc
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
            original = _loads(item.prepared.stored)
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
        try:
            await self._commit(batch)
        except BaseException as exc:
            cause = exc.__cause__ if isinstance(exc, AuditUnavailable) else exc
            if (
                isinstance(exc, Exception)
                and len(batch) > 1
                and cause is not None
                and not _unreachable(cause)
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
        for item in batch:
            if item.abandoned and item.sealed:
                self._correct(item)  # the caller gave up while this very commit ran
            if not item.future.done():
                item.future.set_result(item.prepared.id)

    async def _commit(self, batch: Sequence[_Item]) -> None:
        """Link ``batch`` onto the chain head and commit it in one transaction."""
        for attempt in range(_LINK_RETRIES):
            try:
                async with self.engine.begin() as conn:
                    await self._insert_linked(conn, batch)
            except IntegrityError as exc:
                # Another writer (SQLite: another process) took the same seq on this chain:
                # re-read the head and retry. PostgreSQL writers are serialised by a lock.
                if attempt == _LINK_RETRIES - 1 or not _seq_taken(exc):
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

    def _seal(self, batch: Sequence[_Item]) -> list[_Prepared]:
        """What goes into this transaction, decided while holding the chain's write lock:
        an abandoned event in its withdrawn form, every other one as built."""
        chosen: list[_Prepared] = []
        for item in batch:
            if item.abandoned:
                item.sealed = False
                chosen.append(prepare(ev.withdrawn(_loads(item.prepared.stored))))
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

    # --- checking ------------------------------------------------------------------------

    async def verify(self, chain_id: str | None = None) -> VerifyResult:
        """Recompute every chain (or one) and return the first broken link, if any.

        Checks, per row in ``seq`` order: no gap in ``seq``; ``prev_hash`` is the previous
        row's ``hash``; ``hash`` matches the stored bytes; the searchable columns match the
        event. A chain whose oldest events were archived starts from its checkpoint
        (``archived`` counts those events; :mod:`gateway.audit.archive` checks the archives
        themselves). Deleting the newest rows leaves a shorter valid chain: compare the
        ``heads`` with a head recorded elsewhere to detect that.
        """
        checked = archived = 0
        heads: dict[str, tuple[int, str]] = {}
        async with self.engine.connect() as conn:
            has_archive = await has_checkpoints(conn)
            if chain_id is None:
                chains = await chain_ids(conn, archived=has_archive)
            else:
                chains = [chain_id]
            for chain in chains:
                result = await self._verify_chain(conn, chain, has_archive)
                checked += result.checked
                archived += result.archived
                if not result.ok:
                    return VerifyResult(
                        ok=False,
                        checked=checked,
                        broken_seq=result.broken_seq,
                        broken_id=result.broken_id,
                        chain_id=chain,
                        reason=result.reason,
                        archived=archived,
                    )
                heads.update(result.heads)
        return VerifyResult(ok=True, checked=checked, archived=archived, heads=heads)

    async def _verify_chain(
        self, conn: AsyncConnection, chain: str, archived: bool
    ) -> VerifyResult:
        start_seq, prev = await chain_start(conn, chain, archived=archived)
        expected_seq, checked = start_seq + 1, 0
        while True:
            rows = await chain_page(conn, chain, expected_seq, _VERIFY_PAGE)
            if not rows:
                return VerifyResult(
                    ok=True,
                    checked=checked,
                    archived=start_seq,
                    heads={chain: (expected_seq - 1, prev)},
                )
            for row in rows:
                reason = check_row(row, expected_seq, prev)
                if reason is not None:
                    return VerifyResult(
                        ok=False,
                        checked=checked,
                        broken_seq=row["seq"] if reason != "missing" else expected_seq,
                        broken_id=row["id"],
                        chain_id=chain,
                        reason=reason
                        if reason != "missing"
                        else (f"seq {expected_seq} missing (next present is {row['seq']})"),
                        archived=start_seq,
                    )
                checked += 1
                expected_seq += 1
                prev = row["hash"]

    async def hash_at(self, chain_id: str, seq: int) -> str | None:
        """The stored hash of ``chain_id`` at ``seq``, or None if no such row is stored."""
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    select(audit_event.c.hash).where(
                        audit_event.c.chain_id == chain_id, audit_event.c.seq == seq
                    )
                )
            ).scalar_one_or_none()
        return None if found is None else str(found)

    # --- reading -------------------------------------------------------------------------

    async def get(self, event_id: str) -> dict[str, Any] | None:
        """One stored event by id, parsed from its stored bytes."""
        async with self.engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(audit_event.c.resource).where(audit_event.c.id == event_id)
                )
            ).scalar_one_or_none()
        return None if stored is None else _loads(stored)

    async def search(
        self, *, count: int = 50, offset: int = 0, **filters: Unpack[AuditFilters]
    ) -> list[dict[str, Any]]:
        """Events matching every given filter, newest first; ``count``/``offset`` page them."""
        query = (
            _filtered(select(audit_event.c.resource), filters)
            .order_by(audit_event.c.recorded.desc(), audit_event.c.seq.desc())
            .limit(max(0, count))
            .offset(max(0, offset))
        )
        async with self.engine.connect() as conn:
            stored = (await conn.execute(query)).scalars().all()
        return [_loads(s) for s in stored]

    async def count(self, **filters: Unpack[AuditFilters]) -> int:
        """How many events :meth:`search` with the same filters would page through."""
        query = _filtered(select(func.count()).select_from(audit_event), filters)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


class AuditFilters(TypedDict, total=False):
    """What :meth:`AuditStore.search` and :meth:`AuditStore.count` filter on (all must hold;
    ``None`` or absent: no filter)."""

    patient: str | None
    agent: str | None
    agent_org: str | None
    date_ge: datetime | None
    date_le: datetime | None
    outcome: str | None
    purpose: str | None
    break_glass: bool | None


def _filtered(query: Select[Any], filters: AuditFilters) -> Select[Any]:
    c = audit_event.c
    conditions = {
        "patient": lambda v: c.patient == v,
        "agent": lambda v: c.agent_sub == v,
        "agent_org": lambda v: c.agent_org == v,
        "date_ge": lambda v: c.recorded >= v,
        "date_le": lambda v: c.recorded <= v,
        "outcome": lambda v: c.outcome == v,
        "purpose": lambda v: c.purpose == v,
        "break_glass": lambda v: c.break_glass == v,
    }
    for name, value in filters.items():
        if value is not None:
            query = query.where(conditions[name](value))
    return query


async def chain_page(
    conn: AsyncConnection, chain: str, from_seq: int, limit: int
) -> list[RowMapping]:
    """Up to ``limit`` whole rows of ``chain`` from ``from_seq`` on, in ``seq`` order."""
    query = (
        select(*audit_event.c)
        .where(audit_event.c.chain_id == chain, audit_event.c.seq >= from_seq)
        .order_by(audit_event.c.seq)
        .limit(limit)
    )
    return list((await conn.execute(query)).mappings())


async def chain_ids(conn: AsyncConnection, *, archived: bool = True) -> list[str]:
    """Every chain with stored events or (``archived``) a checkpoint, in name order."""
    found = set((await conn.execute(select(audit_event.c.chain_id).distinct())).scalars())
    if archived:
        query = select(audit_checkpoint.c.chain_id).distinct()
        found |= set((await conn.execute(query)).scalars())
    return sorted(found)


def _unreachable(exc: BaseException) -> bool:
    """The database itself is gone (connection, timeout), as opposed to refusing a row."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return database_unavailable(exc)


def _seq_taken(exc: IntegrityError) -> bool:
    """Whether an insert failed on ``(chain_id, seq)``, i.e. another writer got there first
    (any other integrity failure is about the rows themselves; retrying cannot help)."""
    text = f"{type(exc.orig).__name__} {exc.orig}".lower()
    return (
        "uq_audit_event_chain_seq" in text
        or "audit_event.chain_id" in text
        or ("unique" in text and "seq" in text)
    )


def _observe(future: asyncio.Future[Any]) -> None:
    """Mark a failure as seen even when its caller has gone (timed out or cancelled)."""
    if not future.cancelled():
        future.exception()


def chain_lock_key(chain_id: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory lock on one chain."""
    digest = hashlib.sha256(b"caregateway-audit-chain:" + chain_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _loads(stored: str | bytes) -> dict[str, Any]:
    value = orjson.loads(stored)
    if not isinstance(value, dict):
        raise ValueError("stored audit event is not a JSON object")
    return value


def check_row(row: Any, expected_seq: int, prev: str) -> str | None:
    """Why ``row`` breaks the chain, or None. ``"missing"`` means a seq gap."""
    if row["seq"] != expected_seq:
        return "missing"
    if row["prev_hash"] != prev:
        return "prev_hash does not match the previous event's hash"
    stored = row["resource"]
    stored_bytes = stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)
    if link_hash(prev, stored_bytes) != row["hash"]:
        return "hash does not match the stored event"
    try:
        event = _loads(stored_bytes)
        columns = _index_columns(event)
    except (ValueError, orjson.JSONDecodeError):
        return "stored event is not a readable AuditEvent"
    if event.get("id") != row["id"]:
        return "row id does not match the stored event"
    for name, value in columns.items():
        if row[name] != value:
            return f"column {name} does not match the stored event"
    return None

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

Modules: :mod:`gateway.audit.rows` (tables, stored bytes, row checks),
:mod:`gateway.audit.writer` (the group-commit writer), this one (verify, search, get).

    store = AuditStore(engine)
    await store.start()
    event_id = await store.append(build_audit_event(rec, base_url))   # durable now
    result = await store.verify()
    await store.close()                                               # drains the queue
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypedDict, Unpack

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from gateway.audit.rows import (
    DEFAULT_CHAIN,
    GENESIS_HASH,
    MAX_EVENT_BYTES,
    AuditCheckpointRow,
    AuditEventRow,
    Prepared,
    audit_checkpoint,
    audit_event,
    canonical_bytes,
    chain_ids,
    chain_lock_key,
    chain_page,
    chain_start,
    check_fits,
    check_row,
    has_checkpoints,
    link_hash,
    loads_event,
    prepare,
)
from gateway.audit.writer import GroupCommitWriter

__all__ = [
    "DEFAULT_CHAIN",
    "GENESIS_HASH",
    "MAX_EVENT_BYTES",
    "AuditCheckpointRow",
    "AuditEventRow",
    "AuditFilters",
    "AuditStore",
    "Prepared",
    "VerifyResult",
    "audit_checkpoint",
    "audit_event",
    "canonical_bytes",
    "chain_ids",
    "chain_lock_key",
    "chain_page",
    "chain_start",
    "check_fits",
    "check_row",
    "has_checkpoints",
    "link_hash",
    "loads_event",
    "prepare",
    "search_query",
]

_VERIFY_PAGE: Final = 1000


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


class AuditStore(GroupCommitWriter):
    """Append (:class:`~gateway.audit.writer.GroupCommitWriter`: its arguments and
    counters), verify and search the audit trail; see the module docstring."""

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
        return None if stored is None else loads_event(stored)

    async def search(
        self, *, count: int = 50, offset: int = 0, **filters: Unpack[AuditFilters]
    ) -> list[dict[str, Any]]:
        """Events matching every given filter, newest first; ``count``/``offset`` page them."""
        query = search_query(count=count, offset=offset, **filters)
        async with self.engine.connect() as conn:
            stored = (await conn.execute(query)).scalars().all()
        return [loads_event(s) for s in stored]

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


def search_query(
    *, count: int = 50, offset: int = 0, **filters: Unpack[AuditFilters]
) -> Select[Any]:
    """The statement :meth:`AuditStore.search` runs (the tests EXPLAIN it on PostgreSQL)."""
    return (
        _filtered(select(audit_event.c.resource), filters)
        .order_by(audit_event.c.recorded.desc(), audit_event.c.seq.desc())
        .limit(max(0, count))
        .offset(max(0, offset))
    )


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

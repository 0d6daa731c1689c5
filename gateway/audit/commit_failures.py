"""What a failed audit commit means to the writer: retry it, split the batch, or fail.

It stands apart from :mod:`gateway.audit.writer` because it is knowledge of the drivers,
not of queues: which exceptions say the database itself is gone (every event of the batch
fails with ``503``, and splitting would only hit the same wall once per event), and which
say another writer took the chain's next ``seq`` first (re-read the head and retry).
Anything else is the database refusing a row: the writer commits the batch one event at
a time, so only the culprit fails. Neither function logs: the writer does, naming only
what :func:`gateway.db.describe_db_error` allows.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import IntegrityError

from gateway.db import database_unavailable


def unreachable(exc: BaseException) -> bool:
    """The database itself is gone (connection, timeout), as opposed to refusing a row."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return database_unavailable(exc)


def seq_taken(exc: IntegrityError) -> bool:
    """Whether an insert failed on ``(chain_id, seq)``, i.e. another writer got there first
    (any other integrity failure is about the rows themselves; retrying cannot help)."""
    text = f"{type(exc.orig).__name__} {exc.orig}".lower()
    return (
        "uq_audit_event_chain_seq" in text
        or "audit_event.chain_id" in text
        or ("unique" in text and "seq" in text)
    )

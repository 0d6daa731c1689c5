"""The database reads every request makes, in one cheap query each and no ORM session.

A read of a person's record decides consent on the person's stored directives and the
caller's latest break-glass grant, read for this very request (nothing cached), so that a
withdrawal applies to the next request on every replica. Through an ORM ``AsyncSession`` on
aiosqlite those two reads cost a session, a pooled connection's reset and a thread hop per
call, about a third of a warm read's CPU. Here they are one statement:

.. code-block:: sql

    SELECT 0, created, id, resource FROM consent_directive WHERE nhs_number = :nhs
    UNION ALL
    SELECT 1, MAX(granted_at), NULL, NULL FROM break_glass_grant
     WHERE sub = :sub AND nhs_number = :nhs
    ORDER BY 1, 2, 3

* on an SQLite *file* (the embedded default) it runs on a dedicated connection of the
  stdlib ``sqlite3`` driver, in the event loop's thread: an indexed read takes microseconds,
  less than the hop to a worker thread would. In WAL mode a reader never waits for the audit
  writer, and it sees every transaction committed before it starts (``PRAGMA query_only``
  keeps it from ever writing);
* on any other database (PostgreSQL through asyncpg, or an in-memory SQLite) it is a
  SQLAlchemy Core statement on a pooled connection: no session, one round trip.

The stored Consents are turned into directives once per stored text (:class:`_Parsed`):
they were validated when written, and the text is still read on every request.

A driver failure is re-raised as SQLAlchemy's ``OperationalError``, so the error boundary
answers ``503`` (:func:`gateway.db.database_unavailable`) as for any other database outage.
The revocation check of the gateway's own tokens (``smart_revoked``, a primary-key lookup)
goes the same way (:meth:`HotReads.is_revoked`).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import bindparam, func, literal_column, null, select, union_all
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from consent import Directive
from consent.directives import parse_consent
from gateway.db import sqlite_file
from gateway.policy.store import BreakGlassGrantRow, ConsentDirectiveRow

_DECISION_SQL: Final = (
    "SELECT 0, created, id, resource FROM consent_directive WHERE nhs_number = ?1 "
    "UNION ALL "
    "SELECT 1, MAX(granted_at), NULL, NULL FROM break_glass_grant "
    "WHERE sub = ?2 AND nhs_number = ?1 "
    "ORDER BY 1, 2, 3"
)
_REVOKED_SQL: Final = "SELECT 1 FROM smart_revoked WHERE jti = ?1"

_directives: Any = select(
    literal_column("0").label("kind"),
    ConsentDirectiveRow.created.label("at"),
    ConsentDirectiveRow.id.label("id"),
    ConsentDirectiveRow.resource.label("resource"),
).where(ConsentDirectiveRow.nhs_number == bindparam("nhs"))
_grant: Any = select(
    literal_column("1"),
    func.max(BreakGlassGrantRow.granted_at),
    null(),
    null(),
).where(
    BreakGlassGrantRow.sub == bindparam("sub"),
    BreakGlassGrantRow.nhs_number == bindparam("nhs"),
)
DECISION_STATEMENT: Final[Any] = union_all(_directives, _grant).order_by(
    literal_column("1"), literal_column("2"), literal_column("3")
)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError("not a date-time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


PARSED_MAX: Final = 4096


class _Parsed:
    """Directives of stored Consents, by the exact stored text (bounded, oldest dropped).

    A stored Consent was validated when it was written; parsing it again on every request
    (JSON, then :func:`consent.parse_consent`'s checks) cost a warm read more than the query.
    The result depends on nothing but the text, and the text is read on every request, so
    remembering it changes no decision: a new version is new text, parsed when first seen.
    """

    def __init__(self, max_entries: int = PARSED_MAX) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Directive, ...]] = OrderedDict()

    def __call__(self, text: str) -> tuple[Directive, ...]:
        found = self._entries.get(text)
        if found is None:
            found = parse_consent(orjson.loads(text))  # InvalidConsent is not remembered
            self._entries[text] = found
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return found


def _split(
    rows: Sequence[Sequence[Any]], parsed: _Parsed
) -> tuple[tuple[Directive, ...], datetime | None]:
    directives: list[Directive] = []
    grant: datetime | None = None
    for kind, at, _id, resource in rows:
        if int(kind) == 0:
            directives.extend(parsed(resource))
        else:
            grant = _utc(at)
    return tuple(directives), grant


class HotReads:
    """The per-request reads: :meth:`decision_inputs` and :meth:`is_revoked`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._path = sqlite_file(engine)
        self._conn: sqlite3.Connection | None = None
        self._parsed = _Parsed()

    def _sqlite(self) -> sqlite3.Connection:
        if self._conn is None:
            assert self._path is not None
            conn = sqlite3.connect(
                self._path, timeout=1.0, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA query_only=ON")
            self._conn = conn
        return self._conn

    def _query(self, sql: str, params: tuple[str, ...]) -> list[Any]:
        try:
            return self._sqlite().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self.close()  # a fresh connection next time
            raise sa_exc.OperationalError(sql, None, exc) from exc

    async def decision_inputs(
        self, nhs_number: str, sub: str
    ) -> tuple[tuple[Directive, ...], datetime | None]:
        """The directives of the person's stored Consents (all statuses, oldest first, as
        :func:`consent.parse_consents` gives them) and the latest break-glass grant of
        ``sub`` for them, as of now."""
        if self._path is not None:
            return _split(self._query(_DECISION_SQL, (nhs_number, sub)), self._parsed)
        async with self.engine.connect() as conn:
            result = await conn.execute(DECISION_STATEMENT, {"nhs": nhs_number, "sub": sub})
            return _split(result.all(), self._parsed)

    async def is_revoked(self, jti: str) -> bool:
        """Whether one of the gateway's own access tokens has been revoked (any replica)."""
        if self._path is not None:
            return bool(self._query(_REVOKED_SQL, (jti,)))
        from gateway.smart.store import RevokedRow

        async with self.engine.connect() as conn:
            found = await conn.execute(select(RevokedRow.jti).where(RevokedRow.jti == jti))
            return found.first() is not None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

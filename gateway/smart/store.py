"""What the authorization server keeps in the database, so every replica sees the same state.

=================  =========================================================================
``smart_launch``   EHR launch contexts (single use, 5 minutes)
``smart_code``     authorization codes (single use, 60 seconds) and what they grant
``smart_pending``  standalone authorization requests waiting for the person to log in
``smart_jti``      client assertion ``jti``s already seen (replay store, kept until expiry)
``smart_revoked``  ``jti``s of revoked access tokens (kept until the token would expire)
=================  =========================================================================

Launch ids, codes and pending-request ids are secrets in a URL: the tables hold their SHA-256,
never the value, so a copy of the database redeems nothing. Redemption is one conditional
``UPDATE ... WHERE used IS NULL AND expires > now``; its row count decides, so of two
replicas redeeming the same code at once exactly one wins. A ``jti`` is recorded by an
``INSERT`` on its primary key: the second insert of the same one fails, on any replica.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import String, Text, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UTCDateTime

LAUNCH_TTL = timedelta(minutes=5)
CODE_TTL = timedelta(seconds=60)
PENDING_TTL = timedelta(minutes=10)
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class _OneTime:
    """Columns shared by the single-use tables."""

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the secret
    data: Mapped[str] = mapped_column(Text)  # JSON
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LaunchRow(_OneTime, Base):
    __tablename__ = "smart_launch"


class CodeRow(_OneTime, Base):
    __tablename__ = "smart_code"


class PendingRow(_OneTime, Base):
    __tablename__ = "smart_pending"


class JtiRow(Base):
    __tablename__ = "smart_jti"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RevokedRow(Base):
    __tablename__ = "smart_revoked"

    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


_TABLES: dict[str, type[LaunchRow | CodeRow | PendingRow]] = {
    "launch": LaunchRow,
    "code": CodeRow,
    "pending": PendingRow,
}


class SmartStore:
    """Async access to the tables above (one short transaction per call)."""

    def __init__(self, engine: AsyncEngine, clock: Clock = _now) -> None:
        self.engine = engine
        self.clock = clock

    async def put(
        self, kind: str, data: dict[str, Any], ttl: timedelta, secret: str | None = None
    ) -> str:
        """Store ``data`` under ``secret`` (default: a new one); return the secret.

        Only the secret's digest is kept."""
        secret = secret or new_secret()
        now = self.clock()
        row = _TABLES[kind]
        async with self.engine.begin() as conn:
            await conn.execute(delete(row).where(row.expires < now - timedelta(hours=1)))
            await conn.execute(
                insert(row).values(
                    id=digest(secret),
                    data=orjson.dumps(data).decode(),
                    created=now,
                    expires=now + ttl,
                    used=None,
                )
            )
        return secret

    async def peek(self, kind: str, secret: str) -> dict[str, Any] | None:
        """The data under ``secret`` if it is unused and unexpired (nothing is changed)."""
        row = _TABLES[kind]
        async with self.engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(row.data).where(
                        row.id == digest(secret), row.used.is_(None), row.expires > self.clock()
                    )
                )
            ).scalar_one_or_none()
        return None if stored is None else dict(orjson.loads(stored))

    async def redeem(self, kind: str, secret: str) -> dict[str, Any] | None:
        """Mark ``secret`` used and return its data; ``None`` if unknown, used or expired."""
        row = _TABLES[kind]
        now = self.clock()
        key = digest(secret)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(row)
                .where(row.id == key, row.used.is_(None), row.expires > now)
                .values(used=now)
            )
            if result.rowcount != 1:
                return None
            stored = (await conn.execute(select(row.data).where(row.id == key))).scalar_one()
        return dict(orjson.loads(stored))

    async def state_of(self, kind: str, secret: str) -> tuple[str, dict[str, Any] | None]:
        """``unknown``, ``used``, ``expired`` or ``usable``, and the data — to say which in
        an error, and whose code or launch was replayed in the audit event."""
        row = _TABLES[kind]
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    select(row.used, row.expires, row.data).where(row.id == digest(secret))
                )
            ).first()
        if found is None:
            return "unknown", None
        data = dict(orjson.loads(found.data))
        if found.used is not None:
            return "used", data
        return ("expired" if found.expires <= self.clock() else "usable"), data

    async def record_jti(self, client_id: str, jti: str, expires: datetime) -> bool:
        """Record a client assertion's ``jti``; ``False`` if it was seen before (a replay)."""
        now = self.clock()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(delete(JtiRow).where(JtiRow.expires < now))
                await conn.execute(
                    insert(JtiRow).values(client_id=client_id, jti=jti, expires=expires)
                )
        except IntegrityError:
            return False
        return True

    async def revoke(self, jti: str, expires: datetime) -> None:
        now = self.clock()
        async with self.engine.begin() as conn:
            await conn.execute(delete(RevokedRow).where(RevokedRow.expires < now))
            already = (
                await conn.execute(select(exists().where(RevokedRow.jti == jti)))
            ).scalar_one()
            if not already:
                await conn.execute(insert(RevokedRow).values(jti=jti, expires=expires))

    async def is_revoked(self, jti: str) -> bool:
        """One primary-key lookup: cheap enough to run for every token of our issuer."""
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(select(RevokedRow.jti).where(RevokedRow.jti == jti))
            ).first()
        return found is not None

    async def count_unused(self, kind: str) -> int:
        """Rows not yet redeemed (tests use it to show nothing was issued)."""
        row = _TABLES[kind]
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(row.id).where(row.used.is_(None)))).all()
        return len(rows)

"""Where people's consent directives and break-glass grants live: two tables, two stores.

- ``consent_directive``: one row per FHIR ``Consent`` (its current version), keyed by the
  gateway's id and indexed by the person's NHS number. ``resource`` holds the JSON exactly
  as it is served, ``meta.versionId`` equal to the ``version`` column.
- ``consent_directive_version``: every version of every Consent, ``(id, version)``, written
  in the same transaction as the row above, so a version is never current without being
  kept, nor kept without having been current. ``vread`` and ``_history`` read it; a Consent
  stored before this table existed has only its current version (read from the row above).
- ``break_glass_grant``: one row per emergency access that gave a grant, looked up by
  ``(sub, nhs_number)`` to find the latest.

:class:`ConsentStore` is the :class:`gateway.policy.decision.DirectiveSource` and the Consent API's
storage; :class:`BreakGlassStore` is the :class:`gateway.policy.decision.BreakGlassLedger`. Nothing
is cached: every read goes to the database, so a directive recorded or withdrawn applies to
the very next request. Every write is one transaction.

::

    engine = make_engine(settings.database_url)
    await schema.upgrade(engine)         # gateway.schema: the migrations
    consents, ledger = ConsentStore(engine), BreakGlassStore(engine)
    stored = await consents.create(consent)              # id, meta.versionId "1"
    await consents.update(stored["id"], {**stored, "status": "inactive"})   # versionId "2"
    await consents.update(stored["id"], changed, expected_version=2)        # or VersionConflict

Version-aware update (FHIR ``If-Match``): with ``expected_version`` the store writes only if
that is still the current version, in one conditional ``UPDATE ... WHERE version = n`` whose
row count decides; of two concurrent updates expecting the same version, one wins and the
other gets :class:`VersionConflict` (412). The version it writes is kept in
``consent_directive_version`` by the same transaction, only when the row count says it won.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import Index, Integer, String, Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from consent.directives import patient_nhs_number
from gateway.db import Base, UTCDateTime, make_session_factory
from gateway.errors import Conflict, NotFound, UnprocessableEntity
from gateway.errors import VersionConflict as VersionConflict  # re-exported

UKCORE_CONSENT_PROFILE: Final = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Consent"
_UPDATE_ATTEMPTS: Final = 5

Clock = Callable[[], datetime]
Sessions = async_sessionmaker[AsyncSession]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def fhir_instant(value: datetime) -> str:
    """``2026-11-23T11:15:08.123Z``: a FHIR ``instant`` in UTC with milliseconds."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConsentDirectiveRow(Base):
    """The current version of one stored Consent."""

    __tablename__ = "consent_directive"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    status: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    resource: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsentVersionRow(Base):
    """One version of one stored Consent, as it was served; never changed once written."""

    __tablename__ = "consent_directive_version"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    status: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(Text)
    recorded: Mapped[datetime] = mapped_column(UTCDateTime)


def _version_row(
    stored: Mapping[str, Any], version: int, at: datetime, text: str
) -> ConsentVersionRow:
    return ConsentVersionRow(
        id=stored["id"],
        version=version,
        nhs_number=_nhs_of(stored),
        status=str(stored.get("status", "")),
        resource=text,
        recorded=at,
    )


class BreakGlassGrantRow(Base):
    """One emergency access that granted a break-glass window."""

    __tablename__ = "break_glass_grant"
    __table_args__ = (Index("ix_break_glass_grant_sub_nhs", "sub", "nhs_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sub: Mapped[str] = mapped_column(String(255))
    nhs_number: Mapped[str] = mapped_column(String(10))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)


def _sessions(engine_or_sessions: AsyncEngine | Sessions) -> Sessions:
    if isinstance(engine_or_sessions, AsyncEngine):
        return make_session_factory(engine_or_sessions)
    return engine_or_sessions


def _nhs_of(resource: Mapping[str, Any]) -> str:
    nhs = patient_nhs_number(resource)
    if nhs is None or len(nhs) != 10 or not nhs.isdigit():
        # The route validates first; this guards direct callers of the store.
        raise UnprocessableEntity("Consent.patient must name the person by NHS number.")
    return nhs


def _stamped(resource: Mapping[str, Any], rid: str, version: int, at: datetime) -> dict[str, Any]:
    """A deep copy with the server's id and ``meta`` (versionId, lastUpdated, UK Core profile)."""
    out: dict[str, Any] = copy.deepcopy(dict(resource))
    out["resourceType"] = "Consent"
    out["id"] = rid
    meta = dict(out.get("meta") or {})
    profiles = [p for p in meta.get("profile") or () if isinstance(p, str)]
    if UKCORE_CONSENT_PROFILE not in profiles:
        profiles.append(UKCORE_CONSENT_PROFILE)
    meta.update(versionId=str(version), lastUpdated=fhir_instant(at), profile=profiles)
    out["meta"] = meta
    return out


def _load(row_resource: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(row_resource)
    return value


async def _current_version(
    session: AsyncSession, consent_id: str, *, lock: bool = False
) -> int | None:
    """The current version; ``lock``: hold the row until the transaction ends (``FOR UPDATE``
    on PostgreSQL, so concurrent unconditional updates queue instead of racing; SQLite has
    no row locks and serialises writers on the database)."""
    query = select(ConsentDirectiveRow.version).where(ConsentDirectiveRow.id == consent_id)
    version: int | None = await session.scalar(query.with_for_update() if lock else query)
    return version


class ConsentStore:
    """Consent resources by id and by NHS number; the decider's :class:`DirectiveSource`."""

    def __init__(self, engine_or_sessions: AsyncEngine | Sessions, clock: Clock = _utc_now):
        self._sessions = _sessions(engine_or_sessions)
        self._clock = clock

    async def create(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new Consent under a new id (any id the caller gave is replaced)."""
        now = self._clock()
        stored = _stamped(resource, str(uuid.uuid4()), 1, now)
        text = orjson.dumps(stored).decode()
        row = ConsentDirectiveRow(
            id=stored["id"],
            nhs_number=_nhs_of(stored),
            status=str(stored.get("status", "")),
            version=1,
            resource=text,
            created=now,
            updated=now,
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
            await session.flush()  # the directive first: one transaction, ordered inserts
            session.add(_version_row(stored, 1, now, text))
        return stored

    async def get(self, consent_id: str) -> dict[str, Any] | None:
        async with self._sessions() as session:
            text = await session.scalar(
                select(ConsentDirectiveRow.resource).where(ConsentDirectiveRow.id == consent_id)
            )
        return None if text is None else _load(text)

    async def update(
        self,
        consent_id: str,
        resource: Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Replace the current version; ``meta.versionId`` goes up by one.

        Raises :class:`NotFound` for an unknown id. With ``expected_version`` the write
        happens only if that is the current version (one conditional ``UPDATE``), else
        :class:`VersionConflict` naming the current one. Without it, two concurrent updates
        still never produce the same version: each writes only if the version it read is
        still current, else reads again and retries.
        """
        if expected_version is not None:
            return await self._update_expected(consent_id, resource, expected_version)
        for _ in range(_UPDATE_ATTEMPTS):
            async with self._sessions() as session, session.begin():
                current = await _current_version(session, consent_id, lock=True)
                if current is None:
                    raise NotFound("No Consent with this id.")
                stored = await self._write_if_current(session, consent_id, resource, current)
                if stored is not None:
                    return stored
        raise Conflict("The Consent was changed by another request meanwhile; try again.")

    async def _update_expected(
        self, consent_id: str, resource: Mapping[str, Any], expected: int
    ) -> dict[str, Any]:
        async with self._sessions() as session, session.begin():
            stored = await self._write_if_current(session, consent_id, resource, expected)
            if stored is not None:
                return stored
            current = await _current_version(session, consent_id)
        if current is None:
            raise NotFound("No Consent with this id.")
        raise VersionConflict(expected, current)

    async def _write_if_current(
        self, session: AsyncSession, consent_id: str, resource: Mapping[str, Any], version: int
    ) -> dict[str, Any] | None:
        """Write ``version + 1`` if ``version`` is current (the row count decides), else None."""
        now = self._clock()
        stored = _stamped(resource, consent_id, version + 1, now)
        text = orjson.dumps(stored).decode()
        result = await session.execute(
            update(ConsentDirectiveRow)
            .where(ConsentDirectiveRow.id == consent_id, ConsentDirectiveRow.version == version)
            .values(
                nhs_number=_nhs_of(stored),
                status=str(stored.get("status", "")),
                version=version + 1,
                resource=text,
                updated=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        # Same transaction as the UPDATE: both are committed, or neither.
        session.add(_version_row(stored, version + 1, now, text))
        await session.flush()
        return stored

    async def version(self, consent_id: str, version: int) -> dict[str, Any] | None:
        """One kept version (``vread``), or None."""
        async with self._sessions() as session:
            text = await session.scalar(
                select(ConsentVersionRow.resource).where(
                    ConsentVersionRow.id == consent_id, ConsentVersionRow.version == version
                )
            )
            if text is None:  # stored before versions were kept: only the current one
                text = await session.scalar(
                    select(ConsentDirectiveRow.resource).where(
                        ConsentDirectiveRow.id == consent_id, ConsentDirectiveRow.version == version
                    )
                )
        return None if text is None else _load(text)

    async def history(self, consent_id: str) -> list[dict[str, Any]]:
        """Every kept version, newest first; ``[]`` for an unknown id."""
        async with self._sessions() as session, session.begin():
            texts = list(
                await session.scalars(
                    select(ConsentVersionRow.resource)
                    .where(ConsentVersionRow.id == consent_id)
                    .order_by(ConsentVersionRow.version.desc())
                )
            )
            current = await session.scalar(
                select(ConsentDirectiveRow.resource).where(ConsentDirectiveRow.id == consent_id)
            )
        versions = [_load(text) for text in texts]
        if current is not None:
            latest = _load(current)
            if not versions or versions[0]["meta"]["versionId"] != latest["meta"]["versionId"]:
                versions.insert(0, latest)  # stored before versions were kept
        return versions

    async def search(self, nhs_number: str) -> list[dict[str, Any]]:
        """Every stored Consent for the person, oldest first, whatever its status."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ConsentDirectiveRow.resource)
                .where(ConsentDirectiveRow.nhs_number == nhs_number)
                .order_by(ConsentDirectiveRow.created, ConsentDirectiveRow.id)
            )
            return [_load(text) for text in rows]

    async def active_for(self, nhs_number: str) -> list[dict[str, Any]]:
        """The person's Consents for the decider: all statuses (the policy filters)."""
        return await self.search(nhs_number)


class BreakGlassStore:
    """The break-glass ledger: who used emergency access to whose record, and when."""

    def __init__(self, engine_or_sessions: AsyncEngine | Sessions) -> None:
        self._sessions = _sessions(engine_or_sessions)

    async def last_grant(self, sub: str, nhs_number: str) -> datetime | None:
        async with self._sessions() as session:
            latest: datetime | None = await session.scalar(
                select(func.max(BreakGlassGrantRow.granted_at)).where(
                    BreakGlassGrantRow.sub == sub, BreakGlassGrantRow.nhs_number == nhs_number
                )
            )
        if latest is None:
            return None
        # func.max bypasses the column type on some backends: normalise here as well.
        return latest.replace(tzinfo=UTC) if latest.tzinfo is None else latest.astimezone(UTC)

    async def record(self, sub: str, nhs_number: str, at: datetime, reason: str) -> None:
        row = BreakGlassGrantRow(
            id=str(uuid.uuid4()), sub=sub, nhs_number=nhs_number, granted_at=at, reason=reason
        )
        async with self._sessions() as session, session.begin():
            session.add(row)

"""A request's AuditEvent as stored bytes, built from a remembered template.

Every answer commits an AuditEvent first (:mod:`gateway.audit.note`), and most events differ
from one another only in three values: the event's ``id``, when it was ``recorded`` and the
request id. A clinician's system reading the same person's record again makes the very same
event otherwise — the same caller, purpose, person, decision and touched resources. Building
that event (a tree of dicts), serialising it with sorted keys and deriving its index columns
again each time was about a seventh of a warm read's CPU.

:class:`EventTemplates` builds the event the ordinary way (:func:`~gateway.audit.events.
build_audit_event`, :func:`~gateway.audit.rows.prepare`) once per distinct key, with marker
values in the three varying places, and keeps the canonical bytes cut at the markers. A
later event with the same key is those pieces joined around its own three values (each
JSON-encoded by orjson, as the whole event would be), with the remembered index columns.
The bytes are exactly those :func:`~gateway.audit.rows.prepare` makes of the event built the
ordinary way (``tests/gateway/test_audit_templates.py`` compares them for many events), so
what is stored, hashed and verified is unchanged.

A template is used only where it is known to be exact: each marker must occur once in the
template's bytes (a caller whose name happened to contain a marker gets the ordinary path),
and a request id longer than its stored width (which the ordinary path clips) is never
templated. At most :data:`SIZE` templates are kept, the oldest dropped first; they hold what
the events hold (names, NHS numbers), in the process's memory only, like the cached records.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from gateway.audit.events import format_instant
from gateway.audit.rows import MAX_EVENT_BYTES, Prepared, prepare
from gateway.audit.widths import CODE_MAX
from gateway.ids import random_uuid

SIZE: Final = 4096
"""Templates kept: a distinct caller, person, outcome and set of touched resources each."""

_NONCE: Final = secrets.token_hex(8)
_ID_MARK: Final = f"~id-{_NONCE}~"
_RECORDED_MARK: Final = f"~recorded-{_NONCE}~"
_REQUEST_MARK: Final = f"~request-{_NONCE}~"
_LONGEST_ID: Final = 36  # a UUID as text (gateway.ids.random_uuid)
_LONGEST_INSTANT: Final = len("2026-01-01T00:00:00.000+00:00")

Build = Callable[[str, datetime, str], dict[str, Any]]
"""Builds the whole event from (event id, recorded, request id): the ordinary way."""


class _Template:
    __slots__ = ("columns", "order", "pieces")

    def __init__(self, pieces: tuple[bytes, ...], order: tuple[int, ...], columns: dict[str, Any]):
        self.pieces = pieces  # the bytes between the markers, in the order they occur
        self.order = order  # which value each gap takes: 0 the id, 1 the time, 2 the request id
        self.columns = columns  # the index columns but "recorded"

    def fill(self, event_id: str, recorded: datetime, request_id: str) -> Prepared:
        # What the stored text says, to the millisecond, is what the column holds.
        if recorded.tzinfo is not UTC:
            recorded = recorded.astimezone(UTC)
        recorded = recorded.replace(microsecond=recorded.microsecond // 1000 * 1000)
        instant = recorded.isoformat(timespec="milliseconds")  # format_instant, in UTC already
        values = (orjson.dumps(event_id), orjson.dumps(instant), orjson.dumps(request_id))
        pieces, order = self.pieces, self.order
        stored = b"".join(
            (pieces[0], values[order[0]], pieces[1], values[order[1]], pieces[2],
             values[order[2]], pieces[3])
        )  # fmt: skip
        return Prepared(event_id, recorded, stored, {**self.columns, "recorded": recorded})


def _cut(event: dict[str, Any], recorded: datetime) -> _Template | None:
    """The template of ``event`` (built with the markers), or None where one cannot be exact."""
    prepared = prepare({**event, "recorded": format_instant(recorded)})  # checks it fits
    columns = {k: v for k, v in prepared.columns.items() if k != "recorded"}
    marked = orjson.dumps({**event, "recorded": _RECORDED_MARK}, option=orjson.OPT_SORT_KEYS)
    found: list[tuple[int, int, int]] = []  # (offset, length, which)
    for which, mark in enumerate((_ID_MARK, _RECORDED_MARK, _REQUEST_MARK)):
        quoted = orjson.dumps(mark)
        if marked.count(quoted) != 1:
            return None
        found.append((marked.index(quoted), len(quoted), which))
    found.sort()
    pieces: list[bytes] = []
    at = 0
    for offset, length, _ in found:
        pieces.append(marked[at:offset])
        at = offset + length
    pieces.append(marked[at:])
    longest = sum(map(len, pieces)) + _LONGEST_ID + _LONGEST_INSTANT + CODE_MAX + 6
    if longest > MAX_EVENT_BYTES:
        return None
    return _Template(tuple(pieces), tuple(w for _, _, w in found), columns)


class EventTemplates:
    """Remembered templates by key; see the module docstring."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._kept: dict[tuple[Any, ...], _Template | None] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def prepared(
        self,
        key: tuple[Any, ...],
        build: Build,
        request_id: str,
        *,
        event_id: str | None = None,
        recorded: datetime | None = None,
    ) -> Prepared:
        """The event ``build`` would make for these values, ready to append.

        ``key`` must hold everything the event depends on but its id, time and request id.
        """
        event_id = event_id or random_uuid()
        recorded = recorded or datetime.now(UTC)
        if len(request_id) > CODE_MAX or len(event_id) > _LONGEST_ID:
            return prepare(build(event_id, recorded, request_id))
        kept = self._kept
        if key in kept:
            template = kept[key]
        else:
            template = _cut(build(_ID_MARK, recorded, _REQUEST_MARK), recorded)
            if len(kept) >= self.size:
                del kept[next(iter(kept))]
            kept[key] = template
        if template is None:
            return prepare(build(event_id, recorded, request_id))
        return template.fill(event_id, recorded, request_id)

"""Small HTTP helpers both simulators share: fast JSON responses, cursors, timestamps."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from typing import Any

import orjson
from starlette.responses import Response


class JSONBytes(Response):
    """A JSON response serialised with orjson (the simulators sit on benchmark paths)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class FHIRJSON(JSONBytes):
    media_type = "application/fhir+json"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_date(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The offset inside an opaque cursor; ``None`` when the cursor is not one of ours."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = raw.partition(":")
    if prefix != "o" or not number.isdigit():
        return None
    return int(number)

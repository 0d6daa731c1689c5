"""FHIR ``dateTime`` values of a directive's ``period`` as aware UTC datetimes, safely.

FHIR allows every date from ``0001-01-01`` to ``9999-12-31`` with offsets from ``-14:00`` to
``+14:00``, so a perfectly valid period end such as ``9999-12-31T23:59:59-14:00`` lies after
the last instant Python's ``datetime`` can hold once moved to UTC (and ``0001-01-01T00:00:00
+14:00`` before the first). Those are clamped to ``datetime.max`` / ``datetime.min`` (UTC):
for deciding whether a directive is in force "the end of time" and "just after the end of
time" are the same. Anything that is not FHIR's form (non-ASCII digits, a time without a
zone, ``2026-11-23 10:00``) raises ``ValueError``; nothing else is ever raised.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

_DATE_TIME: Final = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<H>[0-9]{2}):(?P<M>[0-9]{2}):(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)
FIRST: Final = datetime.min.replace(tzinfo=UTC)
LAST: Final = datetime.max.replace(tzinfo=UTC)


def parse_instant(value: Any, *, end: bool) -> datetime:
    """``value`` (FHIR ``dateTime``) as the first instant it covers, or the last if ``end``:
    ``2026`` is all of 2026, ``2026-11-23`` all of that day (in UTC)."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    found = _DATE_TIME.fullmatch(value)
    if found is None:
        raise ValueError("not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or a full time with zone)")
    year = int(found["y"])
    if year < 1:
        raise ValueError("the year must be 0001 or later")
    if found["H"] is None:
        month = int(found["m"]) if found["m"] else (12 if end else 1)
        if not 1 <= month <= 12:
            raise ValueError("month out of range")
        last_day = calendar.monthrange(year, month)[1]
        day = int(found["d"]) if found["d"] else (last_day if end else 1)
        if not 1 <= day <= last_day:
            raise ValueError("day out of range")
        if end:
            return datetime(year, month, day, 23, 59, 59, 999_999, tzinfo=UTC)
        return datetime(year, month, day, tzinfo=UTC)
    zone = found["tz"]
    if zone is None:
        raise ValueError("a dateTime with a time must have a time zone")
    fraction = (found["f"] or "").ljust(6, "0")[:6]
    local = datetime(
        year, int(found["m"]), int(found["d"]),
        int(found["H"]), int(found["M"]), int(found["S"]), int(fraction),
    )  # fmt: skip
    if zone == "Z":
        return local.replace(tzinfo=UTC)
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if minutes > 59 or hours * 60 + minutes > 14 * 60:
        raise ValueError("a time zone offset lies between -14:00 and +14:00")
    offset = timedelta(hours=hours, minutes=minutes) * (1 if zone[0] == "+" else -1)
    try:
        return (local - offset).replace(tzinfo=UTC)
    except OverflowError:
        return LAST if offset < timedelta(0) else FIRST

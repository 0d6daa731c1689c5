"""The one strict parser for the search and operation parameters the routes take.

Every query parameter reaches a route through a function here, and every function either
returns a value the route can use as it is or raises :class:`~gateway.errors.BadRequest`
naming the parameter (``expression``). Messages never repeat the value: a parameter may hold
an NHS number, a name or a token pasted by mistake.

Rules, all checked before any value is used:

* numbers are ASCII digits only (``str.isdigit()`` is true for ``²`` and ``٣``, which
  ``int()`` refuses or reads as another script's digit), at most :data:`MAX_DIGITS` of them,
  and within the parameter's range;
* text is bounded (:data:`MAX_TEXT`, or the parameter's own limit) and has no control
  characters (:data:`TEXT_CHARS`), which PostgreSQL refuses (``NUL``) and logs misrender;
* dates follow FHIR's ``date``/``dateTime`` grammar (years 0001-9999, offsets up to
  ``±14:00``) and are reduced to UTC in integer microseconds, so no offset or ``gt``/``lt``
  step can overflow Python's ``datetime``; a bound beyond what ``datetime`` holds is clamped
  to its end (see :func:`date_bounds`);
* a parameter given more often than it may be is ``400``.

Unsupported parameters (FHIR's ``Prefer: handling``, ``search.html#errors``): with
``handling=strict`` every one is a ``400``; with ``handling=lenient`` every one is ignored
(and left out of ``Bundle.link[self]``). Without the header the gateway is strict about
*filters* and lenient about *result* parameters: an unknown name starting with ``_`` that is
not a FHIR filter (:data:`PREFIXED_FILTERS`) — ``_totalMethod``, ``_contained``, ``_graph``
— is ignored, anything else is a ``400``. Why: ignoring a filter answers with more than was
asked for, and a clinician reading "the person's active plans" that are in fact all of them
may act on it, so a filter we do not apply must never pass silently; an ignored paging or
shaping parameter changes only how the answer is laid out, never what it says, and refusing
it breaks the common clients (fhirpy's ``.count()`` sends ``_totalMethod=count``).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Final

from starlette.requests import Request

from gateway.errors import BadRequest, NotAcceptable

ALWAYS_ALLOWED = frozenset({"_format", "_pretty"})
# FHIR search parameters whose names start with '_' but which filter (narrow) the answer.
PREFIXED_FILTERS: Final = frozenset(
    {
        "_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text",
        "_content", "_list", "_has", "_type", "_filter", "_query", "_since",
    }
)  # fmt: skip
XML_FORMATS: Final = frozenset(
    {"xml", "text/xml", "application/xml", "application/fhir+xml", "html", "text/html"}
)
JSON_FORMATS: Final = frozenset({"json", "application/json", "application/fhir+json"})
MAX_DIGITS: Final = 9
MAX_TEXT: Final = 256
MAX_REPEATS: Final = 10  # values of one repeatable parameter (date, status, category)
MAX_COUNT: Final = 200
MAX_OFFSET: Final = 1_000_000
MAX_DATE_CHARS: Final = 40

_DIGITS = re.compile(r"[0-9]+")
# Text a filter may hold: no C0/C1 controls (PostgreSQL refuses NUL), no line or paragraph
# separators, no bidirectional overrides, no lone surrogates (not UTF-8).
TEXT_CHARS: Final = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
_TEXT = re.compile(TEXT_CHARS + "+")
# A name shaped like FHIR's search parameters; anything else (a pasted NHS number, a name)
# is never repeated back.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,63}")
_DATE_VALUE = re.compile(
    r"(?P<prefix>eq|ge|gt|le|lt)?"
    r"(?P<y>[0-9]{4})(?:-(?P<mo>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)
_US: Final = 1_000_000
_DAY_US: Final = 86_400 * _US
_EPOCH: Final = datetime.min.replace(tzinfo=UTC)
MIN_US: Final = date.min.toordinal() * _DAY_US  # datetime.min, as UTC microseconds
MAX_US: Final = (date.max.toordinal() + 1) * _DAY_US - 1  # datetime.max


# --- which parameters ---------------------------------------------------------------------


def handling(request: Request) -> str | None:
    """``strict`` or ``lenient`` from ``Prefer: handling=...``; ``None`` without one."""
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    for part in prefer.replace(";", ",").split(","):
        if part in ("handling=strict", "handling=lenient"):
            return part.removeprefix("handling=")
    return None


def lenient(request: Request) -> bool:
    return handling(request) == "lenient"


def ignorable(name: str) -> bool:
    """A name the default handling ignores when unsupported: a result parameter."""
    return name.startswith("_") and name not in PREFIXED_FILTERS


def check_params(
    request: Request, allowed: Iterable[str], *, formats: Collection[str] = JSON_FORMATS
) -> None:
    """400 for a parameter the route does not support (per the handling rules in the module
    docstring), or a bad ``_format`` (406 for a format we do not serve)."""
    if not request.scope.get("query_string") or not request.query_params:
        return  # nothing to refuse: the common read has no parameters at all
    allowed_set = ALWAYS_ALLOWED | frozenset(allowed)
    unknown = sorted({k for k in request.query_params if k not in allowed_set})
    mode = handling(request)
    refused = [k for k in unknown if mode == "strict" or (mode is None and not ignorable(k))]
    if refused and mode != "lenient":
        names = [_safe_name(k) for k in refused]
        raise BadRequest(
            f"Unsupported search parameter(s): {', '.join(names)}. Supported: "
            f"{', '.join(sorted(allowed_set))}. Send 'Prefer: handling=lenient' to ignore them.",
            expression=names,
        )
    fmt = one(request, "_format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in formats:
        if fmt.split(";")[0].strip().lower() in XML_FORMATS:
            raise NotAcceptable(
                "Only FHIR JSON is served (_format=json or application/fhir+json).",
                expression=["_format"],
            )
        raise BadRequest(
            f"_format must be one of {', '.join(sorted(formats))}.", expression=["_format"]
        )
    pretty = one(request, "_pretty")
    if pretty is not None and pretty not in ("true", "false"):
        raise BadRequest("_pretty must be true or false.", expression=["_pretty"])


def _safe_name(name: str) -> str:
    """A parameter name fit to repeat in a message, else a placeholder."""
    return name if _NAME.fullmatch(name) else "(unrecognised name)"


# --- single values --------------------------------------------------------------------------


def one(request: Request, name: str) -> str | None:
    if not request.scope.get("query_string"):
        return None  # no query (a POST's parameters are put in it too: searching.py)
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"Parameter {name} may be given only once.", expression=[name])
    return values[0] if values else None


def repeated(request: Request, name: str, *, limit: int = MAX_REPEATS) -> list[str]:
    """All values of a repeatable parameter, at most ``limit`` of them."""
    if not request.scope.get("query_string"):
        return []
    values = request.query_params.getlist(name)
    if len(values) > limit:
        raise BadRequest(f"Parameter {name} may be given at most {limit} times.", expression=[name])
    return values


def whole_number(raw: str, name: str, *, minimum: int = 0, maximum: int) -> int:
    """ASCII digits (at most :data:`MAX_DIGITS`) whose value is in ``[minimum, maximum]``."""
    if len(raw) > MAX_DIGITS or not raw.isascii() or _DIGITS.fullmatch(raw) is None:
        raise BadRequest(
            f"{name} must be a whole number written with at most {MAX_DIGITS} digits 0-9.",
            expression=[name],
        )
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be between {minimum} and {maximum}.", expression=[name])
    return value


def text(raw: str, name: str, *, max_chars: int = MAX_TEXT) -> str:
    """Free text of 1 to ``max_chars`` characters, none of them a control (:data:`TEXT_CHARS`)."""
    if not raw or len(raw) > max_chars or _TEXT.fullmatch(raw) is None:
        raise BadRequest(
            f"{name} must be 1-{max_chars} characters, without control characters.",
            expression=[name],
        )
    return raw


def token(raw: str, name: str, *, max_chars: int = MAX_TEXT) -> tuple[str | None, str]:
    """A FHIR token ``[system|]code`` → (system or None, code); both parts checked as text."""
    checked = text(raw, name, max_chars=max_chars)
    system, bar, code = checked.rpartition("|")
    if not code:
        raise BadRequest(f"{name} needs a code after '|'.", expression=[name])
    return (system if bar else None), code


def token_list(request: Request, name: str) -> list[str]:
    """Comma-separated, repeatable token values (``status=a,b&status=c``), each checked."""
    out: list[str] = []
    for value in repeated(request, name):
        for part in value.split(","):
            if part:
                token(part, name)
                out.append(part)
    if len(out) > MAX_REPEATS * 2:
        raise BadRequest(f"Too many values for {name}.", expression=[name])
    return out


def choice(raw: str, name: str, allowed: Collection[str]) -> str:
    if raw not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(sorted(allowed))}.", expression=[name])
    return raw


def count_param(request: Request, default: int = 50, maximum: int = MAX_COUNT) -> int:
    """``_count``: ``0`` asks for the total only (FHIR); more than ``maximum`` is served as
    ``maximum`` (FHIR lets a server return fewer than asked); more than :data:`MAX_DIGITS`
    digits is ``400``."""
    raw = one(request, "_count")
    if raw is None:
        return default
    value = whole_number(raw, "_count", maximum=10**MAX_DIGITS)
    return min(value, maximum)


def offset_param(request: Request) -> int:
    raw = one(request, "_offset")
    if raw is None:
        return 0
    return whole_number(raw, "_offset", maximum=MAX_OFFSET)


# --- dates ------------------------------------------------------------------------------------


def _bad_date(name: str) -> BadRequest:
    return BadRequest(
        f"{name} must be a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD or "
        "YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm], years 0001-9999, offsets up to ±14:00)"
        + (" with an optional eq/ge/gt/le/lt prefix." if name == "date" else "."),
        expression=[name],
    )


def _field(m: re.Match[str], group: str, low: int, high: int, name: str) -> int:
    raw = m.group(group)
    if raw is None:
        return low
    value = int(raw)
    if not low <= value <= high:
        raise _bad_date(name)
    return value


def date_range(raw: str, name: str) -> tuple[str, int, int]:
    """One value → (prefix, first µs, last µs) in UTC microseconds since 0001-01-01.

    A value without a time covers its whole year, month or day in UTC; a value with a time is
    that instant (no offset means UTC). The result may lie outside what ``datetime`` holds.
    """
    m = _DATE_VALUE.fullmatch(raw) if len(raw) <= MAX_DATE_CHARS and raw.isascii() else None
    if m is None:
        raise _bad_date(name)
    year = _field(m, "y", 1, 9999, name)
    month = _field(m, "mo", 1, 12, name)
    day = _field(m, "d", 1, calendar.monthrange(year, month)[1], name)
    first_day = date(year, month, day).toordinal()
    if m.group("h") is None:
        if m.group("d") is not None:
            last_day = first_day
        elif m.group("mo") is not None:
            last_day = date(year, month, calendar.monthrange(year, month)[1]).toordinal()
        else:
            last_day = date(year, 12, 31).toordinal()
        return m.group("prefix") or "eq", first_day * _DAY_US, (last_day + 1) * _DAY_US - 1
    hour = _field(m, "h", 0, 23, name)
    minute = _field(m, "mi", 0, 59, name)
    second = _field(m, "s", 0, 60, name)  # 60: a leap second, FHIR allows it
    fraction = int((m.group("f") or "0").ljust(6, "0")[:6])
    offset = _offset_us(m.group("tz"), name)
    local = (first_day * 86_400 + hour * 3600 + minute * 60 + second) * _US + fraction
    instant = local - offset
    return m.group("prefix") or "eq", instant, instant


def _offset_us(tz: str | None, name: str) -> int:
    if tz is None or tz == "Z":
        return 0
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    if minutes > 59 or hours > 14 or (hours == 14 and minutes):
        raise _bad_date(name)
    sign = -1 if tz[0] == "-" else 1
    return sign * (hours * 3600 + minutes * 60) * _US


def _to_datetime(us: int) -> datetime:
    """Microseconds → aware UTC datetime, clamped to ``datetime``'s range."""
    return _EPOCH + timedelta(microseconds=min(max(us, MIN_US), MAX_US) - MIN_US)


def date_bounds(values: Sequence[str]) -> tuple[datetime | None, datetime | None]:
    """``date`` values → (inclusive lower, inclusive upper) bounds in UTC; all must hold.

    Bounds beyond ``datetime``'s range are clamped; a lower bound after its end (or an upper
    one before its start) can match nothing, and comes back as the impossible pair
    (``datetime.max``, ``datetime.min``) so a store query finds nothing.
    """
    lower: int | None = None
    upper: int | None = None
    for raw in values:
        prefix, start, end = date_range(raw.strip(), "date")
        lo = {"eq": start, "ge": start, "gt": end + 1}.get(prefix)
        hi = {"eq": end, "le": end, "lt": start - 1}.get(prefix)
        if lo is not None:
            lower = lo if lower is None else max(lower, lo)
        if hi is not None:
            upper = hi if upper is None else min(upper, hi)
    if (lower is not None and lower > MAX_US) or (upper is not None and upper < MIN_US):
        return _to_datetime(MAX_US), _to_datetime(MIN_US)
    return (
        None if lower is None else _to_datetime(lower),
        None if upper is None else _to_datetime(upper),
    )


def instant_param(raw: str, name: str) -> datetime:
    """A FHIR date or dateTime without prefix → its first instant in UTC (clamped)."""
    value = raw.strip()
    if not (value[:1].isascii() and value[:1].isdigit()):
        raise _bad_date(name)
    _, start, _ = date_range(value, name)
    return _to_datetime(start)

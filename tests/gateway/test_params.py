"""The strict parameter parser (``gateway/fhir/params.py``): property tests over random input,
then the inputs that used to reach ``500`` sent over real HTTP, and the clamped date bounds
against real SQLite and PostgreSQL stores."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.audit.events import build_audit_event
from gateway.audit.store import AuditStore
from gateway.db import create_schema, make_engine
from gateway.errors import BadRequest
from gateway.fhir.params import (
    MAX_DIGITS,
    MAX_OFFSET,
    TEXT_CHARS,
    date_bounds,
    date_range,
    instant_param,
    text,
    token,
    whole_number,
)
from simulators.population import SCENARIOS
from tests.gateway.audit_support import started_store
from tests.gateway.harness import Gateway, assert_outcome
from tests.gateway.test_audit_events import BASE, make_record

BOTH = SCENARIOS["both"].nhs_number or ""
UTC_MIN = datetime.min.replace(tzinfo=UTC)
UTC_MAX = datetime.max.replace(tzinfo=UTC)
PROPERTY = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
HOSTILE = [
    "²",
    "٣",
    "١٢",
    "1²",
    "𝟗",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1_000",
    "0x10",
    "1e3",
    "",
    "9" * 5000,
]


def _refused(call: Callable[[], Any], name: str, raw: str) -> None:
    """``call`` raised BadRequest naming ``name`` without repeating ``raw`` (may be PII)."""
    with pytest.raises(BadRequest) as caught:
        call()
    assert caught.value.expression == (name,)
    if len(raw) >= 8:
        assert raw not in caught.value.message


def _outcome_or(call: Callable[[], Any], name: str, raw: str) -> Any:
    """The value ``call`` gives, or None when it refused properly (BadRequest naming ``name``)."""
    try:
        return call()
    except BadRequest as exc:
        assert exc.expression == (name,)
        assert exc.status == 400
        if len(raw) >= 8:
            assert raw not in exc.message
        return None


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", HOSTILE)
def test_non_ascii_and_oversized_numbers_are_refused(raw: str) -> None:
    _refused(lambda: whole_number(raw, "_count", maximum=200), "_count", raw)


def test_whole_numbers_in_range() -> None:
    assert whole_number("0", "_offset", maximum=MAX_OFFSET) == 0
    assert whole_number("007", "_offset", maximum=MAX_OFFSET) == 7
    assert whole_number(str(MAX_OFFSET), "_offset", maximum=MAX_OFFSET) == MAX_OFFSET
    _refused(
        lambda: whole_number(str(MAX_OFFSET + 1), "_offset", maximum=MAX_OFFSET), "_offset", ""
    )


@PROPERTY
@given(
    st.text(max_size=40)
    | st.integers().map(str)
    | st.text(alphabet="0123456789", min_size=9, max_size=6000)
    | st.text(alphabet=st.characters(categories=["Nd", "No"]), max_size=12)
)
def test_whole_number_gives_a_bounded_int_or_bad_request(raw: str) -> None:
    value = _outcome_or(lambda: whole_number(raw, "_offset", maximum=MAX_OFFSET), "_offset", raw)
    if value is not None:
        assert type(value) is int and 0 <= value <= MAX_OFFSET
        assert raw.isascii() and len(raw) <= MAX_DIGITS and int(raw) == value


@PROPERTY
@given(st.text(max_size=300))
def test_text_and_token_are_bounded_and_free_of_controls(raw: str) -> None:
    value = _outcome_or(lambda: text(raw, "agent", max_chars=255), "agent", raw)
    if value is not None:
        assert value == raw and 0 < len(value) <= 255 and re.fullmatch(TEXT_CHARS + "+", value)
    parsed = _outcome_or(lambda: token(raw, "purpose"), "purpose", raw)
    if parsed is not None:
        system, code = parsed
        assert code and "|" not in code and re.fullmatch(TEXT_CHARS + "+", code)
        assert (system is None) == ("|" not in raw)


def test_control_characters_never_reach_the_store() -> None:
    for raw in ("a\x00b", "line\nbreak", "\u202ecode", "x" * 300):
        _refused(lambda raw=raw: text(raw, "agent", max_chars=255), "agent", raw)  # type: ignore[misc]


# --- dates ------------------------------------------------------------------------------------

EXTREMES = [
    "ge0001-01-01T00:00:00+14:00",
    "le0001-01-01T00:00:00+14:00",
    "gt0001-01-01T00:00:00+14:00",
    "lt0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "gt9999-12-31T23:59:59.999999-14:00",
    "le9999-12-31T23:59:60-14:00",
    "gt9999-12-31",
    "lt0001",
    "eq9999",
]


@pytest.mark.parametrize("raw", EXTREMES)
def test_extreme_dates_clamp_to_usable_utc_bounds(raw: str) -> None:
    lower, upper = date_bounds([raw])
    for bound in (lower, upper):
        if bound is not None:
            assert bound.tzinfo is UTC
            assert bound.astimezone(UTC) == bound  # what the store does with it: no overflow


def test_clamping_keeps_the_meaning() -> None:
    # Before every representable instant: a lower bound there is no bound at all ...
    assert date_bounds(["ge0001-01-01T00:00:00+14:00"]) == (UTC_MIN, None)
    # ... an upper bound there (or a lower one after the last) matches nothing.
    assert date_bounds(["lt0001-01-01T00:00:00+14:00"]) == (UTC_MAX, UTC_MIN)
    assert date_bounds(["9999-12-31T23:59:59-14:00"]) == (UTC_MAX, UTC_MIN)
    assert date_bounds(["le9999-12-31T23:59:59-14:00"]) == (None, UTC_MAX)
    assert date_bounds(["2024"]) == (
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    )
    assert date_bounds(["2024-02"])[1] == datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    assert instant_param("0001-01-01T00:00:00+14:00", "since") == UTC_MIN
    assert instant_param("2026-11-23T10:00:00+01:00", "since") == datetime(
        2026, 11, 23, 9, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "raw",
    [
        "2024-13-01",
        "2024-02-30",
        "0000-01-01",
        "2024-01-01T24:00:00Z",
        "2024-01-01T10:60Z",
        "2024-01-01T10:00:00+14:30",
        "2024-01-01T10:00:00+15:00",
        "2024-01-01T10:00:00+02:60",
        "2024-01-01+01:00",
        "2024-01-01T10",
        "ne2024-01-01",
        "sa2024",
        "２０２４-01-01",
        "2024-٠١-01",
        "yesterday",
        "9" * 5000,
    ],
)
def test_malformed_dates_are_refused(raw: str) -> None:
    _refused(lambda: date_bounds([raw]), "date", raw)


@st.composite
def fhir_datetimes(draw: st.DrawFn) -> tuple[str, datetime | None]:
    """A valid FHIR dateTime (any year, offsets to ±14:00) and, where ``datetime`` can hold
    it in UTC, the instant it names, computed independently by ``datetime`` itself."""
    year = draw(st.integers(1, 9999))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    hour, minute, second = (
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    micro = draw(st.integers(0, 999_999))
    offset_min = draw(st.integers(-14 * 60, 14 * 60))
    sign = "-" if offset_min < 0 else "+"
    tz = (
        "Z"
        if offset_min == 0 and draw(st.booleans())
        else (f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}")
    )
    raw = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}{tz}"
    local = datetime(
        year,
        month,
        day,
        hour,
        minute,
        second,
        micro,
        tzinfo=timezone(timedelta(minutes=offset_min)),
    )
    try:
        expected: datetime | None = local.astimezone(UTC)
    except OverflowError:
        expected = None
    return raw, expected


@PROPERTY
@given(fhir_datetimes(), st.sampled_from(["", "eq", "ge", "gt", "le", "lt"]))
@example(("0001-01-01T00:00:00.000000+14:00", None), "ge")
@example(("9999-12-31T23:59:59.999999-14:00", None), "le")
def test_every_valid_fhir_datetime_gives_utc_bounds(
    value: tuple[str, datetime | None], prefix: str
) -> None:
    raw, expected = value
    lower, upper = date_bounds([prefix + raw])
    for bound in (lower, upper):
        assert bound is None or (bound.tzinfo is UTC and UTC_MIN <= bound <= UTC_MAX)
    if expected is not None and prefix in ("", "eq", "ge"):
        assert lower == expected
    if expected is not None and prefix in ("", "eq", "le"):
        assert upper == expected
    if expected is not None and UTC_MIN < expected < UTC_MAX:
        tick = timedelta(microseconds=1)
        assert {"gt": lower, "lt": upper}.get(prefix, expected) in (
            expected,
            expected + tick,
            expected - tick,
        )


@PROPERTY
@given(
    st.lists(
        st.text(max_size=45)
        | st.from_regex(
            r"(eq|ge|gt|le|lt|ne)?[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?",
            fullmatch=True,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_date_bounds_give_utc_bounds_or_bad_request(values: list[str]) -> None:
    bounds = _outcome_or(lambda: date_bounds(values), "date", "")
    if bounds is not None:
        for bound in bounds:
            assert bound is None or (bound.tzinfo is UTC and bound.astimezone(UTC) == bound)


@PROPERTY
@given(st.text(max_size=45))
def test_instant_param_gives_an_instant_or_bad_request(raw: str) -> None:
    value = _outcome_or(lambda: instant_param(raw, "since"), "since", raw)
    if value is not None:
        assert value.tzinfo is UTC and value.astimezone(UTC) == value
        assert date_range(raw.strip(), "since")[0] == "eq"


# --- the clamped bounds in real stores --------------------------------------------------------


async def _bounds_query_the_store(store: AuditStore) -> None:
    await store.append(build_audit_event(make_record(request_id="params-bounds"), BASE))
    for values, found in (
        (["ge0001-01-01T00:00:00+14:00"], 1),
        (["le9999-12-31T23:59:59-14:00"], 1),
        (["9999-12-31T23:59:59-14:00"], 0),
        (["lt0001-01-01T00:00:00+14:00"], 0),
    ):
        lower, upper = date_bounds(values)
        assert await store.count(date_ge=lower, date_le=upper) == found, values
        assert len(await store.search(date_ge=lower, date_le=upper)) == found, values


async def test_clamped_bounds_query_sqlite(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    await create_schema(engine)
    store = AuditStore(engine)
    await store.start()
    try:
        await _bounds_query_the_store(store)
    finally:
        await store.close()
        await engine.dispose()


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[AuditStore]:
    async with started_store(postgres_url, emptied=True) as store:
        yield store


async def test_clamped_bounds_query_postgres(pg_store: AuditStore) -> None:
    await _bounds_query_the_store(pg_store)


# --- over HTTP: what used to be 500 -----------------------------------------------------------


def _ig(gateway: Gateway) -> dict[str, str]:
    return gateway.headers(
        role="R0001",
        org="X26",
        purpose="HOPERAT",
        sub="ig-lead-params",
        scopes=("user/AuditEvent.rs", "user/AuditEvent.c"),
    )


@pytest.mark.parametrize("name", ["_count", "_offset"])
@pytest.mark.parametrize("raw", ["²", "٣", "9" * 5000])
async def test_hostile_paging_is_400_naming_the_parameter(
    gateway: Gateway, name: str, raw: str
) -> None:
    resp = await gateway.get("/CarePlan", params={"patient": BOTH, name: raw})
    body = assert_outcome(resp, 400, "invalid")
    assert body["issue"][0]["expression"] == [name]
    resp = await gateway.get("/AuditEvent", params={name: raw}, headers=_ig(gateway))
    body = assert_outcome(resp, 400, "invalid")
    assert body["issue"][0]["expression"] == [name]
    if len(raw) > 1:
        assert raw not in resp.text


@pytest.mark.parametrize("raw", EXTREMES)
async def test_extreme_audit_dates_answer_a_bundle(gateway: Gateway, raw: str) -> None:
    await gateway.get(f"/Patient/{BOTH}")  # at least one event in the trail
    resp = await gateway.get("/AuditEvent", params={"date": raw}, headers=_ig(gateway))
    assert resp.status_code == 200, resp.text
    bundle = resp.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    everything = raw.startswith(("ge0001", "le9999", "gt0001"))
    assert (bundle["total"] > 0) == everything, raw


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_extreme_since_answers_a_bundle(gateway: Gateway, raw: str) -> None:
    resp = await gateway.get("/$privacy-alerts", params={"since": raw}, headers=_ig(gateway))
    assert resp.status_code == 200, resp.text
    assert resp.json()["resourceType"] == "Bundle"


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/AuditEvent", {"date": "2024-02-30"}, "date"),
        ("/AuditEvent", {"agent": "gp\x00"}, "agent"),
        ("/AuditEvent", {"date": ["2024"] * 11}, "date"),
        ("/$privacy-alerts", {"since": "ge2024-01-01"}, "since"),
        ("/$privacy-alerts", {"since": "٢٠٢٤-01-01"}, "since"),
    ],
)
async def test_malformed_audit_parameters_are_400(
    gateway: Gateway, path: str, params: dict[str, Any], name: str
) -> None:
    resp = await gateway.get(path, params=params, headers=_ig(gateway))
    body = assert_outcome(resp, 400, "invalid")
    assert body["issue"][0]["expression"] == [name]


async def test_unknown_parameter_names_are_not_echoed(gateway: Gateway) -> None:
    resp = await gateway.get(f"/Patient/{BOTH}", params={"9990000018": "x", "colour": "blue"})
    body = assert_outcome(resp, 400, "invalid")
    assert "9990000018" not in resp.text
    assert body["issue"][0]["expression"] == ["(unrecognised name)", "colour"]


async def test_careplan_status_is_not_echoed(gateway: Gateway) -> None:
    resp = await gateway.get("/CarePlan", params={"patient": BOTH, "status": "Joan Smith"})
    assert_outcome(resp, 400, "invalid")
    assert "Joan" not in resp.text

"""The body of a Consent request over real HTTP: media type, size, limits, edge values
(issue 9, findings 3, 8 and 10 for the Consent API). Nothing here may reach a 500, and
nothing refused is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from consent.limits import MAX_CONSENT_BYTES
from gateway.policy.store import ConsentDirectiveRow, ConsentVersionRow
from tests.gateway.consent_support import delete_rows
from tests.gateway.harness import assert_fhir, assert_outcome
from tests.gateway.test_consent_api import (
    NHS_BOTH,
    NHS_COMMUNITY,
    NHS_SYSTEM,
    ConsentGateway,
    consent_gateway,
    objection,
    reason_codes,
)

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


gw = consent_gateway("consent-body")


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def nothing_left_behind(gw: ConsentGateway) -> AsyncIterator[None]:
    yield
    await delete_rows(gw.engine, ConsentDirectiveRow, ConsentVersionRow)


async def stored_rows(gw: ConsentGateway) -> int:
    async with gw.engine.connect() as conn:
        directives = await conn.scalar(select(func.count()).select_from(ConsentDirectiveRow))
        versions = await conn.scalar(select(func.count()).select_from(ConsentVersionRow))
    return int(directives or 0) + int(versions or 0)


async def send(gw: ConsentGateway, content: Any, content_type: str | None) -> httpx.Response:
    headers = gw.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await gw.client.post(f"{gw.base_url}/Consent", content=content, headers=headers)


def as_bytes(body: Any) -> bytes:
    return json.dumps(body).encode()


# --- media type (415) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/xml", "application/fhir+xml", "json"]
)
async def test_a_body_that_is_not_json_is_415(gw: ConsentGateway, content_type: str | None) -> None:
    oo = assert_outcome(await send(gw, as_bytes(objection()), content_type), 415, "not-supported")
    assert "application/fhir+json" in oo["issue"][0]["diagnostics"]
    assert await stored_rows(gw) == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/fhir+json", "application/json", "application/fhir+json; charset=utf-8",
     "Application/JSON;charset=UTF-8"],
)  # fmt: skip
async def test_json_media_types_with_parameters_are_accepted(
    gw: ConsentGateway, content_type: str
) -> None:
    assert_fhir(await send(gw, as_bytes(objection()), content_type), 201)


async def test_put_checks_the_media_type_too(gw: ConsentGateway) -> None:
    stored = assert_fhir(await gw.post(objection()), 201)
    resp = await gw.client.put(
        f"{gw.base_url}/Consent/{stored['id']}",
        content=as_bytes({**stored, "status": "inactive"}),
        headers={**gw.headers(), "Content-Type": "text/plain"},
    )
    assert_outcome(resp, 415, "not-supported")
    assert assert_fhir(await gw.get(f"/Consent/{stored['id']}"), 200) == stored


# --- size (413) and limits (422) ---------------------------------------------------------


async def assert_too_long(gw: ConsentGateway, narrative_chars: int, limit: str) -> None:
    """A Consent whose narrative has ``narrative_chars`` characters is refused 413
    ``too-long``, the diagnostics naming ``limit``, and nothing is stored."""
    body = objection()
    body["text"] = {"status": "generated", "div": "<div>" + "x" * narrative_chars + "</div>"}
    oo = assert_outcome(await send(gw, as_bytes(body), "application/fhir+json"), 413, "too-long")
    assert limit in oo["issue"][0]["diagnostics"]
    assert await stored_rows(gw) == 0


async def test_a_10_mb_consent_is_413(gw: ConsentGateway) -> None:
    """Refused at the door by the gateway's body limit (1 MiB), which names its own figure."""
    await assert_too_long(gw, 10_000_000, "1048576 bytes")


async def test_a_consent_over_its_own_limit_is_413_naming_it(gw: ConsentGateway) -> None:
    """Under the gateway's body limit but over the Consent's (64 KiB): the Consent route's."""
    await assert_too_long(gw, 100_000, "64 KiB")


async def test_a_consent_without_content_length_is_read_only_up_to_the_limit(
    gw: ConsentGateway,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"resourceType": "Consent", "text": {"div": "'
        for _ in range(2 * MAX_CONSENT_BYTES // 1024):
            sent += 1024
            yield b"x" * 1024
        yield b'"}}'

    try:
        resp = await send(gw, chunks(), "application/fhir+json")
    except httpx.TransportError:  # the gateway may stop reading once it has answered
        pytest.fail("the gateway closed the connection instead of answering 413")
    assert_outcome(resp, 413, "too-long")


async def test_a_consent_just_under_the_limit_is_not_refused_for_its_size(
    gw: ConsentGateway,
) -> None:
    body = objection()
    body["text"] = {"status": "generated", "div": "<div>x</div>"}
    padding = MAX_CONSENT_BYTES - len(as_bytes(body)) - 1
    body["text"]["div"] = "<div>" + "x" * (padding - len("<div></div>") + len("x")) + "</div>"
    assert len(as_bytes(body)) <= MAX_CONSENT_BYTES
    assert_fhir(await send(gw, as_bytes(body), "application/fhir+json"), 201)


async def test_150000_identifiers_are_refused(gw: ConsentGateway) -> None:
    body = {**objection(), "identifier": [{"value": str(i)} for i in range(150_000)]}
    assert_outcome(await send(gw, as_bytes(body), "application/fhir+json"), 413, "too-long")
    small = {**objection(), "identifier": [{"value": str(i)} for i in range(101)]}
    oo = assert_outcome(await send(gw, as_bytes(small), "application/fhir+json"), 422, "too-costly")
    assert "Consent.identifier has more than 100 items" in oo["issue"][0]["diagnostics"]
    assert await stored_rows(gw) == 0


async def test_a_500_deep_provision_is_refused_not_a_500(gw: ConsentGateway) -> None:
    # Written out by hand: the JSON encoders themselves stop before 500 levels.
    deep = '{"type": "deny", "provision": [' * 499 + '{"type": "deny"}' + "]}" * 499
    text = json.dumps({**objection(), "provision": "DEEP"}).replace('"DEEP"', deep)
    resp = await send(gw, text.encode(), "application/json")
    oo = assert_outcome(resp, 422, "too-costly")
    assert "at most 4 levels" in oo["issue"][0]["diagnostics"]
    shallow: dict[str, Any] = {"type": "deny"}
    for _ in range(4):
        shallow = {"type": "deny", "provision": [shallow]}
    oo = assert_outcome(await gw.post({**objection(), "provision": shallow}), 422, "too-costly")
    assert "at most 4 levels" in oo["issue"][0]["diagnostics"]
    assert await stored_rows(gw) == 0


# --- edge values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "period",
    [
        {"start": "0001-01-01", "end": "9999-12-31T23:59:59+14:00"},
        {"start": "0001-01-01T00:00:00+14:00", "end": "9999-12-31T23:59:59-14:00"},
        {"start": "0001", "end": "9999"},
    ],
)
async def test_periods_at_the_ends_of_the_calendar_are_stored_and_enforced(
    gw: ConsentGateway, period: dict[str, str]
) -> None:
    body = objection()
    body["provision"] = {**body["provision"], "period": period}
    assert_fhir(await gw.post(body), 201)
    resp = await gw.get(f"/Patient/{NHS_BOTH}/$everything", scopes=("user/*.rs",))
    oo = assert_outcome(resp, 403, "forbidden")
    assert reason_codes(oo) == ["patient-objected"]


@pytest.mark.parametrize("period", [{"start": "2026-11-23T10:00:00+15:00"}, {"end": "٢٠٢٦"}])
async def test_a_period_that_is_not_fhir_is_refused(
    gw: ConsentGateway, period: dict[str, str]
) -> None:
    body = objection()
    body["provision"] = {**body["provision"], "period": period}
    resp = await gw.post(body)
    assert resp.status_code in (400, 422), resp.text
    assert await stored_rows(gw) == 0


async def test_an_nhs_number_in_other_digits_is_422(gw: ConsentGateway) -> None:
    for patient in (
        {"identifier": {"system": NHS_SYSTEM, "value": NHS_BOTH.translate(ARABIC_INDIC)}},
        {"reference": f"Patient/{NHS_BOTH.translate(ARABIC_INDIC)}"},
    ):
        oo = assert_outcome(
            await gw.post({**objection(), "patient": patient}), 422, "business-rule"
        )
        assert "not a valid NHS number" in oo["issue"][0]["diagnostics"]
    query = {"patient": NHS_BOTH.translate(ARABIC_INDIC)}
    assert_outcome(await gw.get("/Consent", params=query), 400, "invalid")
    assert await stored_rows(gw) == 0


async def test_a_patient_whose_reference_and_identifier_disagree_is_422(
    gw: ConsentGateway,
) -> None:
    patient = {
        "reference": f"Patient/{NHS_COMMUNITY}",
        "identifier": {"system": NHS_SYSTEM, "value": NHS_BOTH},
    }
    oo = assert_outcome(await gw.post({**objection(), "patient": patient}), 422, "business-rule")
    assert "name different people" in oo["issue"][0]["diagnostics"]
    agreeing = {**patient, "reference": f"Patient/{NHS_BOTH}"}
    assert_fhir(await gw.post({**objection(), "patient": agreeing}), 201)

"""The IG console (/apps/ig/) in headless Chromium against the demo."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.apps.conftest import BOTH, GP, Demo, api_token, check_page

UNRELATED = "F86998"
REASON = "Collapsed at the walk-in centre, needs medication history"


def _break_glass(demo: Demo, sub: str) -> str:
    """A break-glass read of BOTH by a clinician of an unrelated practice; its request id."""
    token = api_token(demo, role="R8000", org=UNRELATED, patient=BOTH, sub=sub)
    answer = httpx.get(
        f"{demo.fhir}/Patient/{BOTH}/$everything",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Purpose-Of-Use": "ETREAT",
            "X-Break-Glass-Reason": REASON,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"]


def _open_console(demo: Demo, page: Any, sub: str = "privacy-officer-1") -> None:
    page.goto(demo.launch(role="R0001", org=GP, purpose="HOPERAT", sub=sub, app="ig"))
    expect(page.locator("#page-heading")).to_have_text("Overview")


def test_privacy_officer_reviews_the_queue_until_it_is_empty(demo: Demo, page: Any) -> None:
    _break_glass(demo, "walk-in-doctor-1")
    _open_console(demo, page)
    expect(page.locator("#chart-accesses svg")).to_be_visible()
    expect(page.locator("#chart-break-glass svg")).to_be_visible()
    expect(page.locator("#chart-alerts svg")).to_be_visible()
    check_page(page, "ig-01-overview")
    page.click("a[href='#queue']")
    expect(page.locator("#page-heading")).to_have_text("Emergency access reviews")
    ours = page.locator(".app-review", has_text="walk-in-doctor-1")
    expect(ours).to_have_count(1)
    expect(ours).to_contain_text(REASON)
    expect(ours).to_contain_text(UNRELATED)
    expect(ours).to_contain_text("999 100 0003")
    check_page(page, "ig-02-queue")
    # A review without a choice or note is refused, saying what is missing.
    ours.locator("button").click()
    expect(ours.locator(".nhsuk-error-summary")).to_contain_text(
        "Choose appropriate or inappropriate"
    )
    expect(ours.locator(".nhsuk-error-summary")).to_contain_text("Enter a note")
    check_page(page, "ig-03-review-errors")
    # Review every waiting event (ours first); the queue shrinks by one each time.
    first = True
    while page.locator(".app-review").count():
        before = page.locator(".app-review").count()
        card = ours if first else page.locator(".app-review").first
        card.locator("input[value=appropriate]").check()
        card.locator("textarea").fill("Checked with the walk-in centre: emergency care.")
        card.locator("button").click()
        expect(page.locator(".nhsuk-notification-banner--success")).to_contain_text(
            "Review recorded: appropriate"
        )
        expect(page.locator(".app-review")).to_have_count(before - 1)
        first = False
    expect(page.locator("#queue-count")).to_have_text(
        "There are no emergency accesses waiting for review."
    )
    check_page(page, "ig-04-queue-empty")


def test_access_report_downloads_csv_with_the_break_glass_event(demo: Demo, page: Any) -> None:
    request_id = _break_glass(demo, "walk-in-doctor-2")
    _open_console(demo, page, "privacy-officer-2")
    page.click("a[href='#report']")
    page.click("#report-submit")
    expect(page.locator("#report-form .nhsuk-error-summary")).to_contain_text(
        "Enter the NHS number as 10 digits"
    )
    page.fill("#report-nhs", "999 100 0003")
    page.click("#report-submit")
    expect(page.locator("#report-table")).to_contain_text("walk-in-doctor-2")
    check_page(page, "ig-05-access-report")
    with page.expect_download() as download:
        page.click("#report-csv")
    saved = download.value
    assert saved.suggested_filename == "access-report-9991000003.csv"
    rows = list(csv.DictReader(io.StringIO(open(saved.path(), encoding="utf-8").read())))
    ours = [r for r in rows if r["request id"] == request_id]
    assert len(ours) == 1
    assert ours[0]["user"] == "walk-in-doctor-2"
    assert ours[0]["organisation"] == UNRELATED
    assert ours[0]["purpose"] == "ETREAT"
    assert ours[0]["break-glass"] == "yes"


def test_audit_search_pages_and_filters(demo: Demo, page: Any) -> None:
    token = api_token(demo, role="R8000", org=GP, patient=BOTH, sub="busy-gp-1")
    for _ in range(22):
        assert (
            httpx.get(
                f"{demo.fhir}/Patient/{BOTH}", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
    ig = api_token(demo, role="R0001", org=GP, purpose="HOPERAT", app="ig")
    total = httpx.get(
        f"{demo.fhir}/AuditEvent",
        params={"agent": "busy-gp-1", "_count": "1"},
        headers={"Authorization": f"Bearer {ig}", "X-Purpose-Of-Use": "HOPERAT"},
    ).json()["total"]
    assert 22 < total < 40  # the 22 reads, plus the launch and the token issued
    _open_console(demo, page, "privacy-officer-3")
    page.click("a[href='#search']")
    page.fill("#agent", "busy-gp-1")
    page.click("#search-submit")
    expect(page.locator("#results-count")).to_have_text(f"Showing 1 to 20 of {total} events")
    expect(page.locator("#results-table tbody tr")).to_have_count(20)
    expect(page.locator("#page-previous")).to_have_count(0)
    check_page(page, "ig-06-search")
    page.click("#page-next")
    expect(page.locator("#results-count")).to_have_text(
        f"Showing 21 to {total} of {total} events"
    )
    expect(page.locator("#results-table tbody tr")).to_have_count(total - 20)
    expect(page.locator("#results-table")).to_contain_text("busy-gp-1")
    page.click("#page-previous")
    expect(page.locator("#results-count")).to_have_text(f"Showing 1 to 20 of {total} events")
    page.check("#break-glass")
    page.click("#search-submit")
    expect(page.locator("#results-count")).to_have_text("No events match.")


def test_privacy_alerts_by_rule_list_their_events(demo: Demo, page: Any) -> None:
    _break_glass(demo, "walk-in-doctor-3")
    _open_console(demo, page, "privacy-officer-4")
    page.click("a[href='#alerts']")
    rule = page.locator("#rule-break-glass")
    expect(rule).to_contain_text("Emergency access used")
    alert = rule.locator(".nhsuk-card", has_text="walk-in-doctor-3")
    expect(alert).to_have_count(1)
    expect(alert.locator("table")).to_contain_text("999 100 0003")
    expect(alert.locator("table")).to_contain_text("Emergency care")
    check_page(page, "ig-07-alerts")


def test_other_roles_see_a_refusal_page(demo: Demo, page: Any) -> None:
    page.goto(demo.launch(role="R8000", org=GP, sub="curious-gp-1", app="ig"))
    expect(page.locator("#refusal-heading")).to_have_text(
        "This console is for information governance staff"
    )
    expect(page.locator(".nhsuk-header__navigation")).to_have_count(0)
    check_page(page, "ig-08-refused")

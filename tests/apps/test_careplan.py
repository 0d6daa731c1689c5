"""The shared care record viewer (/apps/careplan/) in headless Chromium against the demo."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.apps.conftest import BOTH, GP, Demo, api_token, check_page

DOB_CONFLICT = "9991000569"  # birth dates differ between the sources
COMMUNITY = "RWX"  # the community trust: holds the record of DOB_CONFLICT
UNRELATED = "F86999"  # a GP practice with no relationship with BOTH


def test_gp_ehr_launch_shows_banner_and_both_sources_plans(demo: Demo, page: Any) -> None:
    page.goto(demo.launch(role="R8000", org=GP, patient=BOTH, sub="gp-ehr-1"))
    banner = page.locator("#patient-banner")
    expect(banner).to_be_visible()
    expect(page.locator("#banner-name")).to_have_text("THURLOW, Joan Mary (Mrs)")
    expect(page.locator("#banner-nhs")).to_have_text("999 100 0003")
    expect(page.locator("#banner-born")).to_contain_text("2-Apr-1936")
    expect(page.locator("#banner-born")).to_contain_text("years)")
    expect(page.locator("#banner-gender")).to_have_text("Female")
    expect(page.locator("#banner-gp")).to_contain_text("F81001")
    expect(page.locator("#banner-sources")).to_have_text(
        "Information from: Thurrock Council, Thurrock Community Health"
    )
    expect(page.locator("#banner-deceased")).to_have_count(0)
    # Care plans side by side, one column per source organisation, each plan naming it.
    columns = page.locator(".app-source-column")
    expect(columns).to_have_count(2)
    expect(page.locator("#source-socialcare")).to_have_text("Thurrock Council")
    expect(page.locator("#source-community")).to_have_text("Thurrock Community Health")
    social = page.locator('[data-source="socialcare"] .app-plan')
    community = page.locator('[data-source="community"] .app-plan')
    expect(social).to_have_count(2)
    expect(community).to_have_count(3)
    plan = page.locator('[data-plan="socialcare.P900001.SP-900001"]')
    expect(plan).to_contain_text("Care and support plan")
    expect(plan).to_contain_text("Active")
    expect(plan).to_contain_text("12-Oct-2024 to now")
    expect(plan).to_contain_text("Sam Patel (Social Worker), Thurrock Council")
    expect(plan).to_contain_text("To give my husband a break from caring")
    expect(plan).to_contain_text("Managing toilet needs")
    expect(plan).to_contain_text("Thurrock Council (Adult social care)")
    expect(plan).to_contain_text("17-Jan-2026")
    expect(page.locator('[data-plan="community.C900001.cp-900001"]')).to_contain_text(
        "Thurrock Community Health (Community health)"
    )
    # The care team with contact roles; nothing said to be withheld or missing.
    team = page.locator("#care-team-table")
    expect(team).to_contain_text("Sam Patel")
    expect(team).to_contain_text("Lead professional")
    expect(team).to_contain_text("Community psychiatric nurse")
    expect(page.locator("#notice-withheld")).to_have_count(0)
    expect(page.locator("#notice-missing")).to_have_count(0)
    # The code and state are gone from the address bar; the token is in sessionStorage only.
    assert page.url == f"{demo.origin}/apps/careplan/"
    assert page.evaluate("Object.keys(localStorage).length") == 0
    assert "access_token" in page.evaluate("JSON.stringify(sessionStorage)")
    check_page(page, "careplan-01-gp-record")


def test_unrelated_organisation_is_denied_then_breaks_the_glass(demo: Demo, page: Any) -> None:
    page.goto(demo.launch(role="R8000", org=UNRELATED, patient=BOTH, sub="ed-doctor-1"))
    expect(page.locator("#denied-heading")).to_have_text("You do not have access to this record")
    expect(page.locator("main")).to_contain_text("no care relationship with this person")
    expect(page.locator(".nhsuk-card--warning")).to_contain_text(
        "Emergency access is recorded and reviewed"
    )
    expect(page.locator("#patient-banner")).to_have_count(0)
    expect(page.locator(".app-plan")).to_have_count(0)
    check_page(page, "careplan-02-denied")
    # No reason: an error, and nothing opens.
    page.click("#break-glass-submit")
    expect(page.locator(".nhsuk-error-summary")).to_contain_text(
        "Enter why you need emergency access to this record"
    )
    expect(page.locator("#break-glass-reason-error")).to_be_visible()
    expect(page.locator(".app-plan")).to_have_count(0)
    check_page(page, "careplan-03-break-glass-no-reason")
    page.fill("#break-glass-reason", "Unconscious in the emergency department, no GP record")
    page.click("#break-glass-submit")
    expect(page.locator("#patient-banner")).to_be_visible()
    expect(page.locator("main")).to_contain_text("You are using emergency access")
    expect(page.locator("main")).to_contain_text("recorded and will be reviewed")
    expect(page.locator('[data-source="socialcare"] .app-plan')).to_have_count(2)
    expect(page.locator('[data-source="community"] .app-plan')).to_have_count(3)
    check_page(page, "careplan-04-break-glass-record")
    # The trail has it, with the reason, as break-glass.
    ig = api_token(demo, role="R0001", org=GP, purpose="HOPERAT", app="ig")
    found = httpx.get(
        f"{demo.fhir}/AuditEvent",
        params={"agent": "ed-doctor-1", "break-glass": "true"},
        headers={"Authorization": f"Bearer {ig}", "X-Purpose-Of-Use": "HOPERAT"},
    ).json()
    assert found["total"] >= 1
    reasons = [
        x.get("valueString")
        for e in found["entry"]
        for a in e["resource"]["agent"]
        for x in a.get("extension", ())
    ]
    assert "Unconscious in the emergency department, no GP record" in reasons


def test_admin_staff_see_demographics_and_care_team_only(demo: Demo, page: Any) -> None:
    page.goto(demo.launch(role="R8008", org=GP, patient=BOTH, sub="receptionist-1"))
    expect(page.locator("#banner-nhs")).to_have_text("999 100 0003")
    expect(page.locator("#banner-born")).to_contain_text("2-Apr-1936")
    expect(page.locator("#care-team-table")).to_contain_text("Sam Patel")
    expect(page.locator(".app-plan")).to_have_count(0)
    expect(page.locator("#plans-withheld")).to_contain_text(
        "Care plans are not shown because your role lets you see this person's details and "
        "care team only"
    )
    expect(page.locator("#notice-withheld")).to_contain_text(
        "Some information is not available to you: your role lets you see this person's "
        "details and care team only"
    )
    check_page(page, "careplan-05-admin")


def test_data_quality_warning_names_element_and_sources_not_values(
    demo: Demo, page: Any
) -> None:
    page.goto(demo.launch(role="R8000", org=COMMUNITY, patient=DOB_CONFLICT, sub="dn-1"))
    notice = page.locator("#notice-quality")
    expect(notice).to_contain_text("Check these details")
    expect(notice).to_contain_text("The date of birth differs between")
    expect(notice).to_contain_text("Thurrock Council")
    expect(notice).to_contain_text("Thurrock Community Health")
    shown = page.locator("#banner-born").inner_text()
    assert shown.split(" (")[0] not in notice.inner_text()  # never the values
    check_page(page, "careplan-06-data-quality")


def test_sign_out_revokes_the_token_and_forgets_it(demo: Demo, page: Any) -> None:
    page.goto(demo.launch(role="R8000", org=GP, patient=BOTH, sub="gp-signout-1"))
    expect(page.locator("#patient-banner")).to_be_visible()
    token = page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem(JSON.parse("
        "sessionStorage.getItem('SMART_KEY')))); return s.tokenResponse.access_token; }"
    )
    page.click("#sign-out")
    expect(page.locator("h1")).to_have_text("You have signed out")
    assert page.evaluate("sessionStorage.length") == 0
    refused = httpx.get(
        f"{demo.fhir}/Patient/{BOTH}", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 401
    check_page(page, "careplan-07-signed-out")


def test_standalone_launch_through_the_demo_picker(demo: Demo, page: Any) -> None:
    page.goto(f"{demo.origin}/apps/careplan/")
    expect(page.locator("h1")).to_contain_text("Sign in to careplan")
    page.select_option("#role", "R8000")
    page.select_option("#org", GP)
    page.select_option("#patient", BOTH)
    page.click("button[value=staff]")
    expect(page.locator("#banner-nhs")).to_have_text("999 100 0003")
    expect(page.locator(".app-plan")).to_have_count(5)


def test_served_with_a_strict_content_security_policy(demo: Demo) -> None:
    for path in ("/apps/careplan/", "/apps/ig/", "/apps/shared/smart.js"):
        answer = httpx.get(demo.origin + path)
        assert answer.status_code == 200
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["referrer-policy"] == "no-referrer"
    page = httpx.get(demo.origin + "/apps/careplan/").text
    assert "<script>" not in page and "style=" not in page and "https://" not in page

"""The patient view (/apps/me/) on a phone-sized headless Chromium against the demo: the
person signs in through the demo sign-in's person path (standalone SMART launch, client
``me``), sees their details, care team, care plans and who has looked, and makes and
withdraws a sharing choice that the clinician's next request obeys."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.apps_me.conftest import BOTH, GP, Demo, api_token, check_page

NOPAT = "9991000577"  # a community mental health plan labelled NOPAT


def sign_in(demo: Demo, page: Any, person: str, level: str = "P9") -> None:
    page.goto(f"{demo.origin}/apps/me/")
    page.wait_for_url(re.compile(r".*/auth/authorize.*"))
    page.select_option("#person", person)
    page.select_option("#proofing", level)
    page.click("button[value=person]")
    page.wait_for_url(f"{demo.origin}/apps/me/")
    expect(page.locator("#choices-heading")).to_be_visible()


def clinician_reads(demo: Demo, token: str) -> httpx.Response:
    return httpx.get(
        f"{demo.fhir}/Patient/{BOTH}/$everything",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_my_record_care_plans_and_who_has_looked(demo: Demo, page: Any) -> None:
    gp = api_token(demo, role="R8000", org=GP, patient=BOTH, sub="gp-me-1")
    assert clinician_reads(demo, gp).status_code == 200
    sign_in(demo, page, BOTH)
    expect(page.locator("#details-list")).to_contain_text("Joan Mary")
    expect(page.locator("#details-list")).to_contain_text("2-Apr-1936")
    expect(page.locator("#care-team-list")).to_contain_text("Sam Patel")
    plans = page.locator("#plans .app-plan")
    expect(plans).to_have_count(5)
    plan = page.locator('[data-plan="socialcare.P900001.SP-900001"]')
    expect(plan).to_contain_text("Written by")
    expect(plan).to_contain_text("Current")
    access = page.locator("#access-list")
    expect(access).to_contain_text("Tilbury Health Centre (F81001)")
    expect(access).to_contain_text("Clinical Practitioner")
    expect(access).to_contain_text("Looked to care for you")
    expect(access).not_to_contain_text("gp-me-1")  # no staff ids (nor names, by default)
    expect(page.locator("#choices-does-not")).to_contain_text("does not stop emergency access")
    expect(page.locator("#choices-does-not")).to_contain_text(
        "does not change what each organisation keeps in its own records"
    )
    check_page(page, "me-01-record")


def test_an_objection_made_here_stops_the_clinicians_next_request(demo: Demo, page: Any) -> None:
    gp = api_token(demo, role="R8000", org=GP, patient=BOTH, sub="gp-me-2")
    sign_in(demo, page, BOTH)
    expect(page.locator("#no-choices")).to_be_visible()
    page.click("#objection-submit")
    expect(page.locator(".nhsuk-notification-banner--success")).to_contain_text(
        "Your choice has been saved"
    )
    expect(page.locator("#current-choices")).to_contain_text(
        "Do not share my record with any organisation"
    )
    refused = clinician_reads(demo, gp)
    assert refused.status_code == 403
    assert "patient-objected" in refused.text
    check_page(page, "me-02-objection-made")

    page.click("[data-withdraw]")
    expect(page.locator("#no-choices")).to_be_visible()
    expect(page.locator("#past-choices")).to_contain_text("Do not share my record")
    assert clinician_reads(demo, gp).status_code == 200
    check_page(page, "me-03-objection-withdrawn")


def test_a_nopat_plan_is_not_shown_and_nothing_says_so(demo: Demo, page: Any) -> None:
    sign_in(demo, page, NOPAT)
    expect(page.locator('[data-plan="community.C900013.cp-900013"]')).to_be_visible()
    expect(page.locator('[data-plan="socialcare.P900013.SP-900015"]')).to_be_visible()
    expect(page.locator("#plans .app-plan")).to_have_count(2)
    text = page.locator("main").inner_text().lower()
    for word in ("withheld", "hidden", "restricted", "not shown", "mental health"):
        assert word not in text, word
    check_page(page, "me-04-nopat")


def test_p5_sees_that_a_record_exists_and_only_their_choices(demo: Demo, page: Any) -> None:
    sign_in(demo, page, BOTH, "P5")
    expect(page.locator("#proofing-needed")).to_contain_text("You have a shared care record")
    expect(page.locator(".app-plan")).to_have_count(0)
    expect(page.locator("#access")).to_contain_text("once NHS login has checked who you are")
    expect(page.locator("#form-objection")).to_have_count(0)
    check_page(page, "me-05-p5")

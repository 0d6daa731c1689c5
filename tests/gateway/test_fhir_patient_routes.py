"""The person themself by the routes FHIR clients use beyond the plain reads: ``Goal``,
``CareTeam`` and ``Provenance`` by id and by search, ``POST [type]/_search``, ``POST``
operations, ``HEAD``, ``_include``/``_revinclude`` and ``_summary=count``.

The rules are those of ``test_patient_access.py``: a patient token reaches only its own
record, by every spelling of another (``not-own-record``, also for a number nobody holds);
what is withheld from the person (``NOPAT``) is neither returned, counted, included nor
announced, and a read of it by id is the same ``404`` as an id that never existed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from simulators.runner import RunningSources
from tests.gateway.harness import Gateway, assert_fhir
from tests.gateway.patient_support import (
    NHS_SYSTEM,
    UNKNOWN,
    as_person,
    entries,
    nhs,
    outcome_entries,
    patient_gateway,
    references,
    refused,
    staff,
)

ME = nhs("both")
OTHER = nhs("social_only")
NOPAT = nhs("nopat")
NOPAT_PLAN = "community.C900013.cp-900012"
FORM = "application/x-www-form-urlencoded"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gw(running_sources: RunningSources) -> AsyncIterator[Gateway]:
    async with patient_gateway(running_sources, socket=True) as gateway:
        yield gateway


def _break_glass(gw: Gateway) -> dict[str, str]:
    """A clinician under break-glass: sees what any relationship would show."""
    return staff(gw, "R8000", "F81001", purpose="ETREAT", reason="unconscious in A&E")


async def _ids(gw: Gateway, number: str, kind: str) -> list[str]:
    bundle = assert_fhir(await gw.get(f"/{kind}?patient={number}", headers=_break_glass(gw)))
    found = [r["id"] for r in entries(bundle) if r["resourceType"] == kind]
    assert found, (number, kind)
    return found


def _routes(base: str) -> list[tuple[str, str, dict[str, str] | None]]:
    """(method, path, form body) naming another person's record by the new routes."""
    ident = f"{NHS_SYSTEM}|{OTHER}"
    out: list[tuple[str, str, dict[str, str] | None]] = []
    for kind in ("Goal", "CareTeam", "Provenance"):
        out += [
            ("GET", f"/{kind}?patient={OTHER}", None),
            ("GET", f"/{kind}?patient=Patient/{OTHER}", None),
            ("GET", f"/{kind}?patient={base}/Patient/{OTHER}", None),
            ("GET", f"/{kind}?patient.identifier={ident}", None),
            ("GET", f"/{kind}?patient={OTHER}&_summary=count", None),
            ("POST", f"/{kind}/_search", {"patient": OTHER}),
            ("GET", f"/{kind}?patient={UNKNOWN}", None),  # nobody holds it: 403, never 404
        ]
    out += [
        ("GET", f"/Goal?subject=Patient/{OTHER}", None),
        ("GET", f"/CareTeam?subject={OTHER}", None),
        ("POST", "/CarePlan/_search", {"patient": f"Patient/{OTHER}"}),
        ("POST", "/Patient/_search", {"identifier": ident}),
        ("POST", "/Consent/_search", {"patient": OTHER}),
        ("POST", f"/Patient/{OTHER}/$everything", None),
        ("POST", f"/Patient/{OTHER}/$access-check", None),
        ("GET", f"/CarePlan?patient={OTHER}&_revinclude=Provenance:target", None),
        ("GET", f"/CarePlan?patient={OTHER}&_count=0", None),
        ("GET", f"/Patient/{OTHER}/$everything?_type=Goal&_count=1", None),
    ]
    return out


@pytest.mark.parametrize("index", range(len(_routes("x"))))
async def test_a_patient_token_reaches_nobody_else_by_the_new_routes(
    gw: Gateway, index: int
) -> None:
    method, path, form = _routes(gw.base_url)[index]
    resp = await gw.client.request(
        method, f"{gw.base_url}{path}", data=form, headers=as_person(gw, ME)
    )
    body = refused(resp, "not-own-record")
    assert "Ashcombe" not in resp.text  # the other person's surname
    assert len(body["issue"]) == 1 and body["issue"][0]["severity"] == "error"


async def test_another_persons_goal_careteam_provenance_by_id_and_head(gw: Gateway) -> None:
    me = as_person(gw, ME)
    for kind in ("Goal", "CareTeam", "Provenance"):
        for rid in (await _ids(gw, OTHER, kind))[:2]:
            resp = await gw.get(f"/{kind}/{rid}", headers=me)
            refused(resp, "not-own-record")
            assert "Ashcombe" not in resp.text
    head = await gw.client.head(f"{gw.base_url}/Patient/{OTHER}", headers=me)
    assert head.status_code == 403 and head.content == b""


async def test_the_person_follows_every_reference_in_their_own_record(gw: Gateway) -> None:
    """Their own ``$everything`` (GET and POST) names only what they may read: every literal
    reference in it resolves with their own token, and each search by the new routes
    returns exactly the resources of that type in it."""
    me = as_person(gw, ME)
    every = assert_fhir(await gw.get(f"/Patient/{ME}/$everything", headers=me))
    posted = await gw.client.post(f"{gw.base_url}/Patient/{ME}/$everything", headers=me)
    keys = {f"{r['resourceType']}/{r['id']}" for r in entries(every)}
    assert keys == {f"{r['resourceType']}/{r['id']}" for r in entries(assert_fhir(posted))}
    refs = {ref for r in entries(every) for ref in references(r) if not ref.startswith("#")}
    assert any(r.startswith("Goal/") for r in refs) and any(r.startswith("CareTeam/") for r in refs)
    for ref in sorted(refs):
        target = assert_fhir(await gw.get(f"/{ref}", headers=me))
        assert f"{target['resourceType']}/{target['id']}" == ref.split("/_history/")[0]
    for kind in ("Goal", "CareTeam", "Provenance"):
        bundle = assert_fhir(await gw.get(f"/{kind}?patient={ME}", headers=me))
        mine = {f"{kind}/{r['id']}" for r in entries(bundle) if r["resourceType"] == kind}
        assert mine == {k for k in keys if k.startswith(f"{kind}/")}
        assert bundle["total"] == len(mine)
        posted_search = await gw.client.post(
            f"{gw.base_url}/{kind}/_search", data={"patient": ME}, headers=me
        )
        assert assert_fhir(posted_search)["total"] == len(mine)


def _no_trace_of(text: str, *ids: str) -> None:
    for rid in ids:
        assert rid not in text, rid
    for word in ("suppressed", "withheld", "NOPAT", "restricted"):
        assert word not in text, word


async def test_a_nopat_plan_reaches_the_person_by_no_new_route(gw: Gateway) -> None:
    """Neither the plan, nor what only it references, nor its Provenance: not returned,
    counted, included or announced by any search; by id, the 404 of an id never used."""
    clinician = staff(gw, "R8000", "F81002")  # the person's GP practice: sees the plan
    staff_view = assert_fhir(await gw.get(f"/CarePlan?patient={NOPAT}", headers=clinician))
    plan = next(r for r in entries(staff_view) if r["id"] == NOPAT_PLAN)
    others = [r for r in entries(staff_view) if r["resourceType"] == "CarePlan" and r is not plan]
    shared = {ref for o in others for ref in references(o)}
    only_its = sorted(
        ref
        for ref in references([plan.get("goal", []), plan.get("careTeam", [])])
        if ref not in shared
    )
    # a Provenance of the plan alone is withheld with it; one shared with what the person sees
    # is shown without the plan among its targets
    provenance = assert_fhir(await gw.get(f"/Provenance?patient={NOPAT}", headers=clinician))
    its_provenance = [
        f"Provenance/{r['id']}"
        for r in entries(provenance)
        if all(t["reference"].split("/_history/")[0] in (f"CarePlan/{NOPAT_PLAN}", *only_its)
               for t in r.get("target", ()))
    ]  # fmt: skip

    me = as_person(gw, NOPAT)
    hidden = (NOPAT_PLAN, "cp-900012", *(r.split("/", 1)[1] for r in [*only_its, *its_provenance]))
    assert any(NOPAT_PLAN in t["reference"] for r in entries(provenance) for t in r["target"])
    for path in (
        f"/Goal?patient={NOPAT}",
        f"/CareTeam?patient={NOPAT}",
        f"/Provenance?patient={NOPAT}",
        f"/CarePlan?patient={NOPAT}&_revinclude=Provenance:target",
        f"/CarePlan?patient={NOPAT}&_include=CarePlan:goal&_include=CarePlan:care-team",
        f"/Goal?patient={NOPAT}&_revinclude=Provenance:target",
        f"/Patient/{NOPAT}/$everything?_count=2",
        f"/Patient?identifier={NHS_SYSTEM}|{NOPAT}&_revinclude=Provenance:patient",
    ):
        resp = await gw.get(path, headers=me)
        bundle = assert_fhir(resp)
        _no_trace_of(resp.text, *hidden)
        assert not outcome_entries(bundle), path
    count = assert_fhir(await gw.get(f"/CarePlan?patient={NOPAT}&_summary=count", headers=me))
    assert count["total"] == 2
    posted = await gw.client.post(
        f"{gw.base_url}/CarePlan/_search", data={"patient": NOPAT}, headers=me
    )
    assert assert_fhir(posted)["total"] == 2 and NOPAT_PLAN not in posted.text
    for ref in [*only_its, *its_provenance]:
        kind = ref.split("/", 1)[0]
        resp = await gw.get(f"/{ref}", headers=me)
        never = await gw.get(f"/{kind}/community.C900013.never-was", headers=me)
        assert resp.status_code == never.status_code == 404, (ref, resp.text)
        assert resp.json()["issue"] == never.json()["issue"]
    # staff still see all of it (the rule is about the person only)
    for ref in [*only_its, *its_provenance]:
        assert_fhir(await gw.get(f"/{ref}", headers=clinician))

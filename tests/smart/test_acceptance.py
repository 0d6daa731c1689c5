"""Client libraries no one here wrote get tokens from the running gateway and use them.

* SMART Health IT's ``fhirclient`` (Python) does an EHR launch and a standalone launch: it
  reads the CapabilityStatement's oauth-uris, builds the authorize URL (with PKCE S256) and
  exchanges the code; the test plays the browser (follows the 302, submits the demo picker).
* Authlib's OAuth2 client does SMART Backend Services with ``private_key_jwt`` (ES384).

fhirclient is synchronous (``requests``), so it runs in a worker thread while the gateway
serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from fhirclient import client as fhir_client
from fhirclient.models.patient import Patient
from joserfc.jwk import ECKey

from tests.gateway.harness import Gateway, assert_fhir
from tests.smart.support import APP_REDIRECT, BOTH, EHR_KEY, auth_url, create_launch


class BackendServicesJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's ``private_key_jwt`` with the 5-minute ``exp`` SMART Backend Services asks."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            header=self.headers,
            alg=self.alg,
            expires_in=240,
        )


def _smart_client(gw: Gateway, **settings: Any) -> fhir_client.FHIRClient:
    return fhir_client.FHIRClient(
        settings={
            "app_id": "app",
            "api_base": gw.base_url,
            "redirect_uri": APP_REDIRECT,
            "scope": "openid fhirUser user/*.rs",
            **settings,
        }
    )


def _ehr_launch(gw: Gateway, launch: str) -> tuple[fhir_client.FHIRClient, Any]:
    smart = _smart_client(gw, launch_token=launch)
    url = smart.authorize_url  # fetches /metadata, finds the oauth-uris
    answer = httpx.get(url, follow_redirects=False)  # no login page: straight back
    assert answer.status_code == 302, answer.text
    smart.handle_callback(answer.headers["location"])
    return smart, Patient.read(BOTH, smart.server)


async def test_fhirclient_completes_an_ehr_launch(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    launch = await create_launch(gw, patient=BOTH, sub="dr-fhirclient-1")
    smart, patient = await asyncio.to_thread(_ehr_launch, gw, launch)
    assert smart.ready and smart.patient_id == BOTH
    assert patient.id == BOTH
    assert any(i.value == BOTH for i in patient.identifier)
    assert smart.launch_context["need_patient_banner"] is True


def _standalone_launch(gw: Gateway) -> tuple[fhir_client.FHIRClient, Any]:
    smart = _smart_client(gw)  # no launch token: fhirclient asks for launch/patient
    url = smart.authorize_url
    page = httpx.get(url, follow_redirects=False)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script" not in page.text.lower()
    assert "default-src 'none'" in page.headers["content-security-policy"]
    pending = re.search(r'name="pending" value="([^"]+)"', page.text)
    assert pending is not None
    answer = httpx.post(
        auth_url(gw, "login"),
        data={
            "pending": pending.group(1),
            "as": "staff",
            "sub": "dr-standalone-1",
            "name": "Dr Standalone",
            "role": "R8000",
            "org": "F81001",
            "patient": BOTH,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    smart.handle_callback(answer.headers["location"])
    return smart, Patient.read(BOTH, smart.server)


async def test_fhirclient_completes_a_standalone_launch(smart_gateway: Gateway) -> None:
    smart, patient = await asyncio.to_thread(_standalone_launch, smart_gateway)
    assert smart.patient_id == BOTH and patient.id == BOTH


async def test_authlib_backend_client_reads_a_care_plan_search(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    token_url = auth_url(gw, "token")
    async with AsyncOAuth2Client(
        client_id="ehr",
        client_secret=ECKey.import_key(EHR_KEY.pem),
        token_endpoint_auth_method=BackendServicesJWT(
            token_url, alg="ES384", headers={"kid": EHR_KEY.kid}
        ),
        scope="system/CarePlan.rs",
    ) as oauth:
        token = await oauth.fetch_token(token_url, grant_type="client_credentials")
        assert token["scope"] == "system/CarePlan.rs"
        resp = await oauth.get(
            f"{gw.base_url}/CarePlan",
            params={"patient": BOTH},
            headers={"X-Purpose-Of-Use": "TREAT"},
        )
    bundle = assert_fhir(resp)
    assert bundle["type"] == "searchset"
    assert any(e["resource"]["resourceType"] == "CarePlan" for e in bundle.get("entry", []))


async def test_picker_signs_a_person_in_for_their_own_record(smart_gateway: Gateway) -> None:
    import jwt

    from tests.smart.support import code_of, login_as_person, person_login, redeem

    gw = smart_gateway
    login = await person_login(gw, BOTH, "P5", "openid fhirUser patient/*.rs user/*.rs")
    answer = login.answer
    assert answer.status_code == 302, answer.text
    body = (await redeem(gw, code_of(answer), login.verifier)).json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_kind"] == "patient" and claims["patient"] == BOTH
    assert claims["identity_proofing_level"] == "P5" and "role" not in claims
    assert body["scope"] == "openid fhirUser patient/*.rs"
    reused = await login_as_person(gw, login.pending, BOTH, "P5")
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_request"

"""Standalone launch through a real upstream OpenID Connect provider on loopback.

The provider is panva's ``oidc-provider`` (npm; certified by the OpenID Foundation) run by
node from ``tests/smart/oidc_provider`` (``npm ci --prefix tests/smart/oidc_provider``
installs it), standing in for NHS CIS2 and NHS login: the gateway authenticates to it with
``private_key_jwt`` and PKCE, and reads CIS2's ``nhsid_nrbac_roles`` / ``selected_roleid``
or NHS login's ``nhs_number`` / ``identity_proofing_level`` from the ID token. The test plays
the browser: it follows the redirects and submits the provider's sign-in form.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.auth import generate_signing_key, jwks_from_private_pem
from gateway.embedded import free_port
from gateway.smart import SmartConfig
from gateway.smart.clients import ClientRegistry
from gateway.smart.keys import SigningKeys
from gateway.smart.oidc import UpstreamOidc
from simulators.runner import source_configs
from tests.gateway.harness import Gateway, assert_fhir, running_gateway
from tests.smart.support import (
    APP_REDIRECT,
    BOTH,
    auth_url,
    authorize_params,
    clients,
    location_params,
    pkce,
    redeem,
)

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
ACCOUNTS: dict[str, Any] = {
    "staff-selected": {
        "name": "Dr Upstream",
        "nhsid_nrbac_roles": [
            {"person_roleid": "pr-1", "org_code": "F81001", "role_code": "S8000:G8000:R8000"},
            {"person_roleid": "pr-2", "org_code": "RAT", "role_code": "S8000:G8001:R8001"},
        ],
        "selected_roleid": "pr-1",
    },
    "staff-two-roles": {
        "name": "Nurse Upstream",
        "nhsid_nrbac_roles": [
            {"person_roleid": "pr-3", "org_code": "F81001", "role_code": "S8000:G8000:R8000"},
            {"person_roleid": "pr-4", "org_code": "F81001", "role_code": "S8000:G8001:R8001"},
        ],
    },
    "person-p9": {"name": "A Person", "nhs_number": BOTH, "identity_proofing_level": "P9"},
}


def _needs_provider() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (Debian package nodejs)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("oidc-provider is not installed: npm ci --prefix tests/smart/oidc_provider")


@pytest.fixture(scope="module")
async def upstream_gateway(running_sources: Any) -> AsyncIterator[Gateway]:
    _needs_provider()
    provider_port = free_port()
    issuer = f"http://127.0.0.1:{provider_port}"
    key_pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    jwk = jwks_from_private_pem(key_pem)["keys"][0]
    upstream = UpstreamOidc(
        issuer=issuer,
        client_id="caregateway",
        key=serialization.load_pem_private_key(key_pem, None),  # type: ignore[arg-type]
        key_id=jwk["kid"],
    )

    def config(base_url: str) -> SmartConfig:
        return SmartConfig(
            fhir_base=base_url,
            keys=SigningKeys.generate(),
            clients=ClientRegistry(clients()),
            upstream=upstream,
        )

    async with running_gateway(
        source_configs(running_sources), *generate_signing_key(), smart=config, socket=True
    ) as gw:
        provider_config = {
            "port": provider_port,
            "client": {
                "client_id": "caregateway",
                "redirect_uri": auth_url(gw, "oidc/callback"),
                "jwks": {"keys": [jwk]},
            },
            "accounts": ACCOUNTS,
        }
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(PROVIDER_DIR / "provider.mjs"),
            json.dumps(provider_config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line.startswith(b"ready"), line
            yield gw
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=15)


async def _sign_in(gw: Gateway, params: dict[str, str], account: str) -> httpx.Response:
    """Play the browser from our authorize endpoint to the last redirect (or a page)."""
    async with httpx.AsyncClient(timeout=30) as browser:
        resp = await browser.get(auth_url(gw, "authorize"), params=params)
        signed_in = False
        while True:
            if resp.is_redirect:
                location = urljoin(str(resp.url), resp.headers["location"])
                if location.startswith(APP_REDIRECT):
                    return resp
                resp = await browser.get(location)
            elif not signed_in and 'name="account"' in resp.text:
                resp = await browser.post(str(resp.url), data={"account": account})
                signed_in = True
            else:
                return resp


async def test_cis2_staff_with_a_selected_role(upstream_gateway: Gateway) -> None:
    gw = upstream_gateway
    verifier, challenge = pkce()
    params = authorize_params(gw, challenge, scope="openid fhirUser user/*.rs")
    got = location_params(await _sign_in(gw, params, "staff-selected"))
    assert got["state"] == params["state"]
    body = (await redeem(gw, got["code"], verifier)).json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["org"]) == ("staff-selected", "R8000", "F81001")
    assert jwt.decode(body["id_token"], options={"verify_signature": False})["fhirUser"] == (
        "Practitioner/staff-selected"
    )
    read = await gw.client.get(
        f"{gw.base_url}/Patient/{BOTH}", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert assert_fhir(read)["id"] == BOTH


async def test_cis2_staff_pick_a_role_and_the_patient(upstream_gateway: Gateway) -> None:
    gw = upstream_gateway
    verifier, challenge = pkce()
    params = authorize_params(gw, challenge, scope="launch/patient openid fhirUser user/*.rs")
    page = await _sign_in(gw, params, "staff-two-roles")
    assert page.status_code == 200 and "Choose how you are working" in page.text
    assert "script" not in page.text.lower()
    assert "R8000 at F81001" in page.text and "R8001 at F81001" in page.text
    pending = page.text.split('name="pending" value="')[1].split('"')[0]
    answer = await gw.client.post(
        auth_url(gw, "login/choose"), data={"pending": pending, "role": "pr-4", "patient": BOTH}
    )
    got = location_params(answer)
    body = (await redeem(gw, got["code"], verifier)).json()
    assert body["patient"] == BOTH
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["role"] == "R8001" and claims["patient"] == BOTH
    again = await gw.client.post(
        auth_url(gw, "login/choose"), data={"pending": pending, "role": "pr-4", "patient": BOTH}
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"


async def test_nhs_login_person_gets_a_patient_token(upstream_gateway: Gateway) -> None:
    gw = upstream_gateway
    verifier, challenge = pkce()
    params = authorize_params(gw, challenge, scope="openid fhirUser patient/*.rs user/*.rs")
    got = location_params(await _sign_in(gw, params, "person-p9"))
    body = (await redeem(gw, got["code"], verifier)).json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_kind"] == "patient" and claims["patient"] == BOTH
    assert claims["identity_proofing_level"] == "P9" and claims["purpose_of_use"] == "PATRQT"
    assert body["scope"].split() == ["openid", "fhirUser", "patient/*.rs"]  # no user/ scope
    assert "role" not in claims and "org" not in claims
    id_token = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert id_token["fhirUser"] == f"Patient/{BOTH}"


async def test_callback_with_an_unknown_state_is_refused(upstream_gateway: Gateway) -> None:
    gw = upstream_gateway
    resp = await gw.client.get(
        auth_url(gw, "oidc/callback"), params={"code": "x", "state": "not-ours"}
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"

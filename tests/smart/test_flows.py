"""SMART discovery, backend services, EHR launch, introspection and revocation, end to end."""

from __future__ import annotations

from typing import Any

import jwt

from simulators.population import SCENARIOS
from tests.gateway.harness import Gateway, assert_fhir
from tests.smart.support import (
    EHR_ORG,
    auth_url,
    create_launch,
    ehr_code,
    redeem,
    security_events,
    system_token,
)

BOTH = SCENARIOS["both"].nhs_number or ""


async def test_discovery_lists_endpoints_and_capabilities(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    resp = await gw.client.get(f"{gw.base_url}/.well-known/smart-configuration")
    assert resp.status_code == 200
    conf = resp.json()
    issuer = gw.base_url.removesuffix("/fhir") + "/auth"
    assert conf["issuer"] == issuer
    assert conf["token_endpoint"] == issuer + "/token"
    assert conf["authorization_endpoint"] == issuer + "/authorize"
    assert conf["jwks_uri"] == issuer + "/jwks"
    assert conf["introspection_endpoint"] == issuer + "/introspect"
    assert conf["revocation_endpoint"] == issuer + "/revoke"
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert set(conf["grant_types_supported"]) == {"authorization_code", "client_credentials"}
    assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"]
    assert conf["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert conf["response_types_supported"] == ["code"]
    assert "launch" in conf["scopes_supported"]
    for capability in (
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "context-banner",
        "sso-openid-connect",
        "permission-v2",
        "permission-v1",
        "permission-user",
        "permission-patient",
    ):
        assert capability in conf["capabilities"]


async def test_capability_statement_security_has_oauth_uris(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    cs = assert_fhir(await gw.client.get(f"{gw.base_url}/metadata"))
    security = cs["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = next(
        e
        for e in security["extension"]
        if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    )
    values = {e["url"]: e["valueUri"] for e in uris["extension"]}
    assert values["token"] == auth_url(gw, "token")
    assert values["authorize"] == auth_url(gw, "authorize")


async def test_jwks_publishes_the_signing_key(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    jwks = (await gw.client.get(auth_url(gw, "jwks"))).json()
    token = (await system_token(gw))["access_token"]
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid in [k["kid"] for k in jwks["keys"]]
    assert all("d" not in k for k in jwks["keys"])  # public halves only


async def test_backend_token_reads_a_care_plan_search(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    body = await system_token(gw, "system/*.rs")
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_kind"] == "system" and claims["org"] == EHR_ORG
    assert claims["sub"] == "ehr" and claims["iss"] == auth_url(gw, "").rstrip("/")
    resp = await gw.client.get(
        f"{gw.base_url}/CarePlan",
        params={"patient": BOTH},
        headers={"Authorization": f"Bearer {body['access_token']}", "X-Purpose-Of-Use": "TREAT"},
    )
    bundle = assert_fhir(resp)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    issued = [e for e in await security_events(gw, agent="ehr") if e["outcome"] == "0"]
    assert issued and issued[0]["type"]["code"] == "110114"
    assert issued[0]["subtype"][0]["code"] == "110122"
    assert body["access_token"] not in str(issued[0])


async def test_ehr_launch_gives_patient_context_and_id_token(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    code, verifier = await ehr_code(gw, patient=BOTH, sub="dr-ehr-7001", role="R8001")
    resp = await redeem(gw, code, verifier)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["patient"] == BOTH and body["need_patient_banner"] is True
    assert body["token_type"] == "Bearer"
    granted = body["scope"].split()
    # user/*.rs narrowed to what a Nurse's level lets her reach
    assert "user/*.rs" not in granted and "user/CarePlan.rs" in granted
    assert "user/AuditEvent.rs" not in granted
    id_token = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert id_token["fhirUser"] == "Practitioner/dr-ehr-7001" and id_token["aud"] == "app"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["role"] == "R8001" and claims["org"] == "F81001"
    assert claims["purpose_of_use"] == "TREAT" and claims["patient"] == BOTH
    read = await gw.client.get(
        f"{gw.base_url}/Patient/{BOTH}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    patient = assert_fhir(read)
    assert patient["resourceType"] == "Patient" and patient["id"] == BOTH
    events = await security_events(gw, agent="dr-ehr-7001")
    kinds = {(e["type"]["code"], e["subtype"][0]["code"]) for e in events}
    assert ("110114", "launch") in kinds and ("110114", "110122") in kinds
    assert all(code not in str(e) for e in events)


async def test_launch_without_patient_for_apps_that_need_none(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    code, verifier = await ehr_code(gw, sub="ig-lead-1", role="R0001")
    body = (await redeem(gw, code, verifier)).json()
    assert "patient" not in body
    # an IG role's level has no care records: from user/*.rs only the audit trail and
    # consent directives (the policy lets a Privacy Officer read both)
    resource_scopes = {s for s in body["scope"].split() if s.startswith("user/")}
    assert resource_scopes == {"user/AuditEvent.rs", "user/Consent.rs"}


async def test_confidential_client_redeems_with_private_key_jwt(smart_gateway: Gateway) -> None:
    from tests.smart.support import (
        APP_REDIRECT,
        ASSERTION_TYPE,
        CONFIDENTIAL_KEY,
        assertion,
        authorize,
        authorize_params,
        location_params,
        pkce,
        post_token,
    )

    gw = smart_gateway
    launch = await create_launch(gw, patient=BOTH)
    verifier, challenge = pkce()
    got = location_params(
        await authorize(gw, authorize_params(gw, challenge, launch=launch, client_id="conf-app"))
    )
    resp = await post_token(
        gw,
        grant_type="authorization_code",
        code=got["code"],
        redirect_uri=APP_REDIRECT,
        code_verifier=verifier,
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=assertion(gw, CONFIDENTIAL_KEY, "conf-app"),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["patient"] == BOTH


async def test_introspection_and_revocation(smart_gateway: Gateway) -> None:
    from tests.smart.support import ASSERTION_TYPE, assertion

    gw = smart_gateway
    code, verifier = await ehr_code(gw, patient=BOTH, sub="dr-revoke-1")
    access = (await redeem(gw, code, verifier)).json()["access_token"]
    system = (await system_token(gw))["access_token"]
    bearer = {"Authorization": f"Bearer {system}"}
    info = (
        await gw.client.post(auth_url(gw, "introspect"), data={"token": access}, headers=bearer)
    ).json()
    assert info["active"] is True and info["sub"] == "dr-revoke-1" and info["patient"] == BOTH
    # by client assertion too
    info2 = await gw.client.post(
        auth_url(gw, "introspect"),
        data={
            "token": access,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(gw),
        },
    )
    assert info2.json()["active"] is True
    read = f"{gw.base_url}/Patient/{BOTH}"
    assert (
        await gw.client.get(read, headers={"Authorization": f"Bearer {access}"})
    ).status_code == 200
    revoked = await gw.client.post(
        auth_url(gw, "revoke"), data={"token": access, "client_id": "app"}
    )
    assert revoked.status_code == 200
    after = await gw.client.get(read, headers={"Authorization": f"Bearer {access}"})
    assert after.status_code == 401
    assert "revoked" in after.text
    info3 = (
        await gw.client.post(auth_url(gw, "introspect"), data={"token": access}, headers=bearer)
    ).json()
    assert info3 == {"active": False}
    events = await security_events(gw, agent="dr-revoke-1")
    assert any(e["subtype"][0]["code"] == "110123" for e in events)


async def test_codes_tokens_and_assertions_are_never_stored_or_logged(
    smart_gateway: Gateway, capsys: Any
) -> None:
    from sqlalchemy import text

    from tests.smart.support import ASSERTION_TYPE, assertion, post_token

    gw = smart_gateway
    launch = await create_launch(gw, patient=BOTH, sub="dr-secrets-1")
    code, verifier = await ehr_code(gw, patient=BOTH, sub="dr-secrets-1")
    body = (await redeem(gw, code, verifier)).json()
    made = assertion(gw)
    system = await post_token(
        gw,
        grant_type="client_credentials",
        scope="system/*.rs",
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=made,
    )
    secrets = [
        launch,
        code,
        verifier,
        made,
        body["access_token"],
        body["id_token"],
        system.json()["access_token"],
    ]
    dumped = []
    async with gw.smart.store.engine.connect() as conn:
        for table in (
            "smart_launch",
            "smart_code",
            "smart_pending",
            "smart_jti",
            "smart_revoked",
            "audit_event",
        ):
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            dumped.append(repr(rows))
    stored = "\n".join(dumped)
    logged = capsys.readouterr()
    for secret in secrets:
        assert secret not in stored
        assert secret not in logged.out and secret not in logged.err
    assert "dr-secrets-1" in stored  # the audit trail does name the user


async def test_ig_audit_search_finds_issuance_launch_and_refusal(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    code, verifier = await ehr_code(gw, patient=BOTH, sub="dr-audit-1")
    assert (await redeem(gw, code, verifier)).status_code == 200
    assert (await redeem(gw, code, verifier)).status_code == 400  # a refusal (reused code)
    ig = gw.headers(role="R0001", purpose="HOPERAT", scopes=("user/AuditEvent.rs",))
    found = assert_fhir(
        await gw.client.get(f"{gw.base_url}/AuditEvent", params={"agent": "dr-audit-1"}, headers=ig)
    )
    kinds = {
        (e["resource"]["type"]["code"], e["resource"]["subtype"][0]["code"])
        for e in found["entry"]
        if e["resource"]["resourceType"] == "AuditEvent"
    }
    assert {("110114", "launch"), ("110114", "110122")} <= kinds
    by_patient = assert_fhir(
        await gw.client.get(
            f"{gw.base_url}/AuditEvent", params={"patient": BOTH, "outcome": "4"}, headers=ig
        )
    )
    refusals = [
        e["resource"]
        for e in by_patient.get("entry", [])
        if e["resource"]["resourceType"] == "AuditEvent"
        and e["resource"]["type"]["code"] == "110113"
    ]
    # the reused code's refusal names whose code it was, so IG finds it under the person
    assert any(e["outcomeDesc"].startswith("token: refused invalid_grant") for e in refusals)

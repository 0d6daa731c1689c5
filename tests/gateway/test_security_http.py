"""Token, scope and purpose refusals as a caller sees them (order of checks in behaviour.md)."""

from __future__ import annotations

import base64
import json
import time
import uuid

from gateway.auth import generate_signing_key, issue_token
from simulators.population import SCENARIOS
from tests.gateway.harness import ISSUER, Gateway


def _number() -> str:
    number = SCENARIOS["both"].nhs_number
    assert number is not None
    return number


async def _refused(gateway: Gateway, headers: dict[str, str], status: int, code: str) -> dict:  # type: ignore[type-arg]
    resp = await gateway.get(f"/Patient/{_number()}", headers=headers)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    token = headers.get("Authorization", "").removeprefix("Bearer ")
    if token:
        assert token not in resp.text
    return body


async def test_missing_and_malformed_bearer(gateway: Gateway) -> None:
    resp = await gateway.get(f"/Patient/{_number()}", headers={})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    await _refused(gateway, {"Authorization": "Basic abc"}, 401, "login")
    await _refused(gateway, {"Authorization": "Bearer not.a.jwt"}, 401, "login")


async def test_bad_signature_expired_wrong_audience(gateway: Gateway) -> None:
    other_pem, _ = generate_signing_key()
    forged = issue_token(
        other_pem,
        issuer=ISSUER,
        audience=gateway.base_url,
        sub="x",
        role="R8000",
        org="F81001",
        purpose="TREAT",
    )
    await _refused(gateway, {"Authorization": f"Bearer {forged}"}, 401, "login")
    expired = gateway.token(now=time.time() - 7200, ttl_s=60)
    await _refused(gateway, {"Authorization": f"Bearer {expired}"}, 401, "login")
    wrong_aud = issue_token(
        gateway.private_pem,
        issuer=ISSUER,
        audience="https://elsewhere/fhir",
        sub="x",
        role="R8000",
        org="F81001",
        purpose="TREAT",
    )
    await _refused(gateway, {"Authorization": f"Bearer {wrong_aud}"}, 401, "login")


async def test_alg_none_is_refused(gateway: Gateway) -> None:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {
        "iss": ISSUER,
        "aud": gateway.base_url,
        "sub": "x",
        "role": "R8000",
        "org": "F81001",
        "scope": "user/*.rs",
        "exp": int(time.time()) + 600,
        "purpose_of_use": "TREAT",
    }
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    await _refused(gateway, {"Authorization": f"Bearer {token}"}, 401, "login")


async def test_scope_must_cover_the_interaction(gateway: Gateway) -> None:
    headers = gateway.headers(scopes=("user/CarePlan.rs",))
    body = await _refused(gateway, headers, 403, "forbidden")
    assert body["issue"][0]["details"]["coding"][0]["code"] == "scope-insufficient"
    # the CarePlan scope does allow a CarePlan search
    resp = await gateway.get("/CarePlan", params={"patient": _number()}, headers=headers)
    assert resp.status_code == 200


async def test_purpose_is_required(gateway: Gateway) -> None:
    body = await _refused(gateway, gateway.headers(purpose=None), 403, "forbidden")
    assert body["issue"][0]["details"]["coding"][0]["code"] == "purpose-missing"
    ok = await gateway.get(
        f"/Patient/{_number()}",
        headers={**gateway.headers(purpose=None), "X-Purpose-Of-Use": "TREAT"},
    )
    assert ok.status_code == 200


async def test_token_checked_before_nhs_number(gateway: Gateway) -> None:
    resp = await gateway.get("/Patient/123", headers={})
    assert resp.status_code == 401


async def test_numeric_string_exp_is_refused_and_audited(gateway: Gateway) -> None:
    """RFC 7519: ``exp`` is a JSON number; ``"exp": "9999999999"`` is a 401, audited."""
    token = gateway.token(extra_claims={"exp": "9999999999"})
    request_id = f"exp-string-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": request_id}
    body = await _refused(gateway, headers, 401, "login")
    assert body["issue"][0]["details"]["coding"][0]["code"] == "invalid-claim"
    events = [
        e
        for e in await gateway.audit.search(count=200)
        if any(
            ent.get("what", {}).get("identifier", {}).get("value") == request_id
            for ent in e.get("entity", ())
        )
    ]
    assert len(events) == 1
    assert events[0]["outcome"] == "4"
    assert "invalid-claim" in events[0].get("outcomeDesc", "")

"""Every bad input to the authorization server: the OAuth2 error the RFCs name, a clear
``error_description``, a security-alert AuditEvent — and nothing issued or used up.

One test per case. ``Ledger`` snapshots what could have changed (tokens issued, codes and
launch contexts still unused) so each test proves the refusal changed nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.gateway.harness import Gateway
from tests.smart.support import (
    APP_REDIRECT,
    ASSERTION_TYPE,
    BOTH,
    EHR_KEY,
    OTHER_KEY,
    assertion,
    authorize,
    authorize_params,
    create_launch,
    ehr_code,
    location_params,
    pkce,
    post_token,
    redeem,
    security_events,
)

DCM = "http://dicom.nema.org/resources/ontology/DCM"


@dataclass(frozen=True)
class Ledger:
    issued: int
    codes: int
    launches: int


async def ledger(gw: Gateway) -> Ledger:
    events = await security_events(gw)
    issued = sum(1 for e in events if e["subtype"][0]["code"] == "110122")
    store = gw.smart.store
    return Ledger(issued, await store.count_unused("code"), await store.count_unused("launch"))


async def assert_refused(gw: Gateway, before: Ledger, error: str) -> dict[str, Any]:
    """Nothing issued or used since ``before``; the newest security event is this refusal."""
    assert await ledger(gw) == before
    newest = (await security_events(gw))[0]
    assert newest["type"] == {"system": DCM, "code": "110113", "display": "Security Alert"}
    assert newest["subtype"][0]["code"] == error and newest["outcome"] == "4"
    return newest


def oauth_error(resp: httpx.Response, status: int, error: str, words: str) -> None:
    assert resp.status_code == status, resp.text
    assert "location" not in resp.headers
    body = resp.json()
    assert body["error"] == error
    assert words in body["error_description"]
    assert resp.headers["cache-control"] == "no-store"


async def assert_code_refused(gw: Gateway, code: str, verifier: str, words: str) -> None:
    """Redeeming ``code`` with ``verifier`` is refused ``invalid_grant`` (saying ``words``):
    nothing issued or used, and the refusal audited."""
    before = await ledger(gw)
    oauth_error(await redeem(gw, code, verifier), 400, "invalid_grant", words)
    await assert_refused(gw, before, "invalid_grant")


def redirected_error(resp: httpx.Response, error: str, words: str, state: str) -> None:
    got = location_params(resp)  # to the registered redirect URI only
    assert "code" not in got
    assert got["error"] == error and words in got["error_description"]
    assert got["state"] == state


@contextmanager
def clock_ahead(gw: Gateway, seconds: float) -> Iterator[None]:
    store = gw.smart.store
    real = store.clock
    store.clock = lambda: real() + timedelta(seconds=seconds)
    try:
        yield
    finally:
        store.clock = real


# --- the authorization endpoint --------------------------------------------------------------


async def test_unknown_client_is_never_redirected(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    _, challenge = pkce()
    before = await ledger(gw)
    resp = await authorize(gw, authorize_params(gw, challenge, client_id="no-such-app"))
    oauth_error(resp, 400, "invalid_client", "does not exist")
    await assert_refused(gw, before, "invalid_client")


async def test_unregistered_redirect_uri_is_never_redirected(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    launch = await create_launch(gw, patient=BOTH)
    _, challenge = pkce()
    before = await ledger(gw)
    evil = "https://attacker.example/cb"
    resp = await authorize(gw, authorize_params(gw, challenge, launch=launch, redirect_uri=evil))
    oauth_error(resp, 400, "invalid_request", "is not supported by client")
    assert "attacker" not in resp.headers.get("location", "")
    await assert_refused(gw, before, "invalid_request")


async def redirected_refusal(
    gw: Gateway, error: str, text: str, *, plain: bool = False, **overrides: str | None
) -> None:
    """An authorization request on a fresh launch, with ``overrides``, is sent back to the
    app with ``error`` (its description naming ``text``) and audited as refused.
    ``plain``: the PKCE verifier itself stands as the challenge."""
    launch = await create_launch(gw, patient=BOTH)
    verifier, challenge = pkce()
    params = authorize_params(gw, verifier if plain else challenge, launch=launch, **overrides)
    before = await ledger(gw)
    resp = await authorize(gw, params)
    redirected_error(resp, error, text, params["state"])
    await assert_refused(gw, before, error)


async def test_missing_pkce_is_refused(smart_gateway: Gateway) -> None:
    await redirected_refusal(
        smart_gateway,
        "invalid_request",
        "code_challenge is required",
        code_challenge=None,
        code_challenge_method=None,
    )


async def test_plain_pkce_is_refused(smart_gateway: Gateway) -> None:
    await redirected_refusal(
        smart_gateway,
        "invalid_request",
        "plain is not accepted",
        plain=True,
        code_challenge_method="plain",
    )


async def test_aud_other_than_our_fhir_base_is_refused(smart_gateway: Gateway) -> None:
    await redirected_refusal(
        smart_gateway,
        "invalid_request",
        "aud must be this server",
        aud="https://other.example/fhir",
    )


async def test_scope_beyond_registration_is_refused(smart_gateway: Gateway) -> None:
    await redirected_refusal(
        smart_gateway, "invalid_scope", "user/Consent.cruds", scope="launch user/Consent.cruds"
    )


async def test_reused_launch_is_refused(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    launch = await create_launch(gw, patient=BOTH)
    _, challenge = pkce()
    location_params(await authorize(gw, authorize_params(gw, challenge, launch=launch)))
    before = await ledger(gw)
    params = authorize_params(gw, challenge, launch=launch)
    resp = await authorize(gw, params)
    redirected_error(
        resp, "invalid_request", "launch context has already been used", params["state"]
    )
    await assert_refused(gw, before, "invalid_request")


async def test_expired_launch_is_refused(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    launch = await create_launch(gw, patient=BOTH)
    _, challenge = pkce()
    params = authorize_params(gw, challenge, launch=launch)
    with clock_ahead(gw, 5 * 60 + 1):
        before = await ledger(gw)
        resp = await authorize(gw, params)
        redirected_error(resp, "invalid_request", "has expired", params["state"])
        await assert_refused(gw, before, "invalid_request")


# --- the token endpoint: authorization codes -------------------------------------------------


async def test_wrong_code_verifier_is_refused_and_the_code_stays_usable(
    smart_gateway: Gateway,
) -> None:
    gw = smart_gateway
    code, verifier = await ehr_code(gw, patient=BOTH)
    wrong, _ = pkce()
    await assert_code_refused(gw, code, wrong, "Code challenge failed")
    assert (await redeem(gw, code, verifier)).status_code == 200  # nothing was used up


async def test_reused_code_is_refused(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    code, verifier = await ehr_code(gw, patient=BOTH)
    assert (await redeem(gw, code, verifier)).status_code == 200
    await assert_code_refused(gw, code, verifier, "already been used")


async def test_expired_code_is_refused(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    code, verifier = await ehr_code(gw, patient=BOTH)
    with clock_ahead(gw, 61):
        await assert_code_refused(gw, code, verifier, "has expired")


async def test_code_needs_the_redirect_uri_it_was_issued_for(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    code, verifier = await ehr_code(gw, patient=BOTH)
    before = await ledger(gw)
    resp = await post_token(
        gw,
        grant_type="authorization_code",
        code=code,
        client_id="app",
        redirect_uri=APP_REDIRECT + "x",
        code_verifier=verifier,
    )
    oauth_error(resp, 400, "invalid_grant", "redirect_uri")
    await assert_refused(gw, before, "invalid_grant")


# --- the token endpoint: client assertions (private_key_jwt) ---------------------------------


async def _client_credentials(gw: Gateway, client_assertion: str) -> httpx.Response:
    return await post_token(
        gw,
        grant_type="client_credentials",
        scope="system/*.rs",
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=client_assertion,
    )


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("wrong-aud", "aud must be the token endpoint"),
        ("expired", "has expired"),
        ("too-long", "at most 5 minutes ahead"),
        ("unknown-kid", "not registered for this client"),
        ("other-key", "signature does not verify"),
        ("alg-none", "alg none and HMAC"),
        ("hmac", "alg none and HMAC"),
        ("unknown-client", "does not exist"),
    ],
)
async def test_bad_client_assertion_is_refused(
    smart_gateway: Gateway, case: str, words: str
) -> None:
    gw = smart_gateway
    if case == "wrong-aud":
        made = assertion(gw, aud=gw.base_url)
    elif case == "expired":
        made = assertion(gw, exp_in=-120)
    elif case == "too-long":
        made = assertion(gw, exp_in=3600)
    elif case == "unknown-kid":
        made = assertion(gw, OTHER_KEY)
    elif case == "other-key":  # the registered kid, signed with someone else's key
        made = assertion(gw, sign_key=serialization.load_pem_private_key(OTHER_KEY.pem, None))
    elif case == "alg-none":
        now = int(time.time())
        claims = {
            "iss": "ehr",
            "sub": "ehr",
            "aud": gw.base_url.removesuffix("/fhir") + "/auth/token",
            "exp": now + 60,
            "jti": f"none-{now}",
        }
        made = jwt.encode(claims, "", algorithm="none")  # "" is no key, as None
    elif case == "hmac":
        made = assertion(gw, alg="HS256", sign_key=EHR_KEY.kid.encode() * 2)
    else:
        made = assertion(gw, client_id="no-such-ehr")
    before = await ledger(gw)
    oauth_error(await _client_credentials(gw, made), 400, "invalid_client", words)
    await assert_refused(gw, before, "invalid_client")


async def test_replayed_jti_is_refused(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    made = assertion(gw, jti="replayed-once")
    assert (await _client_credentials(gw, made)).status_code == 200
    before = await ledger(gw)
    again = assertion(gw, jti="replayed-once")  # a new JWT, the same jti
    oauth_error(await _client_credentials(gw, again), 400, "invalid_client", "used before")
    await assert_refused(gw, before, "invalid_client")


async def test_backend_scope_beyond_registration_is_refused(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    before = await ledger(gw)
    resp = await post_token(
        gw,
        grant_type="client_credentials",
        scope="system/Consent.cruds",
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=assertion(gw),
    )
    oauth_error(resp, 400, "invalid_scope", "beyond what client ehr is registered for")
    await assert_refused(gw, before, "invalid_scope")


async def test_public_client_cannot_use_client_credentials(smart_gateway: Gateway) -> None:
    gw = smart_gateway
    before = await ledger(gw)
    resp = await post_token(
        gw, grant_type="client_credentials", scope="system/*.rs", client_id="app"
    )
    oauth_error(resp, 400, "invalid_client", "cannot authenticate")
    await assert_refused(gw, before, "invalid_client")


# --- launch creation ---------------------------------------------------------------------------


async def test_launch_needs_a_system_token_with_launch_scope(smart_gateway: Gateway) -> None:
    from tests.smart.support import auth_url, system_token

    gw = smart_gateway
    token = (await system_token(gw, "system/*.rs"))["access_token"]
    before = await ledger(gw)
    resp = await gw.client.post(
        auth_url(gw, "launch"),
        json={"sub": "x", "role": "R8000", "org": "F81001"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 403 and resp.json()["error"] == "insufficient_scope"
    await assert_refused(gw, before, "insufficient_scope")
    user_token = gw.token()  # the other issuer's user token is not ours
    resp = await gw.client.post(
        auth_url(gw, "launch"), json={}, headers={"Authorization": f"Bearer {user_token}"}
    )
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"


async def test_launch_with_invalid_nhs_number_is_refused(smart_gateway: Gateway) -> None:
    from tests.smart.support import auth_url, system_token

    gw = smart_gateway
    token = (await system_token(gw))["access_token"]
    before = await ledger(gw)
    resp = await gw.client.post(
        auth_url(gw, "launch"),
        json={"sub": "x", "role": "R8000", "org": "F81001", "patient": "9999999990"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid_request",
        "error_description": "patient is not a valid NHS number.",
    }
    await assert_refused(gw, before, "invalid_request")

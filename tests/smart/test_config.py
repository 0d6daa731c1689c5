"""Configuration of the authorization server, and the scope arithmetic (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent import load_policy
from gateway.auth import generate_signing_key
from gateway.settings import ConfigurationError, Settings
from gateway.smart.clients import load_clients
from gateway.smart.config import from_settings
from gateway.smart.keys import SigningKeys
from gateway.smart.scopes import allowed_for_role, registered_subset, role_resource_types
from tests.smart.support import EHR_KEY


def _clients(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clients.yaml"
    path.write_text(text, "utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- client_id: a\n  kind: public\n  redirect_uris: [https://app.example/*]\n"
            "  scopes: [launch]\n",
            "without wildcards",
        ),
        (
            "- client_id: a\n  kind: backend\n  jwks_url: https://k.example/jwks\n"
            "  scopes: [system/*.rs]\n",
            "needs org",
        ),
        (
            "- client_id: a\n  kind: public\n  redirect_uris: [https://app.example/]\n"
            "  jwks_url: https://k.example/jwks\n  scopes: [launch]\n",
            "has no keys",
        ),
        (
            "- client_id: a\n  kind: confidential-asymmetric\n"
            "  redirect_uris: [https://app.example/]\n  scopes: [launch]\n",
            "exactly one of jwks",
        ),
        (
            "- client_id: a\n  kind: public\n  redirect_uris: [https://a.example/]\n"
            "  scopes: [launch]\n- client_id: a\n  kind: public\n"
            "  redirect_uris: [https://a.example/]\n  scopes: [launch]\n",
            "appears twice",
        ),
        ("- client_id: a\n  kind: trusted\n  scopes: [launch]\n", "kind must be one of"),
        ("{not: a list}\n", "expected a YAML list"),
    ],
)
def test_clients_file_errors_name_the_variable(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_clients(_clients(tmp_path, text))
    assert str(caught.value).startswith("CAREGW_SMART_CLIENTS_FILE")
    assert message in str(caught.value)


def test_a_good_clients_file_loads(tmp_path: Path) -> None:
    registry = load_clients(
        _clients(
            tmp_path,
            "- client_id: epr\n  name: EPR\n  kind: backend\n  org: RAT\n"
            f"  jwks: {{keys: [{EHR_KEY.jwk}]}}\n  scopes: [system/*.rs]\n".replace("'", '"'),
        )
    )
    client = registry.get("epr")
    assert client is not None and client.org == "RAT"
    assert client.check_endpoint_auth_method("private_key_jwt", "token")
    assert not client.check_endpoint_auth_method("none", "token")
    assert client.check_grant_type("client_credentials")


def test_oidc_issuer_needs_a_client_id_and_key(tmp_path: Path) -> None:
    pem, _ = generate_signing_key()
    key = tmp_path / "smart.pem"
    key.write_bytes(pem)
    clients = _clients(
        tmp_path,
        "- client_id: a\n  kind: public\n"
        "  redirect_uris: [https://a.example/]\n  scopes: [launch]\n",
    )
    settings = Settings(
        smart_clients_file=clients,
        smart_signing_key_file=key,
        oidc_issuer="https://auth.login.nhs.uk",
    )
    with pytest.raises(ConfigurationError, match="CAREGW_OIDC_CLIENT_ID is required"):
        from_settings(settings)
    settings = Settings(
        smart_clients_file=clients,
        smart_signing_key_file=key,
        oidc_issuer="https://auth.login.nhs.uk",
        oidc_client_id="gw",
    )
    with pytest.raises(ConfigurationError, match="CAREGW_OIDC_CLIENT_KEY_FILE is required"):
        from_settings(settings)


def test_previous_key_must_differ_from_the_current_one() -> None:
    pem, _ = generate_signing_key()
    with pytest.raises(ConfigurationError, match="CAREGW_SMART_PREVIOUS_KEY_FILE"):
        SigningKeys(pem, pem)


@pytest.mark.parametrize(
    ("asked", "registered", "granted"),
    [
        (["user/CarePlan.rs"], ["user/*.rs"], ["user/CarePlan.rs"]),
        (["user/CarePlan.cruds"], ["user/*.rs"], []),
        (["user/CarePlan.read"], ["user/*.rs"], ["user/CarePlan.read"]),  # v1 form
        (["launch", "openid"], ["launch"], ["launch"]),
        (["patient/*.rs"], ["user/*.rs"], []),
        (["system/launch.c"], ["system/launch.c"], ["system/launch.c"]),
    ],
)
def test_registered_subset(asked: list[str], registered: list[str], granted: list[str]) -> None:
    assert registered_subset(asked, registered) == granted


def test_role_narrowing_follows_the_policy() -> None:
    policy = load_policy()
    admin = role_resource_types(policy, "R8008")  # demographics and care team only
    assert allowed_for_role(["user/*.rs", "openid"], admin) == [
        "user/CareTeam.rs",
        "user/Patient.rs",
        "openid",
    ]
    assert allowed_for_role(["user/CarePlan.rs"], admin) == []
    assert role_resource_types(policy, "NOT-A-ROLE") == set()

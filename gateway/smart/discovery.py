"""SMART discovery (``/.well-known/smart-configuration``) and the CapabilityStatement's part."""

from __future__ import annotations

from typing import Any

from gateway.smart.config import SmartConfig
from gateway.smart.scopes import RESOURCE_SCOPE_EXAMPLES, SMART_SCOPES

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
CAPABILITIES: tuple[str, ...] = (
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
)


def configuration(config: SmartConfig) -> dict[str, Any]:
    """The discovery document (SMART App Launch 2.2 §Conformance)."""
    return {
        "issuer": config.issuer,
        "jwks_uri": config.endpoint("jwks"),
        "authorization_endpoint": config.endpoint("authorize"),
        "token_endpoint": config.token_endpoint,
        "introspection_endpoint": config.endpoint("introspect"),
        "revocation_endpoint": config.endpoint("revoke"),
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": [*SMART_SCOPES, *RESOURCE_SCOPE_EXAMPLES],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": list(CAPABILITIES),
    }


def oauth_uris_extension(config: SmartConfig) -> dict[str, Any]:
    """The ``oauth-uris`` extension for ``CapabilityStatement.rest.security``."""
    return {
        "url": OAUTH_URIS,
        "extension": [
            {"url": "authorize", "valueUri": config.endpoint("authorize")},
            {"url": "token", "valueUri": config.token_endpoint},
            {"url": "introspect", "valueUri": config.endpoint("introspect")},
            {"url": "revoke", "valueUri": config.endpoint("revoke")},
        ],
    }

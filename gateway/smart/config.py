"""How the authorization server is configured: one frozen value built by ``serve`` or ``demo``.

``serve`` turns it on when ``CAREGW_SMART_CLIENTS_FILE`` is set (see :func:`from_settings`);
``demo`` builds one with a generated key, its own clients and the identity picker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.settings import ConfigurationError, Settings
from gateway.smart.clients import ClientRegistry, load_clients
from gateway.smart.keys import SigningKeys

if TYPE_CHECKING:
    from gateway.smart.oidc import UpstreamOidc
    from gateway.smart.picker import DemoDirectory

ACCESS_TOKEN_TTL_S = 3600


def issuer_for(fhir_base: str) -> str:
    """Our issuer: the gateway's base URL without ``/fhir``, plus ``/auth``."""
    return fhir_base.rstrip("/").removesuffix("/fhir") + "/auth"


@dataclass(frozen=True)
class SmartConfig:
    fhir_base: str
    keys: SigningKeys
    clients: ClientRegistry
    access_token_ttl_s: int = ACCESS_TOKEN_TTL_S
    # the demo's identity picker (standalone launch without an upstream provider)
    directory: DemoDirectory | None = None
    # the upstream OpenID Connect provider (standalone launch in production)
    upstream: UpstreamOidc | None = None
    extra_audiences: tuple[str, ...] = field(default=())

    @property
    def issuer(self) -> str:
        return issuer_for(self.fhir_base)

    def endpoint(self, name: str) -> str:
        return f"{self.issuer}/{name}"

    @property
    def token_endpoint(self) -> str:
        return self.endpoint("token")


def from_settings(settings: Settings) -> SmartConfig | None:
    """The server ``serve`` runs, or ``None`` when ``CAREGW_SMART_CLIENTS_FILE`` is unset.

    A missing or weak signing key, or an unusable clients file, raises
    :class:`ConfigurationError` naming the variable, so ``serve`` stops at once.
    """
    if settings.smart_clients_file is None:
        return None
    keys = SigningKeys.from_files(settings.smart_signing_key_file, settings.smart_previous_key_file)
    clients = load_clients(settings.smart_clients_file)
    if not len(clients):
        raise ConfigurationError("CAREGW_SMART_CLIENTS_FILE: registers no client")
    upstream = None
    if settings.oidc_issuer:
        from gateway.smart.oidc import UpstreamOidc

        upstream = UpstreamOidc.from_settings(settings)
    return SmartConfig(
        fhir_base=settings.fhir_base_url, keys=keys, clients=clients, upstream=upstream
    )

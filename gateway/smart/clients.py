"""Registered SMART clients, read from ``CAREGW_SMART_CLIENTS_FILE`` (a YAML list).

Each entry::

    - client_id: careplan
      name: Shared care plan viewer
      kind: public                      # public | confidential-asymmetric | backend
      redirect_uris: [https://gw.example/apps/careplan/]
      scopes: [launch, launch/patient, openid, fhirUser, user/*.rs]
    - client_id: epr-rat
      name: Trust EPR
      kind: backend
      org: RAT                          # ODS code the backend acts for (backend only)
      jwks_url: https://epr.example/.well-known/jwks.json   # or jwks: {keys: [...]}
      scopes: [system/*.rs, system/launch.c]

Redirect URIs match exactly (no wildcards, no prefix match). A key-based client
(``confidential-asymmetric`` or ``backend``) must give ``jwks`` or ``jwks_url``; a public
client gives neither. :class:`Client` is what Authlib's grants ask questions of
(``check_redirect_uri``, ``check_endpoint_auth_method`` ...): the answers follow the kind.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from joserfc.jwk import KeySet

from gateway.settings import ConfigurationError
from gateway.smart.scopes import registered_subset

ClientKindName = Literal["public", "confidential-asymmetric", "backend"]
KINDS: tuple[ClientKindName, ...] = ("public", "confidential-asymmetric", "backend")
PRIVATE_KEY_JWT = "private_key_jwt"
BEARER_SYSTEM_TOKEN = "bearer_system_token"  # introspection by a backend's own access token

_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
_ODS = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,15}")
_JWKS_TTL_S = 300.0
_VAR = "CAREGW_SMART_CLIENTS_FILE"


@dataclass(eq=False)
class Client:
    """One registered client, in the shape Authlib's ``ClientMixin`` asks for."""

    client_id: str
    name: str
    kind: ClientKindName
    redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    org: str | None = None
    jwks: Mapping[str, Any] | None = None
    jwks_url: str | None = None
    _fetched: tuple[float, KeySet] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- Authlib ClientMixin ---------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # SMART clients always name their redirect_uri

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The asked scopes this client's registration covers; ``None`` when none is."""
        allowed = registered_subset((scope or "").split(), self.scopes)
        return " ".join(allowed) if allowed else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no shared secrets here: public clients or private_key_jwt only

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # Authlib's endpoint names: token, revocation, introspection.
        if self.kind == "public":
            return method == "none" and endpoint in ("token", "revocation")
        if method == BEARER_SYSTEM_TOKEN:
            return self.kind == "backend" and endpoint == "introspection"
        if method != PRIVATE_KEY_JWT:
            return False
        if self.kind == "backend":
            return endpoint in ("token", "revocation", "introspection")
        return endpoint in ("token", "revocation")

    def check_response_type(self, response_type: str) -> bool:
        return self.kind != "backend" and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.kind == "backend":
            return grant_type == "client_credentials"
        return grant_type == "authorization_code"

    # --- keys --------------------------------------------------------------------------------
    def public_keys(self) -> KeySet:
        """The client's registered public keys (a ``jwks_url`` is fetched, cached 5 minutes).

        Called from a worker thread (Authlib's grant code is synchronous), so a fetch never
        blocks the event loop.
        """
        if self.jwks is not None:
            return KeySet.import_key_set(dict(self.jwks))  # type: ignore[arg-type]
        assert self.jwks_url is not None
        with self._lock:
            now = time.monotonic()
            if self._fetched is not None and now - self._fetched[0] < _JWKS_TTL_S:
                return self._fetched[1]
            response = httpx.get(self.jwks_url, timeout=5.0)
            response.raise_for_status()
            keys = KeySet.import_key_set(response.json())
            self._fetched = (now, keys)
            return keys


class ClientRegistry:
    """The registered clients by id (read once at start-up)."""

    def __init__(self, clients: Iterable[Client]) -> None:
        self._by_id: dict[str, Client] = {}
        for client in clients:
            if client.client_id in self._by_id:
                raise ConfigurationError(f"{_VAR}: client_id {client.client_id!r} appears twice")
            self._by_id[client.client_id] = client

    def get(self, client_id: str | None) -> Client | None:
        return None if not isinstance(client_id, str) else self._by_id.get(client_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, client: Client) -> None:
        if client.client_id in self._by_id:
            raise ConfigurationError(f"client_id {client.client_id!r} is already registered")
        self._by_id[client.client_id] = client


def load_clients(path: Path) -> ClientRegistry:
    """Read and check the clients file; errors name the variable, the entry and the field."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{_VAR}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigurationError(f"{_VAR}: {path} is not valid YAML") from None
    if not isinstance(data, list):
        raise ConfigurationError(f"{_VAR}: expected a YAML list of clients")
    return ClientRegistry(parse_client(entry, i) for i, entry in enumerate(data))


def parse_client(entry: Any, index: int = 0) -> Client:
    where = f"{_VAR}: entry {index}"
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where}: expected a mapping")
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or _CLIENT_ID.fullmatch(client_id) is None:
        raise ConfigurationError(f"{where}: client_id must be letters, digits, '.', '_' or '-'")
    where = f"{_VAR}: client {client_id!r}"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ConfigurationError(f"{where}: kind must be one of {', '.join(KINDS)}")
    redirect_uris = _strings(entry.get("redirect_uris", []), f"{where}: redirect_uris")
    for uri in redirect_uris:
        if "*" in uri or not uri.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ConfigurationError(
                f"{where}: redirect URI {uri!r} must be an exact https:// URI (http only on "
                "loopback), without wildcards"
            )
    scopes = _strings(entry.get("scopes", []), f"{where}: scopes")
    if not scopes:
        raise ConfigurationError(f"{where}: scopes must list the most it may be granted")
    jwks, jwks_url = entry.get("jwks"), entry.get("jwks_url")
    if kind == "public":
        if jwks is not None or jwks_url is not None:
            raise ConfigurationError(f"{where}: a public client has no keys (jwks / jwks_url)")
    elif (jwks is None) == (jwks_url is None):
        raise ConfigurationError(f"{where}: a {kind} client needs exactly one of jwks, jwks_url")
    if jwks is not None:
        try:
            KeySet.import_key_set(jwks)
        except Exception:  # joserfc raises several types for a bad set
            raise ConfigurationError(f"{where}: jwks is not a usable JWK Set") from None
    if jwks_url is not None and (not isinstance(jwks_url, str) or not jwks_url.startswith("http")):
        raise ConfigurationError(f"{where}: jwks_url must be an http(s) URL")
    if kind != "backend" and not redirect_uris:
        raise ConfigurationError(f"{where}: a {kind} client needs redirect_uris")
    org = entry.get("org")
    if kind == "backend":
        if not isinstance(org, str) or _ODS.fullmatch(org) is None:
            raise ConfigurationError(f"{where}: a backend client needs org (an ODS code)")
    elif org is not None:
        raise ConfigurationError(f"{where}: only backend clients have an org")
    name = entry.get("name") or client_id
    return Client(
        client_id=client_id,
        name=str(name),
        kind=kind,
        redirect_uris=redirect_uris,
        scopes=scopes,
        org=org,
        jwks=jwks,
        jwks_url=jwks_url,
    )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"{where} must be a list of strings")
    return tuple(value)

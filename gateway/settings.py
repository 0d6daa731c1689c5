"""One settings object for the whole gateway, read from ``CAREGW_*`` variables (and ``.env``).

The table in ``specs/gateway-interface.md`` is the contract. ``serve`` refuses to start when a
required value is missing, naming the variable; ``demo`` fills everything with its own values.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.base import SourceConfig
from adapters.kinds import KINDS

MIN_POLL_INTERVAL_S = 1.0


class ConfigurationError(Exception):
    """A setting is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREGW_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str | None = None
    sources_file: Path | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_jwks_file: Path | None = None
    auth_jwks_url: str | None = None
    database_url: str = "sqlite+aiosqlite:///./caregateway.db"
    redis_url: str | None = None
    cache_keys: str | None = None
    cache_index_key: str | None = None
    cache_ttl_s: int = Field(default=300, ge=0)
    # seconds a record stays in each process's own tier in front of Redis; 0: no such tier
    cache_local_ttl_s: float = Field(default=0, ge=0, allow_inf_nan=False)
    # seconds between polls of the sources' change feeds; 0: no polling (TTL only)
    change_poll_interval_s: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    policy_file: Path | None = None
    dev_signing_key_file: Path | None = None
    out_of_hours: str = "19:00-07:00"
    volume_alert_per_hour: int = 30
    audit_retention_days: int = Field(default=2922, ge=1)
    log_format: str = "auto"  # auto | json | console
    # serve upgrades the schema on start; None: yes for SQLite, no for PostgreSQL
    db_auto_upgrade: bool | None = None
    # SMART authorization server (gateway/smart): on when the clients file is set
    smart_clients_file: Path | None = None
    smart_signing_key_file: Path | None = None
    smart_previous_key_file: Path | None = None
    # upstream OpenID Connect provider for standalone login (CIS2 / NHS login)
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_key_file: Path | None = None
    oidc_scope: str | None = None  # default: CIS2's and NHS login's identity scopes
    # browser origins allowed to call the API (comma-separated, or *); none by default
    cors_origins: str | None = None
    # request size limits (docs/reliability.md, "Limits"): 413, 431, 414 beyond them
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=8 * 1024, ge=1024)
    max_uri_bytes: int = Field(default=8 * 1024, ge=1024)
    max_break_glass_reason_chars: int = Field(default=1000, ge=100, le=8 * 1024)
    # operations (gateway/ops): metrics listener, rate limits, graceful shutdown
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # None: no metrics listener
    metrics_host: str | None = None  # default: CAREGW_HOST
    rate_limit: str | None = None  # e.g. "600/minute", per user sub and per system client
    shutdown_drain_s: float = Field(default=0.0, ge=0, le=300, allow_inf_nan=False)
    shutdown_timeout_s: float = Field(default=20.0, ge=1, le=600, allow_inf_nan=False)

    @field_validator("change_poll_interval_s")
    @classmethod
    def _poll_not_too_often(cls, value: float) -> float:
        # A change feed is a vendor's API: polling it many times a second is no use to
        # anyone (the cache TTL bounds staleness anyway) and may get the gateway throttled.
        if 0 < value < MIN_POLL_INTERVAL_S:
            raise PydanticCustomError(
                "poll_too_often",
                "must be 0 (no polling) or at least {minimum} seconds",
                {"minimum": MIN_POLL_INTERVAL_S},
            )
        return value

    @field_validator("cache_local_ttl_s")
    @classmethod
    def _local_tier_within_cache_ttl(cls, value: float, info: ValidationInfo) -> float:
        ttl = info.data.get("cache_ttl_s")
        if isinstance(ttl, int) and ttl > 0 and value > ttl:
            raise PydanticCustomError(
                "local_ttl_too_long",
                "must not exceed CAREGW_CACHE_TTL_S ({ttl})",
                {"ttl": ttl},
            )
        return value

    @property
    def fhir_base_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}/fhir").rstrip("/")

    @property
    def auto_upgrade_schema(self) -> bool:
        """Whether ``serve`` migrates the database on start (``CAREGW_DB_AUTO_UPGRADE``).

        By default only SQLite, which one process owns; several PostgreSQL replicas starting
        at once should not race to migrate, so there an operator runs ``db upgrade``.
        """
        if self.db_auto_upgrade is not None:
            return self.db_auto_upgrade
        from gateway.db import is_sqlite

        return is_sqlite(self.database_url)

    @property
    def audience(self) -> str:
        return self.auth_audience or self.fhir_base_url

    def require_serve_settings(self) -> None:
        """Check what ``serve`` cannot run without; raise naming the first missing variable."""
        if not self.auth_issuer:
            raise ConfigurationError("CAREGW_AUTH_ISSUER is required")
        if not (self.auth_jwks_file or self.auth_jwks_url):
            raise ConfigurationError("CAREGW_AUTH_JWKS_FILE or CAREGW_AUTH_JWKS_URL is required")
        if not self.sources_file:
            raise ConfigurationError("CAREGW_SOURCES_FILE is required")
        if not self.cache_keys:
            raise ConfigurationError("CAREGW_CACHE_KEYS is required (caregateway keys generate)")
        if not self.cache_index_key:
            raise ConfigurationError(
                "CAREGW_CACHE_INDEX_KEY is required (caregateway keys generate --index)"
            )


def load_sources(path: Path) -> list[SourceConfig]:
    """Read the sources file (YAML or JSON list); errors name the file and the entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"CAREGW_SOURCES_FILE: cannot read {path}: {exc}") from exc
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"CAREGW_SOURCES_FILE: {path} is not valid YAML/JSON") from exc
    if not isinstance(data, list) or not data:
        raise ConfigurationError("CAREGW_SOURCES_FILE: expected a non-empty list of sources")
    sources: list[SourceConfig] = []
    names: set[str] = set()
    for i, entry in enumerate(data):
        where = f"CAREGW_SOURCES_FILE: entry {i}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: expected a mapping")
        missing = [k for k in ("name", "kind", "base_url", "organisation") if not entry.get(k)]
        if missing:
            raise ConfigurationError(f"{where}: missing {', '.join(missing)}")
        if entry["kind"] not in KINDS:
            raise ConfigurationError(f"{where}: kind must be one of {sorted(KINDS)}")
        if entry.get("domain") not in (None, "social-care", "health"):
            raise ConfigurationError(f"{where}: domain must be social-care or health")
        name = str(entry["name"])
        if not name.replace("-", "").isalnum() or name in names:
            raise ConfigurationError(f"{where}: name must be unique, letters, digits and '-'")
        names.add(name)
        try:
            sources.append(
                SourceConfig(
                    name=name,
                    kind=entry["kind"],
                    base_url=str(entry["base_url"]).rstrip("/"),
                    organisation=str(entry["organisation"]),
                    timeout_s=float(entry.get("timeout_s", 2.0)),
                    max_connections=_positive_int(entry.get("max_connections", 20)),
                    api_key=entry.get("api_key"),
                    bearer_token=entry.get("bearer_token"),
                    domain=entry.get("domain"),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{where}: {exc}") from exc
    return sources


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_connections must be a whole number of at least 1, not {value!r}")
    return value


SECRETS_DIR_VARIABLE = "CAREGW_SECRETS_DIR"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, ``.env`` and, when ``CAREGW_SECRETS_DIR`` names a
    folder, one file per secret in it (``CAREGW_DATABASE_URL`` ...; how Kubernetes and Docker
    mount secrets, so they never sit in the process environment). A variable wins over a file.
    """
    secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE) or None
    if secrets_dir is not None and not Path(secrets_dir).is_dir():
        raise ConfigurationError(f"{SECRETS_DIR_VARIABLE}: {secrets_dir} is not a folder")
    try:
        return Settings(_secrets_dir=secrets_dir)
    except ValidationError as exc:
        first = exc.errors()[0]
        var = "CAREGW_" + str(first["loc"][0]).upper() if first.get("loc") else "CAREGW_*"
        raise ConfigurationError(f"{var}: {first['msg']}") from exc

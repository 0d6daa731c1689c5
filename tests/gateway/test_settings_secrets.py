"""Secrets as files: ``CAREGW_SECRETS_DIR`` (how Kubernetes and Docker mount secrets)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import ConfigurationError, get_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No ``CAREGW_*`` variable and no ``.env`` file but the ones a test sets."""
    for name in list(os.environ):
        if name.startswith("CAREGW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def mount_secrets(env: pytest.MonkeyPatch, folder: Path, **secrets: str) -> None:
    """One file per secret in ``folder``, as a secret mount writes them, named to the gateway."""
    folder.mkdir()
    for name, value in secrets.items():
        (folder / name).write_text(value)
    env.setenv("CAREGW_SECRETS_DIR", str(folder))


def test_settings_read_one_file_per_secret_from_the_secrets_folder(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mount_secrets(
        env,
        tmp_path / "secrets",
        CAREGW_DATABASE_URL="postgresql+asyncpg://gw:pw@db/gw",
        CAREGW_CACHE_INDEX_KEY="aW5kZXgta2V5LWZvci10ZXN0cw==",
    )
    settings = get_settings()
    assert settings.database_url == "postgresql+asyncpg://gw:pw@db/gw"
    assert settings.cache_index_key == "aW5kZXgta2V5LWZvci10ZXN0cw=="


def test_an_environment_variable_wins_over_a_secret_file(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mount_secrets(
        env, tmp_path / "secrets", CAREGW_DATABASE_URL="postgresql+asyncpg://from-file/gw"
    )
    env.setenv("CAREGW_DATABASE_URL", "postgresql+asyncpg://from-env/gw")
    assert get_settings().database_url == "postgresql+asyncpg://from-env/gw"


def test_a_secrets_folder_that_does_not_exist_stops_with_the_variable_named(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("CAREGW_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="CAREGW_SECRETS_DIR"):
        get_settings()

"""``CAREGW_SOURCES_FILE``: what ``serve`` reads about each source, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import ConfigurationError, load_sources

ENTRY = """
- name: socialcare
  kind: social-care-api
  base_url: https://council.example/api/
  organisation: LA883
  api_key: not-a-real-key
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_explicit_max_connections(tmp_path: Path) -> None:
    [default] = load_sources(write(tmp_path, ENTRY))
    assert default.base_url == "https://council.example/api"
    assert default.timeout_s == 2.0 and default.max_connections == 20
    assert default.care_domain == "social-care"
    [bounded] = load_sources(write(tmp_path, ENTRY + "  max_connections: 5\n"))
    assert bounded.max_connections == 5


@pytest.mark.parametrize("bad", ["0", "-3", "2.5", "many", "true"])
def test_a_bad_max_connections_names_the_entry(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_sources(write(tmp_path, ENTRY + f"  max_connections: {bad}\n"))
    message = str(refused.value)
    assert message.startswith("CAREGW_SOURCES_FILE: entry 0")
    assert "max_connections must be a whole number of at least 1" in message
    assert "not-a-real-key" not in message


def test_missing_fields_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="missing base_url, organisation"):
        load_sources(write(tmp_path, "- name: x\n  kind: social-care-api\n"))

"""The one registry of source kinds (adapters/kinds.py) and the change-feed protocol."""

from __future__ import annotations

from typing import get_args

import pytest

from adapters.base import ChangeFeed, SourceAdapter, SourceConfig, SourceKind
from adapters.community import CommunityAdapter
from adapters.kinds import KINDS, make_adapter
from adapters.resilience import CircuitBreaker
from adapters.socialcare import SocialCareAdapter


def test_the_registry_names_exactly_the_kinds_a_config_may_have() -> None:
    assert sorted(KINDS) == sorted(get_args(SourceKind))
    assert all(name == info.name for name, info in KINDS.items())


@pytest.mark.parametrize(
    ("kind", "adapter", "domain"),
    [
        ("social-care-api", SocialCareAdapter, "social-care"),
        ("community-fhir-stu3", CommunityAdapter, "health"),
    ],
)
async def test_make_adapter_gives_the_registered_adapter_and_domain(
    kind: SourceKind, adapter: type[object], domain: str
) -> None:
    breaker = CircuitBreaker()
    config = SourceConfig("src", kind, "http://127.0.0.1:1/x", "ODS1")
    made = make_adapter(config, breaker)
    try:
        assert type(made) is adapter and isinstance(made, SourceAdapter)
        assert made.domain == domain == config.care_domain == KINDS[kind].domain
        assert made._client._breaker is breaker  # type: ignore[attr-defined]
    finally:
        await made.aclose()


async def test_a_config_domain_wins_over_the_kinds() -> None:
    config = SourceConfig("src", "social-care-api", "http://127.0.0.1:1/x", "O", domain="health")
    made = make_adapter(config)
    try:
        assert made.domain == "health"
    finally:
        await made.aclose()


async def test_only_the_social_care_source_has_a_change_feed() -> None:
    social = make_adapter(SourceConfig("a", "social-care-api", "http://127.0.0.1:1/x", "O"))
    community = make_adapter(SourceConfig("b", "community-fhir-stu3", "http://127.0.0.1:1/x", "O"))
    try:
        assert isinstance(social, ChangeFeed)
        assert not isinstance(community, ChangeFeed)
    finally:
        await social.aclose()
        await community.aclose()

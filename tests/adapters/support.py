"""Small test doubles and builders the adapter tests share with the gateway's own tests."""

from __future__ import annotations

from typing import Any

from adapters import ukcore


class ManualClock:
    """A monotonic clock that moves only when a test sets ``now``: breakers and limiters are
    given it instead of ``time.monotonic``, so their timing is tested without waiting."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def source_meta(source_uri: str, profile: str, updated: str, domain: str) -> dict[str, Any]:
    """The ``meta`` of a resource as an adapter hands it to the gateway: its UK Core profile,
    the source it came from, when the source last changed it and its care domain tag."""
    return {
        "profile": [profile],
        "source": source_uri,
        "lastUpdated": updated,
        "tag": [{"system": ukcore.CARE_DOMAIN_SYSTEM, "code": domain}],
    }

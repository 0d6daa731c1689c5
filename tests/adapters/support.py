"""Small test doubles the adapter tests share with the gateway's own tests."""

from __future__ import annotations


class ManualClock:
    """A monotonic clock that moves only when a test sets ``now``: breakers and limiters are
    given it instead of ``time.monotonic``, so their timing is tested without waiting."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

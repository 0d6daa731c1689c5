"""One timer for every caller waiting on the audit writer, instead of a timeout each.

A request's answer waits for its AuditEvent's commit, at most the store's ``timeout_s``
(a hung database must give a ``503``, not a hung request). Under load hundreds of callers
wait at once; arming and cancelling a timeout per append (``asyncio.timeout`` and a shield)
cost a fifth of the audit step. :class:`Deadlines` keeps the waiting callers in a heap by
deadline and sets one timer, for the earliest. When it fires, those answered meanwhile are
forgotten, those past their deadline are failed (:class:`~gateway.audit.errors.
AuditUnavailable`, and marked abandoned, so that what is committed for them says ``503``),
and the timer is set again for the earliest left. The callers usually all wait the same
time, so the earliest deadline is the oldest caller's, whom the writer answers first: under
a steady load the timer fires about once per ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Generic, Protocol, TypeVar

from gateway.audit.errors import AuditUnavailable


class Waiting(Protocol):
    """What waits: a future the writer answers, and whether its caller gave up."""

    future: asyncio.Future[str]
    abandoned: bool


W = TypeVar("W", bound=Waiting)


class Deadlines(Generic[W]):
    def __init__(self) -> None:
        self._waiting: list[tuple[float, int, W]] = []  # a heap: (deadline, order, item)
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def watch(self, item: W, timeout_s: float) -> None:
        """Fail ``item`` if it is not answered within ``timeout_s`` from now."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        heapq.heappush(self._waiting, (deadline, next(self._order), item))
        timer = self._timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._expire)

    def forget_answered(self) -> None:
        """Drop the answered callers with the earliest deadlines (usually all answered)."""
        waiting = self._waiting
        while waiting and waiting[0][2].future.done():
            heapq.heappop(waiting)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        waiting = self._waiting
        loop = asyncio.get_running_loop()
        now = loop.time()
        while waiting:
            deadline, _, item = waiting[0]
            if not item.future.done():
                if deadline > now:
                    break
                item.abandoned = True  # its event must end up saying 503
                item.future.set_exception(AuditUnavailable())
            heapq.heappop(waiting)
        if waiting:
            self._timer = loop.call_at(waiting[0][0], self._expire)

"""One timer for every caller waiting on the audit writer (``gateway.audit.deadlines``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from gateway.audit.deadlines import Deadlines
from gateway.audit.errors import AuditUnavailable


@dataclass(eq=False)
class Waiter:
    future: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    abandoned: bool = False


async def test_each_caller_fails_at_its_own_deadline_and_no_other() -> None:
    deadlines: Deadlines[Waiter] = Deadlines()
    patient, hasty, answered = Waiter(), Waiter(), Waiter()
    deadlines.watch(patient, 60.0)
    deadlines.watch(answered, 60.0)
    deadlines.watch(hasty, 0.05)  # later, but due first: the timer is set again for it
    answered.future.set_result("event-1")
    with pytest.raises(AuditUnavailable):
        await hasty.future
    assert hasty.abandoned  # what is committed for it must say 503
    assert not patient.future.done() and not patient.abandoned
    assert answered.future.result() == "event-1" and not answered.abandoned
    patient.future.set_result("event-2")
    deadlines.forget_answered()
    assert len(deadlines) == 0
    deadlines.close()


async def test_answered_callers_are_forgotten_in_order_and_close_stops_the_timer() -> None:
    deadlines: Deadlines[Waiter] = Deadlines()
    waiters = [Waiter() for _ in range(5)]
    for w in waiters:
        deadlines.watch(w, 60.0)
    for w in waiters[:3]:
        w.future.set_result("ok")
    deadlines.forget_answered()
    assert len(deadlines) == 2
    deadlines.close()
    assert not any(w.abandoned for w in waiters)

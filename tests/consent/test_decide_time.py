"""Where the time counts in decide(): only through the directives in force and break-glass.

The gateway remembers a verdict by the directives in force (``consent.in_force``) unless a
decision can turn on break-glass (``consent.needs_the_time``). These tests pin that promise:
the same directives in force give the same decision at any time, a directive coming into
force is decided on at once, and break-glass is the one case that depends on the time itself.
"""

from __future__ import annotations

from datetime import timedelta

from consent import in_force, needs_the_time
from consent.decide import decide
from consent.model import Effect, Reason
from consent.policy import load_policy
from tests.consent.factories import NHS, NOW, objection, record, user

POLICY = load_policy()


def test_the_same_directives_in_force_give_the_same_decision_at_any_time() -> None:
    contributions = record()
    who = user()
    first = decide(who, "TREAT", contributions, (), POLICY, NOW, person=NHS)
    later = decide(who, "TREAT", contributions, (), POLICY, NOW + timedelta(hours=5), person=NHS)
    assert later == first and first.effect is Effect.PERMIT
    assert not needs_the_time("TREAT", None, None)


def test_a_directive_coming_into_force_is_decided_on_at_once() -> None:
    contributions = record()
    who = user()
    starts = NOW + timedelta(minutes=10)
    objects = objection(period={"start": starts.isoformat()})
    after_start = starts + timedelta(seconds=1)
    assert in_force((objects,), "TREAT", NOW) == ()
    assert in_force((objects,), "TREAT", after_start) == (objects,)
    before = decide(who, "TREAT", contributions, (objects,), POLICY, NOW, person=NHS)
    after = decide(who, "TREAT", contributions, (objects,), POLICY, after_start, person=NHS)
    assert before.effect is Effect.PERMIT
    assert after.effect is Effect.DENY and after.reasons == (Reason.PATIENT_OBJECTED,)
    assert decide(who, "TREAT", contributions, (objects,), POLICY, NOW, person=NHS) == before


def test_break_glass_is_the_case_that_depends_on_the_time_itself() -> None:
    contributions = record()
    who = user(org="X99999", reason="unconscious in A&E")
    assert needs_the_time("ETREAT", "unconscious in A&E", None)
    assert needs_the_time("ETREAT", None, NOW) and not needs_the_time("ETREAT", "  ", None)
    first = decide(who, "ETREAT", contributions, (), POLICY, NOW, person=NHS)
    later = decide(who, "ETREAT", contributions, (), POLICY, NOW + timedelta(minutes=1), person=NHS)
    assert first.break_glass and later.break_glass
    assert later.break_glass_until != first.break_glass_until
    plain = user(org="X99999")
    window = decide(plain, "ETREAT", contributions, (), POLICY, NOW, NOW - timedelta(minutes=5))
    assert window.break_glass  # within the window of an earlier grant
    lapsed = decide(plain, "ETREAT", contributions, (), POLICY, NOW + timedelta(days=30), NOW)
    assert not lapsed.break_glass and lapsed.effect is Effect.DENY

"""decide() remembers its decisions, and a remembered one is always the one it would make.

The time counts only through which directives are in force and through break-glass, so a
decision is remembered by the requester, purpose, policy, person, contributions and the
directives in force. These tests pin where that must not reach: a directive coming into
force, a different record, a break-glass.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from datetime import timedelta

from consent.decide import decide
from consent.model import Effect, Reason
from consent.policy import load_policy
from tests.consent.factories import NHS, NOW, objection, record, user

POLICY = load_policy()
decide_module = importlib.import_module("consent.decide")


def afresh(*args: object) -> object:
    return decide_module._decide(*args)


def test_the_same_inputs_get_the_very_same_decision_and_it_is_the_fresh_one() -> None:
    contributions = record()
    who = user()
    first = decide(who, "TREAT", contributions, (), POLICY, NOW, person=NHS)
    again = decide(who, "TREAT", contributions, (), POLICY, NOW + timedelta(hours=5), person=NHS)
    assert again is first  # remembered
    assert first == afresh(who, "TREAT", contributions, (), POLICY, NOW, None)
    assert first.effect is Effect.PERMIT


def test_a_directive_coming_into_force_is_decided_on_at_once() -> None:
    contributions = record()
    who = user()
    starts = NOW + timedelta(minutes=10)
    objects = objection(period={"start": starts.isoformat()})
    before = decide(who, "TREAT", contributions, (objects,), POLICY, NOW, person=NHS)
    after = decide(
        who, "TREAT", contributions, (objects,), POLICY, starts + timedelta(seconds=1), person=NHS
    )
    assert before.effect is Effect.PERMIT
    assert after.effect is Effect.DENY and after.reasons == (Reason.PATIENT_OBJECTED,)
    back = decide(who, "TREAT", contributions, (objects,), POLICY, NOW, person=NHS)
    assert back is before


def test_another_record_or_requester_is_decided_afresh() -> None:
    who = user()
    first = decide(who, "TREAT", record(), (), POLICY, NOW, person=NHS)
    other_record = decide(who, "TREAT", record(), (), POLICY, NOW, person=NHS)
    assert other_record is not first and other_record == first  # new tuples: decided again
    stranger = decide(replace(who, org="X99999"), "TREAT", record(), (), POLICY, NOW, person=NHS)
    assert stranger.effect is Effect.DENY


def test_break_glass_is_never_remembered() -> None:
    contributions = record()
    who = user(org="X99999", reason="unconscious in A&E")
    first = decide(who, "ETREAT", contributions, (), POLICY, NOW, person=NHS)
    later = decide(who, "ETREAT", contributions, (), POLICY, NOW + timedelta(minutes=1), person=NHS)
    assert first.break_glass and later.break_glass
    assert later is not first and later.break_glass_until != first.break_glass_until
    plain = user(org="X99999")
    window = decide(plain, "ETREAT", contributions, (), POLICY, NOW, NOW - timedelta(minutes=5))
    assert window.break_glass  # within the window of an earlier grant
    lapsed = decide(plain, "ETREAT", contributions, (), POLICY, NOW + timedelta(days=30), NOW)
    assert not lapsed.break_glass and lapsed.effect is Effect.DENY

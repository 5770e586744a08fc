"""The guarded rollout's ramp: validation, every decision, and properties over random verdict sequences."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.verdict import Result
from deployer.exceptions import RampError
from deployer.guarded import Action, Ramp, RolloutState, RolloutStatus, decide, resume, start

RAMP = Ramp(min_step_s=600, min_on_requests=1000, max_step_s=3600)


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"steps": (5, 1)}, "steps", "steps: [5, 1] must increase; use e.g. [1, 5, 25, 100]"),
    ({"steps": (1, 5, 5, 100)}, "steps", "steps: [1, 5, 5, 100] must increase; use e.g. [1, 5, 25, 100]"),
    ({"steps": ()}, "steps", "steps: [] is not a non-empty list of percentages; use e.g. [1, 5, 25, 100]"),
    ({"steps": (0, 5, 100)}, "steps", "steps: [0, 5, 100] has 0, not a percentage in (0, 100]; use e.g."),
    ({"steps": (1, 150)}, "steps", "steps: [1, 150] has 150, not a percentage in (0, 100]"),
    ({"steps": (1, math.nan, 100)}, "steps", "has nan, not a percentage"),
    ({"steps": (1, True, 100)}, "steps", "has True, not a percentage"),
    ({"steps": (1, 5, 25)}, "steps", "steps: [1, 5, 25] must end at 100 (everyone); use e.g. [1, 5, 25, 100]"),
    ({"steps": (100,)}, "steps", "steps: [100] has no step below 100 to compare users at; use e.g. [1, 5, 25, 100]"),
    ({"min_step_s": -1}, "min_step_s", "min_step_s: -1 is not a non-negative number of seconds; use e.g. 600"),
    ({"min_step_s": math.inf}, "min_step_s", "min_step_s: inf is not"),
    ({"min_on_requests": 0}, "min_on_requests", "min_on_requests: 0 must be a whole number of requests, at least 1"),
    ({"min_on_requests": 2.5}, "min_on_requests", "min_on_requests: 2.5 must be a whole number"),
    ({"min_on_requests": True}, "min_on_requests", "min_on_requests: True must be"),
    ({"max_step_s": 0}, "max_step_s", "max_step_s: 0 is not a positive number of seconds; use e.g. 3600, or null"),
    ({"max_step_s": 60}, "max_step_s", "max_step_s: 60 is below min_step_s (600), so no step could ever advance; "
                                       "use a value above it, e.g. 3600, or null for no limit"),
])
def test_a_bad_ramp_is_refused_naming_the_field_the_value_and_the_fix(kwargs: dict, field: str, message: str) -> None:
    args = {"min_step_s": 600, "min_on_requests": 1000, **kwargs}
    with pytest.raises(RampError) as err:
        Ramp(**args)
    assert message in str(err.value)
    assert err.value.field == field and isinstance(err.value, ValueError)


def test_ramp_defaults_and_normalised_steps() -> None:
    ramp = Ramp(steps=[2, 10, 100], min_step_s=0, min_on_requests=1)  # type: ignore[arg-type]
    assert ramp.steps == (2.0, 10.0, 100.0) and ramp.max_step_s is None
    assert Ramp(min_step_s=60, min_on_requests=10).steps == (1.0, 5.0, 25.0, 100.0)
    with pytest.raises(TypeError):
        Ramp()  # type: ignore[call-arg]  # the evidence minimums have no defaults on purpose


# --- decisions ------------------------------------------------------------------------------------------------


def test_start_sets_the_first_step() -> None:
    d = start(RAMP, 100.0)
    assert d.action is Action.ADVANCE and d.percentage == 1.0
    assert d.state == RolloutState(0, 100.0, RolloutStatus.RAMPING)


def test_pass_with_enough_time_and_traffic_advances_one_step_and_restarts_the_clock() -> None:
    d = decide(RAMP, RolloutState(0, 0.0), Result.PASS, 1000, 600.0)
    assert d.action is Action.ADVANCE and d.percentage == 5.0
    assert d.state == RolloutState(1, 600.0, RolloutStatus.RAMPING, d.reason)
    assert "1% -> 5%" in d.reason and "1000 on-variant requests" in d.reason


@pytest.mark.parametrize(("result", "on", "now", "missing"), [
    (Result.PASS, 999, 10_000.0, "999 on-variant requests < 1000"),
    (Result.PASS, 50_000, 599.0, "599 s at 1% < 600 s"),
    (Result.CONTINUE, 50_000, 1000.0, "verdict continue, not pass"),
    (Result.INCONCLUSIVE, 50_000, 1000.0, "verdict inconclusive, not pass"),
])
def test_anything_short_of_pass_time_and_traffic_holds(result: Result, on: int, now: float, missing: str) -> None:
    ramp = Ramp(min_step_s=600, min_on_requests=1000)
    state = RolloutState(0, 0.0)
    d = decide(ramp, state, result, on, now)
    assert d.action is Action.HOLD and d.state == state and d.percentage == 1.0
    assert missing in d.reason


def test_the_step_before_the_last_completes_the_rollout_at_100() -> None:
    d = decide(RAMP, RolloutState(2, 0.0), Result.PASS, 5000, 700.0)
    assert d.action is Action.COMPLETE and d.percentage == 100.0
    assert d.state.status is RolloutStatus.COMPLETED and d.state.step == 3 and d.state.terminal


def test_fail_turns_off_at_any_step_however_young_or_paused() -> None:
    for state in (RolloutState(0, 0.0), RolloutState(2, 0.0), RolloutState(1, 0.0, RolloutStatus.PAUSED, "slow")):
        d = decide(RAMP, state, Result.FAIL, 0, 0.0)
        assert d.action is Action.TURN_OFF and d.percentage == 0.0
        assert d.state.status is RolloutStatus.TURNED_OFF and d.state.step == state.step
        assert RAMP.percentage(d.state) == 0.0


def test_a_step_without_enough_evidence_by_max_step_pauses_for_a_human() -> None:
    d = decide(RAMP, RolloutState(1, 0.0), Result.CONTINUE, 40, 3600.0)
    assert d.action is Action.PAUSE and d.percentage == 5.0 and d.state.status is RolloutStatus.PAUSED
    assert "max_step_s 3600" in d.reason and "40 on-variant requests < 1000" in d.reason
    # Paused: holds whatever comes, except a fail; a human resumes the same step with a fresh clock.
    held = decide(RAMP, d.state, Result.PASS, 10_000, 9999.0)
    assert held.action is Action.HOLD and held.state == d.state
    again = resume(RAMP, d.state, 5000.0)
    assert again == RolloutState(1, 5000.0, RolloutStatus.RAMPING, "resumed at 5%")
    assert resume(RAMP, again, 6000.0) is again  # only a paused rollout resumes


def test_without_max_step_a_step_waits_forever() -> None:
    ramp = Ramp(min_step_s=600, min_on_requests=1000)
    assert decide(ramp, RolloutState(0, 0.0), Result.CONTINUE, 0, 1e9).action is Action.HOLD


def test_terminal_states_stay() -> None:
    for status in (RolloutStatus.COMPLETED, RolloutStatus.TURNED_OFF):
        state = RolloutState(3 if status is RolloutStatus.COMPLETED else 1, 0.0, status, "why")
        for result in Result:
            d = decide(RAMP, state, result, 10**6, 1e6)
            assert d.action is Action.HOLD and d.state is state


def test_clock_going_back_holds() -> None:
    d = decide(RAMP, RolloutState(0, 1000.0), Result.PASS, 10**6, 10.0)
    assert d.action is Action.HOLD and "0 s at 1% < 600 s" in d.reason


@pytest.mark.parametrize(("call", "message"), [
    (lambda: decide(RAMP, RolloutState(0, 0.0), Result.PASS, -1, 0.0), "on_requests: -1 is not a count"),
    (lambda: decide(RAMP, RolloutState(0, 0.0), Result.PASS, 1, math.nan), "now: nan is not a finite time"),
    (lambda: decide(RAMP, RolloutState(7, 0.0), Result.PASS, 1, 0.0), "state.step: 7 is not a step"),
    (lambda: decide(RAMP, RolloutState(3, 0.0), Result.PASS, 1, 0.0), "state.step: 3 is the last step"),
    (lambda: decide(RAMP, RolloutState(0, 0.0), "maybe", 1, 0.0), "'maybe' is not a valid Result"),  # type: ignore
])
def test_bad_arguments_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()  # type: ignore[operator]


def test_results_may_be_given_by_value() -> None:
    assert decide(RAMP, RolloutState(0, 0.0), "fail", 0, 0.0).action is Action.TURN_OFF  # type: ignore[arg-type]


# --- properties -----------------------------------------------------------------------------------------------

ramps = st.builds(
    lambda steps, lo, extra, n: Ramp(steps=(*steps, 100.0), min_step_s=lo, min_on_requests=n,
                                     max_step_s=None if extra is None else lo + extra),
    st.lists(st.floats(0.01, 99.99), min_size=1, max_size=5, unique=True).map(lambda xs: tuple(sorted(xs))),
    st.floats(0, 1000), st.one_of(st.none(), st.floats(1, 5000)), st.integers(1, 10_000))
looks = st.lists(st.tuples(st.sampled_from(list(Result)), st.integers(0, 20_000), st.floats(0, 800)),
                 min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(ramp=ramps, sequence=looks)
def test_properties_over_any_sequence_of_looks(ramp: Ramp, sequence: list[tuple[Result, int, float]]) -> None:
    d = start(ramp, 0.0)
    state, now = d.state, 0.0
    percentages = [d.percentage]
    for result, on, dt in sequence:
        now += dt
        before = state
        d = decide(ramp, before, result, on, now)
        state = d.state
        if before.terminal:
            assert d.action is Action.HOLD and state is before  # terminal states are terminal
            continue
        if result is Result.FAIL:
            assert d.action is Action.TURN_OFF and state.status is RolloutStatus.TURNED_OFF  # a fail always turns off
            continue
        if d.action in (Action.ADVANCE, Action.COMPLETE):
            # Never skips a step; never without a pass, the minimum time and the minimum traffic.
            assert state.step == before.step + 1 and d.percentage == ramp.steps[state.step]
            assert result is Result.PASS and before.status is RolloutStatus.RAMPING
            assert now - before.step_started_at >= ramp.min_step_s and on >= ramp.min_on_requests
            assert (d.action is Action.COMPLETE) == (state.step == len(ramp.steps) - 1)
            assert state.step_started_at == now
            percentages.append(d.percentage)
        else:
            assert state.step == before.step and d.percentage == ramp.percentage(before)
        if d.action is Action.PAUSE:
            assert ramp.max_step_s is not None and now - before.step_started_at >= ramp.max_step_s
        assert d.action is not Action.PAUSE or state.status is RolloutStatus.PAUSED
    assert percentages == list(ramp.steps[:len(percentages)])  # the flag only ever climbed the ramp in order


def test_a_harmless_flag_walks_the_whole_ramp_in_order() -> None:
    d = start(RAMP, 0.0)
    seen, now = [d.percentage], 0.0
    while not d.state.terminal:
        now += 300.0
        d = decide(RAMP, d.state, Result.PASS, 1000, now)
        if d.action is not Action.HOLD:
            seen.append(d.percentage)
    assert seen == [1.0, 5.0, 25.0, 100.0] and d.action is Action.COMPLETE and now == 1800.0

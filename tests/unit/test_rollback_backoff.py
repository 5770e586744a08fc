"""Rollback retries back off and, after a bounded number of failures, wait for a human."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployer.exceptions import InvalidTransition
from deployer.pipeline import AwaitOperator, Event, Phase, RollBack, State, Status, advance, backoff_delay

E, S = Event, Status


def failing_rollback(max_failures: int) -> State:
    state, _ = advance(State(status=S.CANARY, phase=Phase.BAKING, max_rollback_failures=max_failures),
                       E.ANALYSIS_FAILED)
    return state


@pytest.mark.parametrize("max_failures", [1, 2, 5])
def test_each_failure_is_counted_until_a_human_is_needed(max_failures: int) -> None:
    state = failing_rollback(max_failures)
    assert (state.status, state.rollback_failures) == (S.ROLLING_BACK, 0)
    for attempt in range(1, max_failures):
        state, effects = advance(state, E.HOST_FAILED)
        assert (state.status, state.rollback_failures, effects) == (S.ROLLING_BACK, attempt, [RollBack(attempt)])
    state, effects = advance(state, E.HOST_FAILED)
    assert (state.status, state.phase, state.paused_from, state.rollback_failures) == \
        (S.PAUSED, None, S.ROLLING_BACK, max_failures)
    assert len(effects) == 1 and isinstance(effects[0], AwaitOperator)
    assert f"rollback failed {max_failures} times in a row" in effects[0].reason and "resume" in effects[0].reason


def test_a_paused_rollback_resumes_or_is_aborted_into_a_fresh_rollback_but_never_promoted() -> None:
    state = failing_rollback(1)
    paused, _ = advance(state, E.HOST_FAILED)
    for event in (E.RESUME, E.ABORT):
        again, effects = advance(paused, event)
        assert (again.status, again.paused_from, again.rollback_failures, effects) == \
            (S.ROLLING_BACK, None, 0, [RollBack()])
    with pytest.raises(InvalidTransition):
        advance(paused, E.PROMOTE)


def test_a_rollback_that_finally_works_finishes_and_a_new_one_starts_from_zero() -> None:
    state = failing_rollback(5)
    state, _ = advance(state, E.HOST_FAILED)
    state, _ = advance(state, E.HOST_FAILED)
    done, _ = advance(state, E.ROLLBACK_DONE)
    assert done.status is S.ROLLED_BACK
    fresh, _ = advance(State(status=S.ROLLING_OUT, phase=Phase.DEPLOYING, rollback_failures=3), E.HOST_FAILED)
    assert fresh.rollback_failures == 0


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [backoff_delay(n, base_s=2, cap_s=60) for n in range(8)]
    assert delays == [0, 2, 4, 8, 16, 32, 60, 60]


@given(st.integers(0, 10_000), st.floats(0.01, 100), st.floats(0.01, 10_000))
def test_backoff_never_shrinks_and_never_exceeds_the_cap(attempt: int, base: float, cap: float) -> None:
    delay = backoff_delay(attempt, base_s=base, cap_s=cap)
    assert 0 <= delay <= max(cap, 0)
    assert backoff_delay(attempt + 1, base_s=base, cap_s=cap) >= delay

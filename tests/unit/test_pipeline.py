"""Exhaustive tests of the pure deployment state machine."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.exceptions import InvalidTransition
from deployer.pipeline import (
    POSITIONS,
    TERMINAL,
    TRANSITIONS,
    AwaitOperator,
    Build,
    DeployWave,
    Event,
    ExtendBake,
    Finish,
    Phase,
    RollBack,
    RunTests,
    StartBake,
    State,
    Status,
    advance,
    allowed_events,
    entry_effects,
    plan_waves,
    rollout_order,
)

S, P, E = Status, Phase, Event
D, B = P.DEPLOYING, P.BAKING

# The specification, written out independently of the implementation's table:
# (status, phase, event) -> (next status, next phase, effect types). `wave` and the
# other fields are checked by the targeted tests below.
SPEC: dict[tuple[Status, Phase | None, Event], tuple[Status, Phase | None, list[type]]] = {
    (S.QUEUED, None, E.START): (S.TESTING, None, [RunTests]),
    (S.QUEUED, None, E.START_TESTED): (S.BUILDING, None, [Build]),
    (S.QUEUED, None, E.ABORT): (S.ABORTED, None, [Finish]),
    (S.QUEUED, None, E.SUPERSEDE): (S.SUPERSEDED, None, [Finish]),
    (S.TESTING, None, E.TESTS_PASSED): (S.BUILDING, None, [Build]),
    (S.TESTING, None, E.TESTS_FAILED): (S.TESTS_FAILED, None, [Finish]),
    (S.TESTING, None, E.ABORT): (S.ABORTED, None, [Finish]),
    (S.BUILDING, None, E.BUILD_SUCCEEDED): (S.CANARY, D, [DeployWave]),
    (S.BUILDING, None, E.BUILD_FAILED): (S.BUILD_FAILED, None, [Finish]),
    (S.BUILDING, None, E.ABORT): (S.ABORTED, None, [Finish]),
    (S.PAUSED, None, E.ABORT): (S.ROLLING_BACK, None, [RollBack]),
    (S.ROLLING_BACK, None, E.ROLLBACK_DONE): (S.ROLLED_BACK, None, [Finish]),
    (S.ROLLING_BACK, None, E.HOST_FAILED): (S.ROLLING_BACK, None, [RollBack]),
}
for _status in (S.CANARY, S.ROLLING_OUT):
    SPEC.update({
        (_status, D, E.HOST_FAILED): (S.ROLLING_BACK, None, [RollBack]),
        (_status, D, E.ABORT): (S.ROLLING_BACK, None, [RollBack]),
        (_status, D, E.PAUSE): (S.PAUSED, None, [AwaitOperator]),
        (_status, B, E.ANALYSIS_PASSED): (S.ROLLING_OUT, D, [DeployWave]),
        (_status, B, E.PROMOTE): (S.ROLLING_OUT, D, [DeployWave]),
        (_status, B, E.ANALYSIS_FAILED): (S.ROLLING_BACK, None, [RollBack]),
        (_status, B, E.ANALYSIS_INCONCLUSIVE): (_status, B, [ExtendBake]),
        (_status, B, E.HOST_FAILED): (S.ROLLING_BACK, None, [RollBack]),
        (_status, B, E.ABORT): (S.ROLLING_BACK, None, [RollBack]),
        (_status, B, E.PAUSE): (S.PAUSED, None, [AwaitOperator]),
    })
# Rules whose outcome depends on more than (status, phase): tested one by one below.
CONDITIONAL = {(s, D, E.WAVE_DEPLOYED) for s in (S.CANARY, S.ROLLING_OUT)} | {
    (S.PAUSED, None, E.RESUME), (S.PAUSED, None, E.PROMOTE)}


def state_at(status: Status, phase: Phase | None, **kw: object) -> State:
    """A state in (status, phase); paused states default to paused while baking the canary."""
    if status is S.PAUSED:
        kw.setdefault("paused_from", S.CANARY)
        kw.setdefault("paused_phase", B)
    return State(status=status, phase=phase, **kw)  # type: ignore[arg-type]


def test_table_matches_the_specification_exactly() -> None:
    assert set(TRANSITIONS) == set(SPEC) | CONDITIONAL


@pytest.mark.parametrize("position", POSITIONS, ids=lambda p: f"{p[0].value}/{p[1].value if p[1] else '-'}")
@pytest.mark.parametrize("event", list(Event), ids=lambda e: e.value)
def test_every_status_and_event(position: tuple[Status, Phase | None], event: Event) -> None:
    status, phase = position
    before = state_at(status, phase, wave=1, waves=3)
    key = (status, phase, event)
    if key in SPEC:
        after, effects = advance(before, event)
        want_status, want_phase, want_effects = SPEC[key]
        assert (after.status, after.phase) == (want_status, want_phase)
        assert [type(e) for e in effects] == want_effects
        assert (after.status, after.phase) in POSITIONS
    elif key not in CONDITIONAL:
        snapshot = replace(before)
        with pytest.raises(InvalidTransition) as info:
            advance(before, event)
        assert info.value.event == event.value
        assert before == snapshot


@pytest.mark.parametrize("status", sorted(TERMINAL, key=lambda s: s.value))
def test_terminal_statuses_accept_nothing(status: Status) -> None:
    state = State(status=status)
    assert allowed_events(state) == []
    for event in Event:
        with pytest.raises(InvalidTransition):
            advance(state, event)
    assert status.terminal


def test_happy_path_through_every_wave() -> None:
    state = State(waves=3)
    trail = []
    for event in (E.START, E.TESTS_PASSED, E.BUILD_SUCCEEDED, E.WAVE_DEPLOYED, E.ANALYSIS_PASSED,
                  E.WAVE_DEPLOYED, E.ANALYSIS_PASSED, E.WAVE_DEPLOYED):
        state, effects = advance(state, event)
        trail.append((state.status.value, state.phase.value if state.phase else None, state.wave, effects))
    assert trail == [
        ("testing", None, 0, [RunTests()]),
        ("building", None, 0, [Build()]),
        ("canary", "deploying", 0, [DeployWave(0)]),
        ("canary", "baking", 0, [StartBake(0)]),
        ("rolling_out", "deploying", 1, [DeployWave(1)]),
        ("rolling_out", "baking", 1, [StartBake(1)]),
        ("rolling_out", "deploying", 2, [DeployWave(2)]),
        ("succeeded", None, 2, [Finish(S.SUCCEEDED)]),
    ]


def test_last_wave_has_no_bake_and_earlier_waves_do() -> None:
    for wave in range(3):
        state = State(status=S.ROLLING_OUT, phase=D, wave=wave, waves=3)
        after, effects = advance(state, E.WAVE_DEPLOYED)
        if wave == 2:
            assert (after.status, effects) == (S.SUCCEEDED, [Finish(S.SUCCEEDED)])
        else:
            assert (after.status, after.phase, effects) == (S.ROLLING_OUT, B, [StartBake(wave)])


def test_inconclusive_extends_then_pauses_for_a_human() -> None:
    state = State(status=S.CANARY, phase=B, max_extensions=2)
    state, effects = advance(state, E.ANALYSIS_INCONCLUSIVE)
    assert (state.extensions, effects) == (1, [ExtendBake(0, 1)])
    state, effects = advance(state, E.ANALYSIS_INCONCLUSIVE)
    assert (state.extensions, effects) == (2, [ExtendBake(0, 2)])
    state, effects = advance(state, E.ANALYSIS_INCONCLUSIVE)
    assert state.status is S.PAUSED and (state.paused_from, state.paused_phase) == (S.CANARY, B)
    assert isinstance(effects[0], AwaitOperator) and "inconclusive" in effects[0].reason


def test_zero_extensions_pauses_at_once() -> None:
    state, effects = advance(State(status=S.CANARY, phase=B, max_extensions=0), E.ANALYSIS_INCONCLUSIVE)
    assert state.status is S.PAUSED and isinstance(effects[0], AwaitOperator)


@pytest.mark.parametrize("status", [S.CANARY, S.ROLLING_OUT])
@pytest.mark.parametrize("phase", list(Phase))
def test_pause_then_resume_returns_to_the_same_place(status: Status, phase: Phase) -> None:
    start = State(status=status, phase=phase, wave=1, waves=4, extensions=1)
    paused, _ = advance(start, E.PAUSE)
    assert (paused.status, paused.phase, paused.paused_from, paused.paused_phase) == (S.PAUSED, None, status, phase)
    resumed, effects = advance(paused, E.RESUME)
    assert (resumed.status, resumed.phase, resumed.wave) == (status, phase, 1)
    assert resumed.paused_from is None and resumed.extensions == 0
    assert effects == ([StartBake(1)] if phase is B else [DeployWave(1)])


def test_promote_while_paused_in_a_bake_moves_to_the_next_wave() -> None:
    paused = state_at(S.PAUSED, None, wave=0, waves=3)
    after, effects = advance(paused, E.PROMOTE)
    assert (after.status, after.phase, after.wave, effects) == (S.ROLLING_OUT, D, 1, [DeployWave(1)])
    assert after.paused_from is None


def test_promote_while_paused_during_deploy_is_refused() -> None:
    paused = state_at(S.PAUSED, None, paused_from=S.ROLLING_OUT, paused_phase=D, wave=1)
    with pytest.raises(InvalidTransition):
        advance(paused, E.PROMOTE)


def test_abort_while_paused_rolls_back_and_forgets_the_pause() -> None:
    after, effects = advance(state_at(S.PAUSED, None), E.ABORT)
    assert (after.status, after.paused_from, effects) == (S.ROLLING_BACK, None, [RollBack()])


def test_entry_effects_resume_each_position() -> None:
    expected = {
        (S.TESTING, None): [RunTests()],
        (S.BUILDING, None): [Build()],
        (S.CANARY, D): [DeployWave(1)],
        (S.ROLLING_OUT, D): [DeployWave(1)],
        (S.CANARY, B): [StartBake(1)],
        (S.ROLLING_OUT, B): [StartBake(1)],
        (S.ROLLING_BACK, None): [RollBack()],
    }
    for status, phase in POSITIONS:
        assert entry_effects(state_at(status, phase, wave=1)) == expected.get((status, phase), [])


def test_state_needs_two_waves() -> None:
    with pytest.raises(ValueError):
        State(waves=1)


@given(st.lists(st.sampled_from(list(Event)), max_size=40), st.integers(2, 6), st.integers(0, 3))
@settings(max_examples=400, deadline=None)
def test_any_sequence_of_events_keeps_the_machine_consistent(events: list[Event], waves: int, ext: int) -> None:
    state = State(waves=waves, max_extensions=ext)
    for event in events:
        try:
            after, effects = advance(state, event)
        except InvalidTransition:
            assert event not in allowed_events(state)
            continue
        assert event in allowed_events(state)
        assert (after.status, after.phase) in POSITIONS
        assert 0 <= after.wave < waves and after.extensions <= ext
        assert (after.status is S.PAUSED) == (after.paused_from is not None)
        if after.status.terminal:
            assert effects == [Finish(after.status)]
        if state.status.terminal:
            pytest.fail("a terminal status accepted an event")
        state = after


# --- wave planning ------------------------------------------------------------------

@pytest.mark.parametrize(("hosts", "canary", "waves", "plan"), [
    (6, 1, [25, 100], [1, 2, 6]),
    (8, 1, [25, 100], [1, 2, 8]),
    (8, 1, [10, 50, 100], [1, 4, 8]),
    (2, 1, [25, 100], [1, 2]),
    (4, 3, [50, 100], [2, 4]),
    (10, 2, [100], [2, 10]),
    (3, 1, [100], [1, 3]),
])
def test_plan_waves(hosts: int, canary: int, waves: list[float], plan: list[int]) -> None:
    assert plan_waves(hosts, canary, waves) == plan


@given(st.integers(2, 300), st.integers(1, 10),
       st.lists(st.floats(0.5, 100), min_size=1, max_size=6).map(sorted))
def test_plan_waves_properties(hosts: int, canary: int, waves: list[float]) -> None:
    plan = plan_waves(hosts, canary, waves)
    assert plan[-1] == hosts and plan[0] >= 1 and plan[0] <= hosts // 2
    assert all(b > a for a, b in zip(plan, plan[1:]))


def test_plan_waves_refuses_a_single_host() -> None:
    with pytest.raises(ValueError):
        plan_waves(1, 1, [100])


def test_rollout_order_keeps_the_baseline_for_last() -> None:
    hosts = [f"host-{i}" for i in range(6)]
    canary, baseline, order = rollout_order(hosts, 1)
    assert canary == ["host-0"] and baseline == ["host-1"]
    assert order == ["host-0", "host-2", "host-3", "host-4", "host-5", "host-1"]
    assert sorted(order) == sorted(hosts)

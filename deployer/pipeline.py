"""The deployment state machine, pure: one table of transitions and `advance()`.

No I/O, no clock, no randomness. `advance(state, event)` returns the next state and
the effects the controller must carry out; any event the table does not list for
the current (status, phase) raises InvalidTransition and changes nothing.

A deployment walks:

    queued -> testing -> building -> canary -> rolling_out (wave 1..n) -> succeeded
       |         |          ^  |      \\         /
       |         v          |  v       rolling_back -> rolled_back
       |    tests_failed    |  build_failed
       +--------------------+  start_tested: its commits passed their tests ahead of it

`canary` and `rolling_out` have two phases: `deploying` (hosts of the wave are being
moved to the new version) and `baking` (the wave runs while the analysis watches).
The last wave (100% of the fleet) has no bake: once its hosts are healthy the
deployment has succeeded. `paused` remembers where it came from and returns there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from deployer.exceptions import InvalidTransition


class Status(str, Enum):
    QUEUED = "queued"
    TESTING = "testing"
    BUILDING = "building"
    CANARY = "canary"
    ROLLING_OUT = "rolling_out"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    TESTS_FAILED = "tests_failed"
    BUILD_FAILED = "build_failed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    SUPERSEDED = "superseded"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.TESTS_FAILED, Status.BUILD_FAILED,
                      Status.ROLLED_BACK, Status.ABORTED, Status.SUPERSEDED})
# Statuses whose failure means the release is bad (as opposed to stopped by a human).
FAILED = frozenset({Status.TESTS_FAILED, Status.BUILD_FAILED, Status.ROLLED_BACK})


class Phase(str, Enum):
    DEPLOYING = "deploying"
    BAKING = "baking"


class Event(str, Enum):
    START = "start"
    # The release's commits passed their tests ahead of it (run when they were discovered).
    START_TESTED = "start_tested"
    TESTS_PASSED = "tests_passed"
    TESTS_FAILED = "tests_failed"
    BUILD_SUCCEEDED = "build_succeeded"
    BUILD_FAILED = "build_failed"
    WAVE_DEPLOYED = "wave_deployed"
    HOST_FAILED = "host_failed"
    ANALYSIS_PASSED = "analysis_passed"
    ANALYSIS_FAILED = "analysis_failed"
    ANALYSIS_INCONCLUSIVE = "analysis_inconclusive"
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    ROLLBACK_DONE = "rollback_done"
    SUPERSEDE = "supersede"


@dataclass(frozen=True)
class State:
    """Everything the state machine needs to know about one deployment.

    `waves` counts the waves including the canary (wave 0); the last one is the whole fleet.
    `paused_from`/`paused_phase` say where `resume` returns to.
    """

    status: Status = Status.QUEUED
    phase: Phase | None = None
    wave: int = 0
    waves: int = 3
    extensions: int = 0
    max_extensions: int = 2
    paused_from: Status | None = None
    paused_phase: Phase | None = None
    # Failed rollback attempts in a row; at max_rollback_failures a human takes over.
    rollback_failures: int = 0
    max_rollback_failures: int = 5

    def __post_init__(self) -> None:
        if self.waves < 2:
            raise ValueError("a rollout needs at least a canary wave and a full-fleet wave")

    @property
    def last_wave(self) -> bool:
        return self.wave == self.waves - 1


# --- effects: what the controller must do after a transition --------------------

@dataclass(frozen=True)
class RunTests:
    """Run the test command at the release's commit."""


@dataclass(frozen=True)
class Build:
    """Build the release's artifact."""


@dataclass(frozen=True)
class DeployWave:
    """Make every host of `wave` run the new version (wave 0 also restarts the baseline)."""

    wave: int


@dataclass(frozen=True)
class StartBake:
    """Start a fresh analysis window for `wave` (after warm-up)."""

    wave: int


@dataclass(frozen=True)
class ExtendBake:
    """The verdict was inconclusive: keep the window and bake longer."""

    wave: int
    extension: int


@dataclass(frozen=True)
class RollBack:
    """Put every host this deployment touched back on the previous version.

    `attempt` counts the failed attempts before this one: the controller waits
    `backoff_delay(attempt, ...)` before trying again.
    """

    attempt: int = 0


@dataclass(frozen=True)
class Finish:
    """The deployment reached a terminal status; settle the release and its commits."""

    status: Status


@dataclass(frozen=True)
class AwaitOperator:
    """Nothing more happens on its own: a human must promote, resume or abort."""

    reason: str


Effect = RunTests | Build | DeployWave | StartBake | ExtendBake | RollBack | Finish | AwaitOperator
Rule = Callable[[State], tuple[State, list[Effect]]]


# --- rules --------------------------------------------------------------------------

def _to(status: Status) -> Rule:
    """A transition to a terminal status."""
    return lambda s: (replace(s, status=status, phase=None), [Finish(status)])


def _start(s: State) -> tuple[State, list[Effect]]:
    return replace(s, status=Status.TESTING), [RunTests()]


def _build(s: State) -> tuple[State, list[Effect]]:
    return replace(s, status=Status.BUILDING), [Build()]


def _deploy_canary(s: State) -> tuple[State, list[Effect]]:
    return replace(s, status=Status.CANARY, phase=Phase.DEPLOYING, wave=0, extensions=0), [DeployWave(0)]


def _wave_deployed(s: State) -> tuple[State, list[Effect]]:
    if s.last_wave:
        return replace(s, status=Status.SUCCEEDED, phase=None), [Finish(Status.SUCCEEDED)]
    return replace(s, phase=Phase.BAKING, extensions=0), [StartBake(s.wave)]


def _next_wave(s: State) -> tuple[State, list[Effect]]:
    wave = s.wave + 1
    return (replace(s, status=Status.ROLLING_OUT, phase=Phase.DEPLOYING, wave=wave, extensions=0),
            [DeployWave(wave)])


def _roll_back(s: State) -> tuple[State, list[Effect]]:
    return (replace(s, status=Status.ROLLING_BACK, phase=None, paused_from=None, paused_phase=None,
                    rollback_failures=0), [RollBack()])


def _retry_rollback(s: State) -> tuple[State, list[Effect]]:
    failures = s.rollback_failures + 1
    if failures >= s.max_rollback_failures:
        return _pause(replace(s, rollback_failures=failures),
                      reason=f"rollback failed {failures} times in a row; the hosts cannot return to the previous "
                             "version on their own: fix them, then resume to retry the rollback")
    return replace(s, rollback_failures=failures), [RollBack(attempt=failures)]


def backoff_delay(attempt: int, *, base_s: float, cap_s: float) -> float:
    """Seconds to wait before retry number `attempt` (0: none): base, 2x base, 4x base ... at most cap."""
    if attempt <= 0:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(attempt - 1, 60))


def _inconclusive(s: State) -> tuple[State, list[Effect]]:
    if s.extensions < s.max_extensions:
        extension = s.extensions + 1
        return replace(s, extensions=extension), [ExtendBake(s.wave, extension)]
    return _pause(s, reason="analysis stayed inconclusive after every extension; promote or abort")


def _pause(s: State, reason: str = "paused by an operator") -> tuple[State, list[Effect]]:
    paused = replace(s, status=Status.PAUSED, phase=None, paused_from=s.status, paused_phase=s.phase)
    return paused, [AwaitOperator(reason)]


def _resume(s: State) -> tuple[State, list[Effect]]:
    if s.paused_from is Status.ROLLING_BACK:
        # A human fixed what kept the rollback failing: try again from a clean count.
        return _roll_back(s)
    assert s.paused_from is not None and s.paused_phase is not None
    resumed = replace(s, status=s.paused_from, phase=s.paused_phase, paused_from=None, paused_phase=None,
                      extensions=0)
    effect: Effect = StartBake(s.wave) if s.paused_phase is Phase.BAKING else DeployWave(s.wave)
    return resumed, [effect]


def _promote_paused(s: State) -> tuple[State, list[Effect]]:
    if s.paused_phase is not Phase.BAKING:
        raise InvalidTransition(s.status.value, Event.PROMOTE.value)
    return _next_wave(replace(s, paused_from=None, paused_phase=None))


def _rollback_done(s: State) -> tuple[State, list[Effect]]:
    return replace(s, status=Status.ROLLED_BACK), [Finish(Status.ROLLED_BACK)]


_DEPLOYING = {
    Event.WAVE_DEPLOYED: _wave_deployed,
    Event.HOST_FAILED: _roll_back,
    Event.ABORT: _roll_back,
    Event.PAUSE: _pause,
}
_BAKING = {
    Event.ANALYSIS_PASSED: _next_wave,
    Event.PROMOTE: _next_wave,
    Event.ANALYSIS_FAILED: _roll_back,
    Event.ANALYSIS_INCONCLUSIVE: _inconclusive,
    Event.HOST_FAILED: _roll_back,
    Event.ABORT: _roll_back,
    Event.PAUSE: _pause,
}

# The one table: (status, phase, event) -> rule. Nothing else changes a status.
TRANSITIONS: dict[tuple[Status, Phase | None, Event], Rule] = {
    (Status.QUEUED, None, Event.START): _start,
    (Status.QUEUED, None, Event.START_TESTED): _build,
    (Status.QUEUED, None, Event.ABORT): _to(Status.ABORTED),
    (Status.QUEUED, None, Event.SUPERSEDE): _to(Status.SUPERSEDED),
    (Status.TESTING, None, Event.TESTS_PASSED): _build,
    (Status.TESTING, None, Event.TESTS_FAILED): _to(Status.TESTS_FAILED),
    (Status.TESTING, None, Event.ABORT): _to(Status.ABORTED),
    (Status.BUILDING, None, Event.BUILD_SUCCEEDED): _deploy_canary,
    (Status.BUILDING, None, Event.BUILD_FAILED): _to(Status.BUILD_FAILED),
    (Status.BUILDING, None, Event.ABORT): _to(Status.ABORTED),
    **{(status, Phase.DEPLOYING, event): rule
       for status in (Status.CANARY, Status.ROLLING_OUT) for event, rule in _DEPLOYING.items()},
    **{(status, Phase.BAKING, event): rule
       for status in (Status.CANARY, Status.ROLLING_OUT) for event, rule in _BAKING.items()},
    (Status.PAUSED, None, Event.RESUME): _resume,
    (Status.PAUSED, None, Event.PROMOTE): _promote_paused,
    (Status.PAUSED, None, Event.ABORT): _roll_back,
    (Status.ROLLING_BACK, None, Event.ROLLBACK_DONE): _rollback_done,
    (Status.ROLLING_BACK, None, Event.HOST_FAILED): _retry_rollback,
}

# The (status, phase) pairs a deployment can be in; used by tests and the store.
POSITIONS: tuple[tuple[Status, Phase | None], ...] = tuple(
    [(s, None) for s in Status if s not in (Status.CANARY, Status.ROLLING_OUT)]
    + [(s, p) for s in (Status.CANARY, Status.ROLLING_OUT) for p in Phase]
)


def allowed_events(state: State) -> list[Event]:
    """The events the current (status, phase) accepts, in table order."""
    return [e for (s, p, e) in TRANSITIONS if s is state.status and p is state.phase]


def advance(state: State, event: Event) -> tuple[State, list[Effect]]:
    """Apply `event` to `state`: the next state and the effects to carry out.

    Raises InvalidTransition (and changes nothing, states being immutable) when the
    table has no rule for the current status and phase.
    """
    rule = TRANSITIONS.get((state.status, state.phase, event))
    if rule is None:
        where = state.status.value + (f"/{state.phase.value}" if state.phase else "")
        raise InvalidTransition(where, event.value)
    return rule(state)


def entry_effects(state: State) -> list[Effect]:
    """What to (re)do to resume a deployment found in `state` after a restart.

    Every effect is idempotent, so replaying the entry action of the current state is
    how the controller recovers from being killed at any instant.
    """
    status, phase = state.status, state.phase
    if status is Status.TESTING:
        return [RunTests()]
    if status is Status.BUILDING:
        return [Build()]
    if phase is Phase.DEPLOYING:
        return [DeployWave(state.wave)]
    if phase is Phase.BAKING:
        return [StartBake(state.wave)]
    if status is Status.ROLLING_BACK:
        return [RollBack()]
    return []


# --- wave planning ------------------------------------------------------------------

def plan_waves(host_count: int, canary_hosts: int, percents: list[float]) -> list[int]:
    """Cumulative number of hosts on the new version after each wave (wave 0 = canary).

    Waves that would not add a host are dropped; the last wave is always the whole fleet.
    The canary never takes more than half the fleet, since the baseline needs as many hosts.
    """
    if host_count < 2:
        raise ValueError("a canary rollout needs at least two hosts (canary and baseline)")
    canary = max(1, min(canary_hosts, host_count // 2))
    counts = [canary]
    for percent in percents:
        target = min(host_count, max(1, math.ceil(host_count * percent / 100.0)))
        if target > counts[-1]:
            counts.append(target)
    if counts[-1] != host_count:
        counts.append(host_count)
    return counts


def rollout_order(hosts: list[str], canary_hosts: int) -> tuple[list[str], list[str], list[str]]:
    """Split hosts into (canary, baseline, order): the order waves take hosts in.

    The baseline hosts go last so they stay on the current version, as a fair
    comparison, until the final wave.
    """
    count = max(1, min(canary_hosts, len(hosts) // 2))
    canary, baseline, rest = hosts[:count], hosts[count:2 * count], hosts[2 * count:]
    return canary, baseline, canary + rest + baseline

"""Guarded rollout of a feature flag, PURE: the ramp and its decisions (no I/O, no clock; time passed in).

A flag's percentage climbs the ramp's steps (default 1% -> 5% -> 25% -> 100%). At every step
but the last, the users with the flag on are compared with the users with it off (canary.
flag_judge); ``decide`` turns that step's verdict into one decision:

- a FAIL turns the flag off at once, at any step, paused or not: a proven regression;
- a PASS (no regression shown) advances one step, never more, and only once the step has
  run ``min_step_s`` and served ``min_on_requests`` on-variant requests;
- reaching the last step (100%) completes the rollout: nobody is left with the flag off, so
  there is no one to compare with, and the step before it was the last one measured;
- a step that ran ``max_step_s`` without the evidence to advance pauses for a human;
- anything else holds. Completed and turned-off rollouts are terminal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum

from canary.verdict import Result
from deployer.exceptions import RampError

__all__ = ["Action", "Decision", "Ramp", "RolloutState", "RolloutStatus", "decide", "resume", "start"]

EXAMPLE_STEPS = "[1, 5, 25, 100]"


class RolloutStatus(str, Enum):
    """Where a guarded rollout is."""

    RAMPING = "ramping"
    PAUSED = "paused"
    COMPLETED = "completed"
    TURNED_OFF = "turned_off"


TERMINAL = frozenset({RolloutStatus.COMPLETED, RolloutStatus.TURNED_OFF})


class Action(str, Enum):
    """What the caller must do with the flag after a decision."""

    HOLD = "hold"
    ADVANCE = "advance"
    COMPLETE = "complete"
    TURN_OFF = "turn_off"
    PAUSE = "pause"


def _steps_text(steps: object) -> str:
    """Render steps the way a user would write them: [1, 5, 25, 100]."""
    if isinstance(steps, (list, tuple)):
        return "[" + ", ".join(f"{s:g}" if isinstance(s, (int, float)) and not isinstance(s, bool) else repr(s)
                               for s in steps) + "]"
    return repr(steps)


def _number(value: object) -> bool:
    """True for a real number (bool is an int in Python, but never a number of seconds or percent)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class Ramp:
    """The steps (percent of users with the flag on) and the evidence each step needs before the next."""

    steps: tuple[float, ...] = (1.0, 5.0, 25.0, 100.0)
    # Least time at a step: slow effects (a cache that fills, a nightly job) get a chance to show.
    min_step_s: float
    # Least on-variant requests at a step: fewer cannot show a regression that matters.
    min_on_requests: int
    # A step that has run this long without enough evidence waits for a human (None: wait forever).
    max_step_s: float | None = None

    def __post_init__(self) -> None:
        """Refuse a ramp that could skip its measurement or never finish; the message names the fix."""
        steps = self.steps
        shown = _steps_text(steps)
        if not isinstance(steps, (list, tuple)) or not steps:
            raise RampError("steps", steps, f"steps: {shown} is not a non-empty list of percentages; "
                            f"use e.g. {EXAMPLE_STEPS}")
        for s in steps:
            if not _number(s) or not math.isfinite(s) or not 0 < s <= 100:
                raise RampError("steps", steps, f"steps: {shown} has {s!r}, not a percentage in (0, 100]; "
                                f"use e.g. {EXAMPLE_STEPS}")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise RampError("steps", steps, f"steps: {shown} must increase; use e.g. {EXAMPLE_STEPS}")
        if steps[-1] != 100:
            raise RampError("steps", steps, f"steps: {shown} must end at 100 (everyone); use e.g. "
                            f"{_steps_text([*steps, 100])}")
        if len(steps) < 2:
            raise RampError("steps", steps, f"steps: {shown} has no step below 100 to compare users at; "
                            f"use e.g. {EXAMPLE_STEPS}")
        if not _number(self.min_step_s) or not math.isfinite(self.min_step_s) or self.min_step_s < 0:
            raise RampError("min_step_s", self.min_step_s, f"min_step_s: {self.min_step_s!r} is not a non-negative "
                            "number of seconds; use e.g. 600")
        if isinstance(self.min_on_requests, bool) or not isinstance(self.min_on_requests, int) \
                or self.min_on_requests < 1:
            raise RampError("min_on_requests", self.min_on_requests, f"min_on_requests: {self.min_on_requests!r} "
                            "must be a whole number of requests, at least 1 (without on-variant traffic nothing "
                            "is shown); use e.g. 1000")
        if self.max_step_s is not None:
            if not _number(self.max_step_s) or math.isnan(self.max_step_s) or self.max_step_s <= 0:
                raise RampError("max_step_s", self.max_step_s, f"max_step_s: {self.max_step_s!r} is not a positive "
                                "number of seconds; use e.g. 3600, or null for no limit")
            if self.max_step_s < self.min_step_s:
                raise RampError("max_step_s", self.max_step_s, f"max_step_s: {self.max_step_s:g} is below "
                                f"min_step_s ({self.min_step_s:g}), so no step could ever advance; use a value "
                                f"above it, e.g. {max(6 * self.min_step_s, 3600):g}, or null for no limit")
        object.__setattr__(self, "steps", tuple(float(s) for s in steps))

    def percentage(self, state: RolloutState) -> float:
        """Return the flag's percentage in this state (0 once turned off)."""
        if state.status is RolloutStatus.TURNED_OFF:
            return 0.0
        return self.steps[min(state.step, len(self.steps) - 1)]


@dataclass(frozen=True)
class RolloutState:
    """A guarded rollout between two decisions: which step, since when, and its status."""

    step: int
    step_started_at: float
    status: RolloutStatus = RolloutStatus.RAMPING
    reason: str = ""

    @property
    def terminal(self) -> bool:
        """True once completed or turned off: no decision changes it again."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class Decision:
    """What to do now: the action, the flag's percentage to set, the state after it, and why."""

    action: Action
    percentage: float
    state: RolloutState
    reason: str


def start(ramp: Ramp, now: float) -> Decision:
    """Begin a rollout at the first step; the caller sets the flag to the decision's percentage."""
    _check_now(now)
    state = RolloutState(0, now)
    return Decision(Action.ADVANCE, ramp.steps[0], state, f"started at step 1 of {len(ramp.steps)}: "
                    f"{ramp.steps[0]:g}%")


def resume(ramp: Ramp, state: RolloutState, now: float) -> RolloutState:
    """A human resumes a paused rollout: the same step again, its clock restarted (the watch starts afresh)."""
    _check_now(now)
    if state.status is not RolloutStatus.PAUSED:
        return state
    return RolloutState(state.step, now, RolloutStatus.RAMPING, f"resumed at {ramp.steps[state.step]:g}%")


def _check_now(now: float) -> None:
    """Refuse a time that is not a finite number of seconds."""
    if not _number(now) or not math.isfinite(now):
        raise ValueError(f"now: {now!r} is not a finite time in seconds; pass the clock's reading, e.g. time.time()")


def decide(ramp: Ramp, state: RolloutState, verdict_result: Result, on_requests: int, now: float) -> Decision:
    """Turn the step's latest verdict and on-variant request count into one decision.

    ``verdict_result`` is canary.flag_judge's: FAIL (regression proven), PASS (none shown on
    enough data), CONTINUE or INCONCLUSIVE (not enough, or untrustworthy, data: never advance).
    """
    _check_now(now)
    result = Result(verdict_result)
    if not _number(on_requests) or on_requests < 0 or math.isnan(on_requests):
        raise ValueError(f"on_requests: {on_requests!r} is not a count of requests; pass the on-variant "
                         "requests measured at this step, e.g. 0")
    if not 0 <= state.step < len(ramp.steps):
        raise ValueError(f"state.step: {state.step!r} is not a step of this ramp (0..{len(ramp.steps) - 1})")
    if not state.terminal and state.step == len(ramp.steps) - 1:
        raise ValueError(f"state.step: {state.step} is the last step (100%), which only a completed rollout "
                         f"reaches; a ramping rollout is at 0..{len(ramp.steps) - 2}")
    pct = ramp.percentage(state)
    if state.terminal:
        return Decision(Action.HOLD, pct, state, f"rollout is {state.status.value}: {state.reason}")
    if result is Result.FAIL:
        reason = f"turned off at {pct:g}%: regression on the on-variant"
        off = replace(state, status=RolloutStatus.TURNED_OFF, reason=reason)
        return Decision(Action.TURN_OFF, 0.0, off, reason)
    if state.status is RolloutStatus.PAUSED:
        return Decision(Action.HOLD, pct, state, f"paused at {pct:g}% for a human: {state.reason}")
    elapsed = now - state.step_started_at
    missing = []
    if result is not Result.PASS:
        missing.append(f"verdict {result.value}, not pass")
    if elapsed < ramp.min_step_s:
        missing.append(f"{max(elapsed, 0.0):.0f} s at {pct:g}% < {ramp.min_step_s:g} s")
    if on_requests < ramp.min_on_requests:
        missing.append(f"{on_requests:.0f} on-variant requests < {ramp.min_on_requests}")
    if not missing:
        nxt = state.step + 1
        if nxt == len(ramp.steps) - 1:
            reason = (f"completed: no regression at {pct:g}% ({on_requests:.0f} on-variant requests in "
                      f"{elapsed:.0f} s); now on for everyone")
            done = RolloutState(nxt, now, RolloutStatus.COMPLETED, reason)
            return Decision(Action.COMPLETE, ramp.steps[nxt], done, reason)
        reason = (f"advanced {pct:g}% -> {ramp.steps[nxt]:g}%: no regression shown on {on_requests:.0f} "
                  f"on-variant requests in {elapsed:.0f} s")
        return Decision(Action.ADVANCE, ramp.steps[nxt], RolloutState(nxt, now, RolloutStatus.RAMPING, reason), reason)
    if ramp.max_step_s is not None and elapsed >= ramp.max_step_s:
        reason = f"paused at {pct:g}% after {elapsed:.0f} s >= max_step_s {ramp.max_step_s:g}: " + "; ".join(missing)
        return Decision(Action.PAUSE, pct, replace(state, status=RolloutStatus.PAUSED, reason=reason), reason)
    return Decision(Action.HOLD, pct, state, f"holding at {pct:g}%: " + "; ".join(missing))

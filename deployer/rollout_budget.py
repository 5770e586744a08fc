"""Capacity-budgeted waves, pure: how many hosts a wave may replace at once.

Kubernetes' rolling-update vocabulary: `max_unavailable` hosts may be out of service at
once and `max_surge` extra instances may run beside the fleet (a backend that starts the
new version next to the old one uses surge instead of taking capacity away). Both are a
count or a share of the fleet; like Kubernetes, a share of unavailability rounds down and a
share of surge rounds up, and they cannot both be zero. `min_healthy` is a floor of
serving hosts that no batch may cross, whatever the budget says.

`next_batch()` is called again and again while a wave converges: it looks at each host of
the fleet and says which hosts of the wave to start replacing now. A host that failed its
replacement stops the wave at once: nothing more starts, whatever the parallelism.
No I/O, no clock: the controller passes in what it observed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum


class HostPhase(str, Enum):
    """Where one host stands in the current wave, as the controller last saw it."""

    SERVING = "serving"          # healthy and in rotation, not yet on the wave's version
    DONE = "done"                # on the wave's version, healthy and in rotation
    SURGING = "surging"          # new instance starting beside the old one, which still serves
    REPLACING = "replacing"      # out of rotation while its new version starts
    UNHEALTHY = "unhealthy"      # out of rotation for another reason (crashed, failing checks)
    FAILED = "failed"            # its replacement failed: the wave must stop


AVAILABLE = frozenset({HostPhase.SERVING, HostPhase.DONE, HostPhase.SURGING})


@dataclass(frozen=True)
class Budget:
    """A resolved budget: whole numbers of hosts."""

    max_unavailable: int
    max_surge: int
    min_healthy: int

    def __post_init__(self) -> None:
        if self.max_unavailable < 0 or self.max_surge < 0 or self.min_healthy < 0:
            raise ValueError("a budget cannot be negative")
        if self.max_unavailable == 0 and self.max_surge == 0:
            raise ValueError("max_unavailable and max_surge cannot both be 0: no host could ever be replaced")


def resolve_count(value: int | float | str, fleet_size: int, *, round_up: bool, field: str) -> int:
    """'25%' -> a share of the fleet (rounded as Kubernetes does), 3 -> 3."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: {value!r} is not a count or a share; use e.g. 2 or \"10%\"")
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                raise ValueError(f"{field}: \"{value}\" is not a share; use e.g. \"10%\"") from None
            if not 0 <= percent <= 100:
                raise ValueError(f"{field}: \"{value}\" is not between 0% and 100%; use e.g. \"10%\"")
            exact = fleet_size * percent / 100.0
            # Guard against 0.1 * 30 = 3.0000000000000004 rounding up to 4.
            return math.ceil(exact - 1e-9) if round_up else math.floor(exact + 1e-9)
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{field}: \"{value}\" is not a count or a share; use e.g. 2 or \"10%\"") from None
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{field}: {value!r} is not a whole number of hosts; use e.g. 2 or \"10%\"")
    if value < 0:
        raise ValueError(f"{field}: {value!r} is negative; use e.g. 2 or \"10%\"")
    return int(value)


def resolve_budget(fleet_size: int, *, max_unavailable: int | str, max_surge: int | str,
                   min_healthy: int | str = 0) -> Budget:
    """Turn configured counts or shares into a Budget for a fleet of `fleet_size` hosts."""
    if fleet_size < 1:
        raise ValueError("a fleet needs at least one host")
    unavailable = resolve_count(max_unavailable, fleet_size, round_up=False, field="max_unavailable")
    surge = resolve_count(max_surge, fleet_size, round_up=True, field="max_surge")
    floor = resolve_count(min_healthy, fleet_size, round_up=True, field="min_healthy")
    if unavailable == 0 and surge == 0:
        # A share that rounds down to nothing on a small fleet still lets one host through,
        # as long as the floor allows it: a rollout that can never start is worse.
        unavailable = 1
    budget = Budget(max_unavailable=min(unavailable, fleet_size), max_surge=surge, min_healthy=min(floor, fleet_size))
    if budget.max_surge == 0 and budget.min_healthy >= fleet_size:
        raise ValueError(f"min_healthy: {min_healthy!r} keeps all {fleet_size} hosts serving and max_surge is 0, "
                         "so no host could ever be replaced; lower min_healthy or allow a surge")
    return budget


@dataclass(frozen=True)
class BatchDecision:
    """What to do now.

    `surge`: start the new version beside the old one (capacity kept, uses surge);
    `replace`: take the host out of rotation and replace it (uses the unavailability budget);
    `stopped`: the wave must stop (a host failed); `complete`: every wave host is done.
    """

    surge: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    complete: bool = False
    stopped: str | None = None
    waiting: str | None = None

    @property
    def start(self) -> tuple[str, ...]:
        return self.surge + self.replace


def next_batch(*, wave: Sequence[str], phases: Mapping[str, HostPhase], budget: Budget,
               surge_capable: bool) -> BatchDecision:
    """The hosts of `wave` to start replacing now, within the budget.

    `wave` lists the hosts that must end on the new version, in rollout order; `phases`
    holds every host of the fleet (hosts outside the wave count towards capacity too).
    Hosts that are already out of service are replaced first and cost nothing more.
    """
    failed = [h for h in wave if phases.get(h) is HostPhase.FAILED]
    if failed:
        return BatchDecision(stopped=f"host {failed[0]} failed its replacement; the wave stops")
    in_progress = sum(1 for p in phases.values() if p in (HostPhase.SURGING, HostPhase.REPLACING))
    todo = [h for h in wave if phases.get(h, HostPhase.SERVING) in (HostPhase.SERVING, HostPhase.UNHEALTHY)]
    if not todo:
        waiting_in_wave = [h for h in wave if phases.get(h) is not HostPhase.DONE]
        if waiting_in_wave:
            return BatchDecision(waiting=f"{len(waiting_in_wave)} replacement(s) in progress")
        return BatchDecision(complete=True)
    available = sum(1 for p in phases.values() if p in AVAILABLE)
    unavailable = len(phases) - available
    surging = sum(1 for p in phases.values() if p is HostPhase.SURGING)
    free_surge = max(0, (budget.max_surge if surge_capable else 0) - surging)
    # A backend that cannot run two instances of a host turns a surge-only budget into one
    # host at a time: the most careful rollout it can do, rather than none.
    max_unavailable = budget.max_unavailable if surge_capable or budget.max_unavailable else 1
    free_unavailable = max(0, min(max_unavailable - unavailable, available - budget.min_healthy))
    down = [h for h in todo if phases.get(h) is HostPhase.UNHEALTHY]
    serving = [h for h in todo if phases.get(h, HostPhase.SERVING) is HostPhase.SERVING]
    surge = serving[:free_surge]
    replace = serving[free_surge:free_surge + free_unavailable]
    if not (down or surge or replace):
        return BatchDecision(waiting=f"budget in use: {in_progress} replacing, {unavailable} of {len(phases)} "
                                     f"unavailable (max {budget.max_unavailable}), floor {budget.min_healthy}")
    return BatchDecision(surge=tuple(surge), replace=tuple(down + replace))

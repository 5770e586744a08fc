"""One tick's worth of a wave: ask the budget planner which hosts to start, and start them.

Glue between the pure planner (`deployer.rollout_budget`) and the reconciler's book and
pool; it never waits. The controller calls `step()` every tick while a wave deploys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deployer.reconcile import Reconciler
from deployer.rollout_budget import Budget, next_batch


@dataclass
class WaveStep:
    """What one step did: the wave is complete, or stopped (a host failed), or hosts were started."""

    complete: bool = False
    stopped: str | None = None
    started: list[str] = field(default_factory=list)
    waiting: str | None = None


def paired_budget(budget: Budget, *, baseline: int) -> Budget:
    """An analysed wave restarts its baseline together with as many new hosts, whatever the budget.

    Kayenta's fairness rule: canary and baseline restart at the same moment. The floor of
    healthy hosts still holds (next_batch applies it), so a tiny fleet may still go one by one.
    """
    return Budget(max_unavailable=max(budget.max_unavailable, 2 * baseline), max_surge=budget.max_surge,
                  min_healthy=budget.min_healthy)


def step(hosts: Reconciler, *, wave: list[str], budget: Budget) -> WaveStep:
    """Start what the budget allows of `wave` (hosts that must end on their desired version)."""
    failed = [name for name in wave if name in hosts.failed]
    if failed:
        return WaveStep(stopped="; ".join(f"{name}: {hosts.failed[name]}" for name in failed))
    members = set(wave)
    phases = {name: hosts.phase(name, members) for name in hosts.hosts}
    decision = next_batch(wave=wave, phases=phases, budget=budget, surge_capable=hosts.overlap)
    if decision.stopped is not None:
        return WaveStep(stopped=decision.stopped)
    if decision.complete:
        return WaveStep(complete=True)
    if not decision.start:
        return WaveStep(waiting=decision.waiting)
    return WaveStep(started=hosts.start(decision.start), waiting=decision.waiting)

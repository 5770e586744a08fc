"""Wire the simulated runtime, router and health wait into the same RoutedFleet a real backend uses."""

from __future__ import annotations

from deployer.fleet.base import Artifact
from deployer.fleet.replace import RoutedFleet
from deployer.fleet.sim.clock import RealClock, SimTime
from deployer.fleet.sim.runtime import SimHealth, SimRouter, SimRuntime, StartTimes


class SimFleet(RoutedFleet):
    """A RoutedFleet over simulated hosts; `runtime` is the SimRuntime (faults are injected there)."""

    runtime: SimRuntime
    router: SimRouter


class SimBuilder:
    """Artifacts of a simulated fleet: nothing to build, a name per commit."""

    def build(self, sha: str) -> Artifact:
        return Artifact(sha, f"sim:{sha}")

    def prune(self, keep: list[str] | set[str]) -> list[str]:
        return []


def build_sim_fleet(*, hosts: int, clock: SimTime | None = None, start_median_s: float = 1.7,
                    start_p95_s: float = 3.0, failure_rate: float = 0.0, seed: int = 1, drain_s: float = 0.2,
                    healthy_checks: int = 3, health_interval_s: float = 0.2, start_timeout_s: float = 30.0,
                    overlap: bool = False) -> SimFleet:
    """A simulated fleet of `hosts` hosts on `clock` (real time when None)."""
    clock = clock if clock is not None else RealClock()
    runtime = SimRuntime(host_count=hosts, clock=clock, start_times=StartTimes(start_median_s, start_p95_s),
                         failure_rate=failure_rate, seed=seed, overlap=overlap)
    health = SimHealth(runtime, checks=healthy_checks, interval_s=health_interval_s, start_timeout_s=start_timeout_s)
    router = SimRouter(runtime.hosts(), clock=clock, drain_s=drain_s)
    return SimFleet(runtime=runtime, router=router, health=health)  # type: ignore[arg-type]

"""Simulated hosts (a HostRuntime), their traffic (a Router) and their health wait, in memory.

Each start takes a time drawn from a log-normal distribution given by its median and 95th
percentile (measured on the local fleet: bench/rollout.py), and fails with a configurable
probability (or always, for versions or hosts a test marks bad). Draws are seeded per host
and attempt, so a run does not depend on which worker thread got there first.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from deployer.exceptions import HostFailed
from deployer.fleet.base import Artifact, Host, HostStatus, HostTraffic, Instance
from deployer.fleet.sim.clock import SimTime

Z95 = 1.6448536269514722  # the 95th percentile of the standard normal


@dataclass(frozen=True)
class StartTimes:
    """How long a simulated start takes: log-normal with this median and 95th percentile (seconds)."""

    median_s: float = 1.7
    p95_s: float = 3.0

    def draw(self, rng: random.Random) -> float:
        if self.p95_s <= self.median_s:
            return self.median_s
        sigma = (math.log(self.p95_s) - math.log(self.median_s)) / Z95
        return rng.lognormvariate(math.log(self.median_s), sigma)


@dataclass
class _Slot:
    version: str | None = None
    running: bool = False
    healthy: bool = False
    settled: bool = True
    starts: int = 0
    serving: str | None = None  # target of the serving instance


@dataclass(frozen=True)
class _Plan:
    ready_in_s: float
    failure: str | None


@dataclass
class SimRuntime:
    """Host slots in memory: `host-0` .. `host-{n-1}` at `sim://host-i`."""

    host_count: int
    clock: SimTime
    start_times: StartTimes = field(default_factory=StartTimes)
    failure_rate: float = 0.0
    seed: int = 1
    overlap: bool = False
    stop_s: float = 0.0
    # Versions that never come up (with the reason), and (host, version) pairs that fail: for tests.
    bad_versions: dict[str, str] = field(default_factory=dict)
    bad_starts: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._hosts = [Host(f"host-{i}", f"sim://host-{i}") for i in range(self.host_count)]
        self._slots = {h.name: _Slot() for h in self._hosts}
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()
        self.started = 0  # starts so far, for benchmarks
        # Called with (host name, version) when a start begins: tests and benchmarks watch rollbacks with it.
        self.on_start: Callable[[str, str], None] | None = None

    # --- HostRuntime ----------------------------------------------------------------------

    def hosts(self) -> list[Host]:
        return list(self._hosts)

    def settled(self, host: Host) -> bool:
        return self._slots[host.name].settled

    def check(self, host: Host, artifact: Artifact) -> None:
        if not artifact.location.startswith("sim:"):
            raise HostFailed(host.name, artifact.version, f"{artifact.location!r} is not a simulated artifact")

    def start(self, host: Host, artifact: Artifact) -> Instance:
        with self._lock:
            slot = self._slots[host.name]
            slot.starts += 1
            slot.settled = False
            self.started += 1
            rng = random.Random(f"{self.seed}:{host.name}:{slot.starts}")
            target = f"{host.name}#{slot.starts}"
        failure = self.bad_versions.get(artifact.version)
        if failure is None and (host.name, artifact.version) in self.bad_starts:
            failure = "simulated start failure of this host"
        if failure is None and rng.random() < self.failure_rate:
            failure = "simulated start failure (fleet.failure_rate)"
        self._plans[target] = _Plan(self.start_times.draw(rng), failure)
        if self.on_start is not None:
            self.on_start(host.name, artifact.version)
        if not self.overlap:
            slot.running, slot.healthy = False, False
        return Instance(host, artifact.version, host.address, target)

    def plan(self, instance: Instance) -> tuple[float, str | None]:
        """(seconds until it answers, why it will fail or None), as drawn at its start."""
        plan = self._plans[instance.target]
        return plan.ready_in_s, plan.failure

    def exited(self, instance: Instance) -> str | None:
        plan = self._plans.get(instance.target)
        return plan.failure if plan is not None else "never started"

    def start_failed(self, instance: Instance, reason: str, may_retry: bool) -> str | None:
        self._plans.pop(instance.target, None)
        return reason

    def promote(self, instance: Instance) -> None:
        with self._lock:
            slot = self._slots[instance.host.name]
            slot.version, slot.running, slot.healthy, slot.settled = instance.version, True, True, True
            slot.serving = instance.target
        self._plans.pop(instance.target, None)

    def stop(self, host: Host, *, instance: Instance | None = None, status: str = "stopped") -> None:
        if self.stop_s:
            self.clock.sleep(self.stop_s)
        slot = self._slots[host.name]
        if instance is None or instance.target == slot.serving:
            slot.running = slot.healthy = False
            slot.serving = None

    def probe(self, host: Host) -> HostStatus:
        slot = self._slots[host.name]
        return HostStatus(host, slot.running, slot.healthy, slot.version if slot.running else None,
                          "" if slot.healthy else "not running", slot.serving)

    def stop_all(self) -> None:
        for host in self._hosts:
            self.stop(host)

    def unknown(self) -> list[str]:
        return []

    def close(self) -> None:
        """Nothing to release."""

    # --- simulated faults -------------------------------------------------------------------

    def crash(self, name: str) -> None:
        """The host's process dies (it stays down until replaced)."""
        slot = self._slots[name]
        slot.running = slot.healthy = False

    def version_of(self, name: str) -> str | None:
        slot = self._slots[name]
        return slot.version if slot.running else None


class SimHealth:
    """The health wait of a simulated start: it answers after its drawn start time, then passes `checks`."""

    def __init__(self, runtime: SimRuntime, *, checks: int, interval_s: float, start_timeout_s: float) -> None:
        self.runtime = runtime
        self.checks = checks
        self.interval_s = interval_s
        self.start_timeout_s = start_timeout_s

    def wait_healthy(self, instance: Instance, exited: Callable[[Instance], str | None]) -> float:
        clock = self.runtime.clock
        ready_in, failure = self.runtime.plan(instance)
        if failure is not None:
            # A crash on start shows after about the time a start takes, as on a real host.
            clock.sleep(min(ready_in, self.start_timeout_s))
            raise HostFailed(instance.host.name, instance.version, failure)
        if ready_in > self.start_timeout_s:
            clock.sleep(self.start_timeout_s)
            raise HostFailed(instance.host.name, instance.version,
                             f"not healthy after {self.start_timeout_s:g}s: no answer yet")
        clock.sleep(ready_in)
        first_ok = clock.now()
        clock.sleep(self.interval_s * max(0, self.checks - 1))
        return first_ok

    def close(self) -> None:
        """Nothing to release."""


class SimRouter:
    """Rotation and weights in memory; draining takes `drain_s` of the clock."""

    def __init__(self, hosts: list[Host], *, clock: SimTime, drain_s: float = 0.0) -> None:
        self.clock = clock
        self.drain_s = drain_s
        self._rotation = {h.name: True for h in hosts}
        self._weights: dict[str, int] = {}

    @property
    def url(self) -> str | None:
        return None

    def start(self) -> str | None:
        return None

    def drain(self, host: Host, notes: list[str]) -> None:
        self._rotation[host.name] = False
        if self.drain_s:
            self.clock.sleep(self.drain_s)

    def enable(self, host: Host, address: str, notes: list[str]) -> None:
        self._rotation[host.name] = True

    def set_weight(self, host: Host, weight: int) -> None:
        self._weights[host.name] = weight

    def traffic(self) -> dict[str, HostTraffic]:
        return {name: HostTraffic(0, 0, on, self._weights.get(name)) for name, on in self._rotation.items()}

    def in_rotation(self) -> int:
        """Hosts taking traffic now."""
        return sum(self._rotation.values())

    def stop(self) -> None:
        """Nothing was started."""

    def close(self) -> None:
        """Nothing to release."""

"""The backend-neutral host replacement: the order of steps for each kind of runtime, with fakes."""

from __future__ import annotations

import pytest

from deployer.exceptions import HostFailed
from deployer.fleet.base import Artifact, Host, HostRuntime, HostStatus, HostTraffic, Instance, Router
from deployer.fleet.health import HealthPolicy, HttpHealth
from deployer.fleet.replace import RoutedFleet

A, B = Artifact("a" * 40, "img:a"), Artifact("b" * 40, "img:b")


class FakeHealth(HttpHealth):
    """Answers as the fake runtime's instances would."""

    def __init__(self, runtime: FakeRuntime) -> None:
        super().__init__(HealthPolicy(checks=2, interval_s=0.0, start_timeout_s=1.0))
        self.runtime = runtime

    def ask(self, address: str) -> tuple[bool, str | None, str]:
        version = self.runtime.serving_at.get(address)
        return (version is not None and version not in self.runtime.broken), version, ""


class FakeRuntime:
    """Records every call; each instance answers at its own address."""

    def __init__(self, *, overlap: bool) -> None:
        self.overlap = overlap
        self.calls: list[str] = []
        self.serving: dict[str, Instance] = {}
        self.serving_at: dict[str, str] = {}
        self.broken: set[str] = set()
        self.port_races = 0
        self._next = 0

    def hosts(self) -> list[Host]:
        return [Host("host-0", "http://h0:1"), Host("host-1", "http://h1:1")]

    def settled(self, host: Host) -> bool:
        return host.name in self.serving

    def check(self, host: Host, artifact: Artifact) -> None:
        self.calls.append(f"check {host.name}")

    def start(self, host: Host, artifact: Artifact) -> Instance:
        self._next += 1
        address = f"http://{host.name}:{self._next}" if self.overlap else host.address
        self.serving_at[address] = artifact.version
        self.calls.append(f"start {host.name} {artifact.version[0]}")
        return Instance(host, artifact.version, address, f"id{self._next}")

    def exited(self, instance: Instance) -> str | None:
        return None

    def start_failed(self, instance: Instance, reason: str, may_retry: bool) -> str | None:
        self.calls.append(f"failed {instance.host.name}")
        self.serving_at.pop(instance.address, None)
        if self.port_races and may_retry:
            self.port_races -= 1
            self.broken.clear()
            return None
        return f"{reason} (cleaned up)"

    def promote(self, instance: Instance) -> None:
        self.calls.append(f"promote {instance.host.name} {instance.version[0]}")
        self.serving[instance.host.name] = instance

    def stop(self, host: Host, *, instance: Instance | None = None, status: str = "stopped") -> None:
        old = instance or self.serving.pop(host.name, None)
        if old is not None:
            self.serving_at.pop(old.address, None)
        self.calls.append(f"stop {host.name}")

    def probe(self, host: Host) -> HostStatus:
        current = self.serving.get(host.name)
        if current is None:
            return HostStatus(host, running=False, healthy=False, version=None)
        return HostStatus(Host(host.name, current.address), running=True, healthy=True, version=current.version,
                          target=current.target)

    def stop_all(self) -> None:
        self.serving.clear()

    def unknown(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


class FakeRouter:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @property
    def url(self) -> str | None:
        return "http://router"

    def start(self) -> str | None:
        return self.url

    def drain(self, host: Host, notes: list[str]) -> None:
        self.calls.append(f"drain {host.name}")

    def enable(self, host: Host, address: str, notes: list[str]) -> None:
        self.calls.append(f"enable {host.name} {address}")

    def set_weight(self, host: Host, weight: int) -> None:
        pass

    def traffic(self) -> dict[str, HostTraffic]:
        return {}

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def make(overlap: bool) -> tuple[RoutedFleet, FakeRuntime]:
    runtime = FakeRuntime(overlap=overlap)
    assert isinstance(runtime, HostRuntime) and isinstance(FakeRouter([]), Router)
    return RoutedFleet(runtime=runtime, router=FakeRouter(runtime.calls), health=FakeHealth(runtime)), runtime


def test_one_slot_runtime_drains_stops_then_starts() -> None:
    fleet, runtime = make(overlap=False)
    host = fleet.hosts()[0]
    result = fleet.deploy(host, A)
    assert result.changed
    assert runtime.calls == ["check host-0", "drain host-0", "stop host-0", "start host-0 a", "promote host-0 a",
                             "enable host-0 http://h0:1"]


def test_two_slot_runtime_starts_new_before_stopping_old() -> None:
    fleet, runtime = make(overlap=True)
    host = fleet.hosts()[0]
    fleet.deploy(host, A)
    runtime.calls.clear()
    fleet.deploy(host, B)
    assert runtime.calls == ["check host-0", "start host-0 b", "drain host-0", "promote host-0 b",
                             "enable host-0 http://host-0:2", "stop host-0"]


def test_replay_is_a_noop_that_still_puts_the_host_back() -> None:
    fleet, runtime = make(overlap=True)
    host = fleet.hosts()[0]
    fleet.deploy(host, A)
    runtime.calls.clear()
    assert not fleet.deploy(host, A).changed
    assert runtime.calls == ["enable host-0 http://host-0:1"]  # at its current address
    assert fleet.restart(host, A).changed  # a baseline restart always restarts


def test_a_start_that_fails_is_cleaned_up_and_reported_or_retried() -> None:
    fleet, runtime = make(overlap=False)
    host = fleet.hosts()[0]
    runtime.broken.add(B.version)
    with pytest.raises(HostFailed, match="cleaned up"):
        fleet.deploy(host, B)
    assert "enable host-0 http://h0:1" not in runtime.calls
    runtime.calls.clear()
    runtime.port_races = 1
    runtime.broken.add(A.version)
    assert fleet.deploy(host, A).changed  # the runtime asked for a second attempt, which worked
    assert runtime.calls.count("start host-0 a") == 2


def test_unknown_host_is_refused() -> None:
    fleet, _ = make(overlap=False)
    with pytest.raises(Exception, match="host-9"):
        fleet.deploy(Host("host-9", "http://x:1"), A)

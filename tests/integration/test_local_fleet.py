"""RoutedFleet against real sample-app processes in temporary release directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployer.exceptions import HostFailed
from deployer.fleet.local import procs
from deployer.fleet.base import Artifact, Fleet
from deployer.fleet.replace import RoutedFleet

from tests.fleet_support import REPO, free_port_block, local_fleet, make_release, processes_under

pytestmark = pytest.mark.integration

SHA_A = "a" * 40
SHA_B = "b" * 40


class Fleets:
    """Builds fleets sharing one state_dir and ports; stops everything at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config: dict[str, Any] = {
            "state_dir": root / "state",
            "host_count": 3,
            "base_port": free_port_block(3),
            "balancer_port": free_port_block(1),
            "app_env": {"SAMPLE_APP_DATABASE_URL": f"sqlite:///{root / 'app.db'}"},
            "health_interval_s": 0.1,
            "healthy_checks": 3,
            "start_timeout_s": 30.0,
            "drain_timeout_s": 5.0,
            "stop_timeout_s": 5.0,
        }
        self.made: list[RoutedFleet] = []

    def new(self, **overrides: Any) -> RoutedFleet:
        fleet = local_fleet(**{**self.config, **overrides})
        self.made.append(fleet)
        return fleet

    def cleanup(self) -> list[int]:
        """Stop everything; return pids that were still alive afterwards (then killed)."""
        for fleet in self.made or [self.new()]:
            fleet.stop_all()
            fleet.close()
        deadline = time.monotonic() + 5
        while (left := processes_under(self.root)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:  # last resort, so one failure does not leak into the next tests
            os.kill(pid, signal.SIGKILL)
        return left


@pytest.fixture
def fleets(tmp_path: Path) -> Iterator[Fleets]:
    made = Fleets(tmp_path)
    failed = True
    try:
        yield made
        failed = False
    finally:
        left = made.cleanup()
        if not failed:
            assert left == [], f"processes left behind: {left}"


@pytest.fixture
def release_a(tmp_path: Path) -> Artifact:
    return make_release(tmp_path, SHA_A)


@pytest.fixture
def release_b(tmp_path: Path) -> Artifact:
    return make_release(tmp_path, SHA_B)


def deploy_all(fleet: RoutedFleet, artifact: Artifact) -> None:
    with ThreadPoolExecutor(max_workers=len(fleet.hosts())) as pool:
        list(pool.map(lambda host: fleet.deploy(host, artifact), fleet.hosts()))


def versions(fleet: RoutedFleet) -> list[str | None]:
    return [fleet.probe(host).version for host in fleet.hosts()]


def test_deploy_one_host_then_replay_is_a_noop(
    fleets: Fleets, release_a: Artifact, release_b: Artifact
) -> None:
    fleet = fleets.new()
    assert isinstance(fleet, Fleet)
    assert [h.address for h in fleet.hosts()] == [
        f"http://127.0.0.1:{fleets.config['base_port'] + i}" for i in range(3)
    ]
    fleet.start_router()
    deploy_all(fleet, release_a)
    statuses = [fleet.probe(host) for host in fleet.hosts()]
    assert all(s.running and s.healthy and s.version == SHA_A for s in statuses)

    host = fleet.hosts()[0]
    result = fleet.deploy(host, release_b)
    assert result.changed and result.version == SHA_B and result.notes == []
    assert result.start_s > 0 and result.health_s > 0 and result.total_s < 20
    assert versions(fleet) == [SHA_B, SHA_A, SHA_A]
    assert fleet.router is not None
    assert all(h["in_rotation"] for h in fleet.router.client.hosts().values())

    began = time.monotonic()
    again = fleet.deploy(host, release_b)
    assert not again.changed and again.total_s == 0
    assert time.monotonic() - began < 0.5


def test_restart_replaces_the_process_on_the_same_version(fleets: Fleets, release_a: Artifact) -> None:
    fleet = fleets.new(balancer_port=None)
    host = fleet.hosts()[1]
    fleet.deploy(host, release_a)
    before = httpx.get(host.address + "/version").json()["pid"]
    result = fleet.restart(host, release_a)
    after = httpx.get(host.address + "/version").json()["pid"]
    assert result.changed and before != after
    assert fleet.probe(host).version == SHA_A


def test_crashing_release_fails_the_host_which_can_go_back(
    fleets: Fleets, tmp_path: Path, release_a: Artifact
) -> None:
    bad = make_release(tmp_path, "c" * 40, prelude='raise SystemExit("boom")')
    fleet = fleets.new()
    fleet.start_router()
    host = fleet.hosts()[2]
    fleet.deploy(host, release_a)
    with pytest.raises(HostFailed) as failure:
        fleet.deploy(host, bad)
    assert failure.value.host == host.name and failure.value.version == "c" * 40
    assert "boom" in failure.value.reason and "exited with status 1" in failure.value.reason
    status = fleet.probe(host)
    assert not status.running and not status.healthy
    assert fleet.router is not None
    assert fleet.router.client.hosts()[host.name]["in_rotation"] is False

    assert fleet.deploy(host, release_a).changed
    assert fleet.probe(host).version == SHA_A
    assert fleet.router.client.hosts()[host.name]["in_rotation"] is True


def test_release_that_never_gets_healthy_times_out_and_is_stopped(fleets: Fleets, tmp_path: Path) -> None:
    hang = make_release(tmp_path, "d" * 40, prelude="import time; time.sleep(3600)")
    fleet = fleets.new(start_timeout_s=1.0, balancer_port=None)
    host = fleet.hosts()[0]
    began = time.monotonic()
    with pytest.raises(HostFailed, match="not healthy after 1s"):
        fleet.deploy(host, hang)
    assert time.monotonic() - began < 5
    state = json.loads((tmp_path / "state" / "hosts" / host.name / "state.json").read_text())
    assert state["pid"] is None and state["status"] == "failed"
    assert not fleet.probe(host).running


CONTROLLER = """
import json, os, signal, sys
from pathlib import Path
from deployer.fleet.base import Artifact
from tests.fleet_support import local_fleet
config = json.loads(sys.argv[1])
config["state_dir"] = Path(config["state_dir"])
artifact = Artifact(*config.pop("artifact"))
fleet = local_fleet(**config)
fleet.start_router()
for host in fleet.hosts():
    fleet.deploy(host, artifact)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_new_controller_adopts_the_fleet_after_sigkill(
    fleets: Fleets, release_a: Artifact, release_b: Artifact
) -> None:
    config = {**fleets.config, "state_dir": str(fleets.config["state_dir"]), "host_count": 2}
    config["artifact"] = [release_a.version, release_a.location]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", CONTROLLER, json.dumps(config)], env=env, timeout=120, check=False
    )
    assert done.returncode == -signal.SIGKILL

    fleet = fleets.new(host_count=2)
    statuses = [fleet.probe(host) for host in fleet.hosts()]
    assert all(s.running and s.healthy and s.version == SHA_A for s in statuses), statuses
    assert fleet.traffic_url is not None
    assert httpx.get(fleet.traffic_url + "/version").json()["version"] == SHA_A
    assert fleet.start_router() == fleet.traffic_url  # adopts, does not start a second one

    assert not fleet.deploy(fleet.hosts()[0], release_a).changed
    assert fleet.deploy(fleet.hosts()[1], release_b).changed  # stops a process it did not start
    assert versions(fleet) == [SHA_A, SHA_B]


def test_new_instance_reports_versions_from_the_hosts(
    fleets: Fleets, release_a: Artifact, release_b: Artifact
) -> None:
    first = fleets.new(balancer_port=None)
    deploy_all(first, release_a)
    first.deploy(first.hosts()[0], release_b)
    # The state file says what was started; the probe must say what the host itself says.
    state_file = fleets.config["state_dir"] / "hosts" / "host-0" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "version": "stale"}))
    second = fleets.new(balancer_port=None)
    assert versions(second) == [SHA_B, SHA_A, SHA_A]


def test_orphan_holding_the_port_is_replaced(
    fleets: Fleets, release_a: Artifact, release_b: Artifact
) -> None:
    fleet = fleets.new(balancer_port=None)
    host = fleet.hosts()[0]
    fleet.deploy(host, release_a)
    orphan = httpx.get(host.address + "/version").json()["pid"]
    # As if the controller died between starting the process and recording it.
    (fleets.config["state_dir"] / "hosts" / host.name / "state.json").unlink()
    assert fleet.deploy(host, release_b).changed
    assert fleet.probe(host).version == SHA_B
    assert procs.start_time_of(orphan) is None


def test_stop_all_leaves_no_process(fleets: Fleets, release_a: Artifact) -> None:
    fleet = fleets.new()
    fleet.start_router()
    deploy_all(fleet, release_a)
    pids = [httpx.get(h.address + "/version").json()["pid"] for h in fleet.hosts()]
    balancer_pid = json.loads((fleets.config["state_dir"] / "balancer.json").read_text())["pid"]
    fleet.stop(fleet.hosts()[0])
    assert not fleet.probe(fleet.hosts()[0]).running
    fleet.stop_all()
    for pid in [*pids, balancer_pid]:
        assert procs.start_time_of(pid) is None, f"pid {pid} still alive"
    assert all(procs.port_is_free("127.0.0.1", fleets.config["base_port"] + i) for i in range(3))
    assert processes_under(fleets.root) == []

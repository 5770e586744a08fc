"""Hosts forked from a release's fork server: right version, own session and environment, failures reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from deployer.exceptions import HostFailed
from deployer.fleet.base import Artifact
from deployer.fleet.local import procs
from deployer.fleet.local.forkservers import SCRIPT
from deployer.fleet.local.runtime import LocalRuntime
from deployer.fleet.replace import RoutedFleet

from tests.fleet_support import REPO, free_port_block, local_fleet, make_release, processes_under

pytestmark = pytest.mark.integration

SHA_A = "a" * 40
SHA_B = "b" * 40


def fork_servers_under(root: Path) -> list[int]:
    """Live fork servers (not the hosts forked from them) working in a release under root."""
    return [pid for pid in processes_under(root)
            if procs.cmdline_of(pid)[1:2] == [str(SCRIPT)] and not procs.listening_ports(pid)]


def state(root: Path, name: str) -> dict[str, object]:
    return json.loads((root / "state" / "hosts" / name / "state.json").read_text())


@pytest.fixture
def config(tmp_path: Path) -> dict[str, object]:
    return {"state_dir": tmp_path / "state", "host_count": 2, "base_port": free_port_block(2),
            "app_env": {"SAMPLE_APP_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "APP_REGION": "loopback-1"},
            "health_interval_s": 0.1, "stop_timeout_s": 5.0, "start_timeout_s": 30.0}


@pytest.fixture
def fleet(tmp_path: Path, config: dict[str, object]) -> Iterator[RoutedFleet]:
    made = local_fleet(**config)  # type: ignore[arg-type]
    try:
        yield made
    finally:
        made.stop_all()
        made.close()
        deadline = time.monotonic() + 5
        while processes_under(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = processes_under(tmp_path)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert left == [], f"processes left behind: {left}"


def runtime_of(fleet: RoutedFleet) -> LocalRuntime:
    assert isinstance(fleet.runtime, LocalRuntime)
    return fleet.runtime


def test_forked_hosts_serve_their_release_in_their_own_session_and_environment(
    fleet: RoutedFleet, tmp_path: Path
) -> None:
    release_a, release_b = make_release(tmp_path, SHA_A), make_release(tmp_path, SHA_B)
    first, second = fleet.hosts()
    fleet.deploy(first, release_a)
    fleet.deploy(second, release_b)
    servers = {s.release.name: s.pid for s in runtime_of(fleet).fork_servers._servers.values()}  # type: ignore[union-attr]
    assert set(servers) == {SHA_A, SHA_B}
    for host, sha in ((first, SHA_A), (second, SHA_B)):
        answer = httpx.get(host.address + "/version").json()
        pid = answer["pid"]
        assert answer["version"] == sha
        assert state(tmp_path, host.name)["forked_from"] == servers[sha]
        process = psutil.Process(pid)
        assert process.ppid() == servers[sha]  # forked, not spawned
        assert os.getsid(pid) == pid and procs.leads_group(pid)  # stopped as a group, outlives the server
        assert process.environ()["APP_REGION"] == "loopback-1"
        assert Path(process.cwd()) == Path(tmp_path / "releases" / sha)
    log = (tmp_path / "state" / "hosts" / first.name / "log").read_text()
    assert "Uvicorn running on" in log  # the host's own output goes to its log

    # A restart on the same release forks again from the same, already warm, server.
    before = httpx.get(first.address + "/version").json()["pid"]
    result = fleet.restart(first, release_a)
    after = httpx.get(first.address + "/version").json()["pid"]
    assert result.changed and after != before and psutil.Process(after).ppid() == servers[SHA_A]
    gone = time.monotonic() + 10  # the old process finishes its exit in the background
    while procs.start_time_of(before) is not None and time.monotonic() < gone:
        time.sleep(0.05)
    assert procs.start_time_of(before) is None


def test_host_outlives_a_killed_fork_server_which_is_started_again(fleet: RoutedFleet, tmp_path: Path) -> None:
    release = make_release(tmp_path, SHA_A)
    first, second = fleet.hosts()
    fleet.deploy(first, release)
    [server] = fork_servers_under(tmp_path)
    os.kill(server, signal.SIGKILL)
    time.sleep(0.3)
    status = fleet.probe(first)
    assert status.running and status.healthy and status.version == SHA_A

    fleet.deploy(second, release)  # a fresh fork server for the release
    [again] = fork_servers_under(tmp_path)
    assert again != server
    assert state(tmp_path, second.name)["forked_from"] == again
    # The host forked by the dead server is still stopped cleanly (it is a host like any other).
    fleet.stop(first)
    assert not fleet.probe(first).running


def test_crash_of_a_forked_app_is_reported_with_its_status_and_log(fleet: RoutedFleet, tmp_path: Path) -> None:
    crash = make_release(tmp_path, "c" * 40, prelude='import os\nif "FEED_RANKER_URL" not in os.environ:\n'
                                                     '    raise SystemExit("FEED_RANKER_URL is not set")')
    host = fleet.hosts()[0]
    with pytest.raises(HostFailed) as failure:
        fleet.deploy(host, crash)
    reason = failure.value.reason
    # Its exit status, when its fork server could still report it (a busy machine can lose that race).
    assert "exited with status 1 while starting" in reason or "exited (its fork server is gone" in reason, reason
    assert "FEED_RANKER_URL is not set" in reason
    assert state(tmp_path, host.name)["forked_from"] is not None  # the fork server itself was fine
    assert state(tmp_path, host.name)["status"] == "failed"
    assert not fleet.probe(host).running


def test_release_whose_modules_do_not_import_starts_plainly_and_fails_as_before(
    fleet: RoutedFleet, tmp_path: Path
) -> None:
    broken = make_release(tmp_path, "e" * 40)
    app = Path(broken.location) / "sample_app" / "app.py"
    app.write_text(app.read_text() + "\nraise ImportError('feed ranker client missing')\n")
    host = fleet.hosts()[0]
    with pytest.raises(HostFailed) as failure:
        fleet.deploy(host, broken)
    assert "feed ranker client missing" in failure.value.reason
    assert state(tmp_path, host.name)["forked_from"] is None  # started the plain way
    assert fork_servers_under(tmp_path) == []  # the fork server that could not load it is gone
    good = make_release(tmp_path, SHA_A)
    assert fleet.deploy(host, good).changed and fleet.probe(host).version == SHA_A


def test_plain_start_when_fork_servers_are_off(tmp_path: Path, config: dict[str, object]) -> None:
    fleet = local_fleet(**{**config, "fork_server": False})  # type: ignore[arg-type]
    try:
        host = fleet.hosts()[0]
        fleet.deploy(host, make_release(tmp_path, SHA_A))
        pid = httpx.get(host.address + "/version").json()["pid"]
        assert procs.cmdline_of(pid)[1:3] == ["-m", "sample_app"]
        assert state(tmp_path, host.name)["forked_from"] is None
        assert fork_servers_under(tmp_path) == []
    finally:
        fleet.stop_all()
        fleet.close()
    assert processes_under(tmp_path) == []


OWNER = """
import json, os, signal, sys
from pathlib import Path
from deployer.fleet.base import Artifact
from tests.fleet_support import local_fleet
config = json.loads(sys.argv[1])
config["state_dir"] = Path(config["state_dir"])
artifact = Artifact(*config.pop("artifact"))
fleet = local_fleet(**config)
for host in fleet.hosts():
    fleet.deploy(host, artifact)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_fork_server_exits_with_a_killed_controller_and_its_hosts_are_adopted(
    fleet: RoutedFleet, tmp_path: Path, config: dict[str, object]
) -> None:
    release = make_release(tmp_path, SHA_A)
    owner = {**config, "state_dir": str(config["state_dir"]), "artifact": [release.version, release.location]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", OWNER, json.dumps(owner)], env=env, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while fork_servers_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fork_servers_under(tmp_path) == []  # its stdin closed with its owner: nothing left behind

    statuses = [fleet.probe(host) for host in fleet.hosts()]
    assert all(s.running and s.healthy and s.version == SHA_A for s in statuses), statuses
    assert not fleet.deploy(fleet.hosts()[0], release).changed
    other: Artifact = make_release(tmp_path, SHA_B)
    assert fleet.deploy(fleet.hosts()[1], other).changed  # stops a host forked by a server now gone
    assert [fleet.probe(h).version for h in fleet.hosts()] == [SHA_A, SHA_B]

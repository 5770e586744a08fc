"""The HAProxy router against a real HAProxy 2.6 in front of real sample-app processes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from deployer.fleet.base import Artifact, Router
from deployer.fleet.haproxy import HaproxyError, HaproxyRouter
from deployer.fleet.health import HealthPolicy, HttpHealth
from deployer.fleet.local.runtime import LocalRuntime
from deployer.fleet.replace import RoutedFleet
from deployer.loadgen.traffic import TrafficGenerator
from tests.fleet_support import free_port_block, make_release, processes_under
from tests.haproxy_support import Haproxy, running_haproxy

pytestmark = pytest.mark.integration

SHA_A = "a" * 40
SHA_B = "b" * 40
HOSTS = 3


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[RoutedFleet, Haproxy, dict[str, Artifact]]]:
    base = free_port_block(HOSTS)
    health = HttpHealth(HealthPolicy(checks=3, interval_s=0.1, start_timeout_s=30.0))
    runtime = LocalRuntime(state_dir=tmp_path / "state", host_count=HOSTS, base_port=base, health=health,
                           app_env={"SAMPLE_APP_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"},
                           stop_timeout_s=5.0)
    # The servers start out pointing nowhere useful: enable() must re-address them.
    servers = {f"web-{i}": f"127.0.0.1:{free_port_block(1)}" for i in range(HOSTS)}
    releases = {SHA_A: make_release(tmp_path, SHA_A), SHA_B: make_release(tmp_path, SHA_B)}
    with running_haproxy(tmp_path / "haproxy", servers) as haproxy:
        router = HaproxyRouter(socket_path=haproxy.socket, backend=haproxy.backend, server_name="web-{index}",
                               hosts=runtime.hosts(), traffic_url=haproxy.url, drain_timeout_s=5.0)
        fleet = RoutedFleet(runtime=runtime, router=router, health=health)
        try:
            assert fleet.start_router() == haproxy.url
            with ThreadPoolExecutor(max_workers=HOSTS) as pool:
                list(pool.map(lambda h: fleet.deploy(h, releases[SHA_A]), fleet.hosts()))
            yield fleet, haproxy, releases
        finally:
            fleet.stop_all()
            fleet.close()
    deadline = time.monotonic() + 5
    while (left := processes_under(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes left behind: {left}"


def test_rollout_behind_haproxy_under_traffic_fails_no_request(
    site: tuple[RoutedFleet, Haproxy, dict[str, Artifact]],
) -> None:
    fleet, haproxy, releases = site
    assert isinstance(fleet.router, Router)
    assert {t.in_rotation for t in fleet.router.traffic().values()} == {True}
    traffic = TrafficGenerator(haproxy.url, rate=40, seed=5)
    traffic.start()
    try:
        time.sleep(1.0)  # users are browsing before the first host goes
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda h: fleet.deploy(h, releases[SHA_B]), fleet.hosts()))
        time.sleep(1.0)
    finally:
        stats = traffic.stop()
    assert all(r.changed and not r.notes for r in results), [r.notes for r in results]
    assert stats.sent > 50 and stats.failed == 0, stats.failures[:5]
    counts = fleet.router.traffic()
    assert all(c.served > 0 and c.in_rotation for c in counts.values()), counts
    answers = {httpx.get(haproxy.url + "/version").json()["version"] for _ in range(6)}
    assert answers == {SHA_B}


def test_drain_takes_a_host_out_and_weights_set_its_share(
    site: tuple[RoutedFleet, Haproxy, dict[str, Artifact]],
) -> None:
    fleet, haproxy, _ = site
    router = fleet.router
    assert isinstance(router, HaproxyRouter)
    first, second, third = fleet.hosts()
    notes: list[str] = []
    router.drain(first, notes)
    assert notes == [] and not router.traffic()[first.name].in_rotation
    pids = {httpx.get(haproxy.url + "/version").json()["pid"] for _ in range(12)}
    assert httpx.get(first.address + "/version").json()["pid"] not in pids
    router.enable(first, first.address, notes)
    assert router.traffic()[first.name].in_rotation
    # A weight of 0 takes no new requests; the others share them.
    router.set_weight(third, 0)
    assert router.traffic()[third.name].weight == 0
    before = router.traffic()[third.name].served
    for _ in range(12):
        httpx.get(haproxy.url + "/healthz")
    assert router.traffic()[third.name].served == before
    router.set_weight(third, 100)
    with pytest.raises(HaproxyError, match="out of range"):
        router.set_weight(second, 300)


def test_missing_socket_is_named(tmp_path: Path) -> None:
    host_list = LocalRuntime(state_dir=tmp_path, host_count=2, base_port=free_port_block(2),
                             health=HttpHealth(HealthPolicy())).hosts()
    missing = tmp_path / "run" / "haproxy-admin.sock"
    router = HaproxyRouter(socket_path=missing, backend="app", server_name="host-{index}", hosts=host_list)
    with pytest.raises(HaproxyError) as info:
        router.start()
    assert str(missing) in str(info.value) and "router.socket" in str(info.value)


def test_wrong_backend_or_server_names_are_named(tmp_path: Path) -> None:
    runtime = LocalRuntime(state_dir=tmp_path / "state", host_count=2, base_port=free_port_block(2),
                           health=HttpHealth(HealthPolicy()))
    with running_haproxy(tmp_path / "haproxy", {"web-0": "127.0.0.1:1", "web-1": "127.0.0.1:2"}) as haproxy:
        wrong_backend = HaproxyRouter(socket_path=haproxy.socket, backend="api", server_name="web-{index}",
                                      hosts=runtime.hosts())
        with pytest.raises(HaproxyError, match="no backend 'api'"):
            wrong_backend.start()
        wrong_servers = HaproxyRouter(socket_path=haproxy.socket, backend="app", server_name="host-{index}",
                                      hosts=runtime.hosts())
        with pytest.raises(HaproxyError, match="has no server host-0, host-1"):
            wrong_servers.start()

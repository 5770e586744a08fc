"""The balancer process in front of real sample-app hosts, driven through RoutedFleet."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployer.fleet.local import procs
from deployer.fleet.local.balancer_client import BalancerClient, BalancerError
from deployer.fleet.base import Artifact
from deployer.fleet.replace import RoutedFleet

from tests.fleet_support import free_port_block, local_fleet, make_release, processes_under

pytestmark = pytest.mark.integration

SHA_A = "a" * 40
SHA_B = "b" * 40


@dataclass
class Site:
    """A running fleet behind its balancer."""

    fleet: RoutedFleet
    url: str
    admin: BalancerClient
    db: Path
    releases: dict[str, Artifact] = field(default_factory=dict)

    def kill9(self, host_name: str) -> None:
        """SIGKILL a host's whole process group, as a crash would."""
        state = procs.read_json(self.fleet.runtime.state_dir / "hosts" / host_name / "state.json")
        os.killpg(state["pid"], signal.SIGKILL)
        ref = procs.ref_from_json(state)
        assert ref is not None and procs.wait_gone(ref, 5)


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    fleets: list[RoutedFleet] = []
    admins: list[BalancerClient] = []

    def make(host_count: int = 3, **overrides: Any) -> Site:
        config: dict[str, Any] = {
            "state_dir": tmp_path / "state",
            "host_count": host_count,
            "base_port": free_port_block(host_count),
            "balancer_port": free_port_block(1),
            "app_env": {"SAMPLE_APP_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"},
            "health_interval_s": 0.1,
            "drain_timeout_s": 10.0,
            "stop_timeout_s": 5.0,
            "balancer_health_interval_s": 0.25,
            **overrides,
        }
        fleet = local_fleet(**config)
        fleets.append(fleet)
        url = fleet.start_router()
        admins.append(BalancerClient(url))
        site = Site(fleet, url, admins[-1], tmp_path / "app.db")
        site.releases = {SHA_A: make_release(tmp_path, SHA_A), SHA_B: make_release(tmp_path, SHA_B)}
        with ThreadPoolExecutor(max_workers=host_count) as pool:
            list(pool.map(lambda h: fleet.deploy(h, site.releases[SHA_A]), fleet.hosts()))
        return site

    try:
        yield make
    finally:
        for fleet in fleets:
            fleet.stop_all()
            fleet.close()
        for admin in admins:
            admin.close()
        deadline = time.monotonic() + 5
        while (left := processes_under(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert left == [], f"processes left behind: {left}"


@dataclass
class Outcome:
    """One request of the load generator."""

    method: str
    status: int | None
    upstream: str | None = None
    balancer_error: str | None = None
    version: str | None = None
    transport_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500 or self.balancer_error is not None


def generate_load(url: str, stop: threading.Event, outcomes: list[Outcome], worker: int) -> None:
    """Loop over a mix of reads and writes until stop is set."""
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        i = 0
        while not stop.is_set():
            i += 1
            method = "POST" if i % 3 == 0 else "GET"
            try:
                if i % 3 == 0:
                    resp = client.post("/api/users", json={"username": f"w{worker}_{i}"})
                elif i % 3 == 1:
                    resp = client.get("/version")
                else:
                    resp = client.get("/api/feed", params={"user": "alice"})
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(method, None, transport_error=f"{type(exc).__name__}: {exc}"))
                continue
            version = resp.json().get("version") if i % 3 == 1 and resp.status_code == 200 else None
            outcomes.append(
                Outcome(
                    method,
                    resp.status_code,
                    resp.headers.get("x-upstream"),
                    resp.headers.get("x-balancer-error"),
                    version,
                )
            )


def test_rolling_redeploys_under_load_lose_no_request(site_factory: Callable[..., Site]) -> None:
    site = site_factory()
    fleet = site.fleet
    stop = threading.Event()
    outcomes: list[Outcome] = []
    workers = [threading.Thread(target=generate_load, args=(site.url, stop, outcomes, n)) for n in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        for host in fleet.hosts():  # one after another, as a rollout would
            assert fleet.deploy(host, site.releases[SHA_B]).changed
        # A fresh baseline and canary restarted at the same moment, then the rest.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda h: fleet.restart(h, site.releases[SHA_A]), fleet.hosts()[:2]))
        fleet.restart(fleet.hosts()[2], site.releases[SHA_A])
        time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    failures = [o for o in outcomes if o.failed]
    assert failures == [], f"{len(failures)} of {len(outcomes)} failed, e.g. {failures[:5]}"
    assert len(outcomes) > 100
    assert {o.version for o in outcomes if o.version} == {SHA_A, SHA_B}
    assert Counter(o.status for o in outcomes if o.method == "POST") == {
        201: sum(o.method == "POST" for o in outcomes)
    }
    assert {o.upstream for o in outcomes} == {h.name for h in fleet.hosts()}
    assert [fleet.probe(h).version for h in fleet.hosts()] == [SHA_A] * 3


def test_equal_shares_and_upstream_header(site_factory: Callable[..., Site]) -> None:
    site = site_factory()
    with httpx.Client(base_url=site.url, trust_env=False) as client:
        answers = [client.get("/version") for _ in range(30)]
    assert all(r.status_code == 200 and "x-balancer-error" not in r.headers for r in answers)
    assert Counter(r.headers["x-upstream"] for r in answers) == {"host-0": 10, "host-1": 10, "host-2": 10}
    served = {name: h["served"] for name, h in site.admin.hosts().items()}
    assert all(count >= 10 for count in served.values())


def test_drain_waits_for_a_slow_request(site_factory: Callable[..., Site]) -> None:
    site = site_factory(host_count=2)
    with httpx.Client(base_url=site.url, trust_env=False) as client:
        client.get("/api/feed", params={"user": "alice"}).raise_for_status()  # schema exists
        # Holding SQLite's write lock makes the app's next write wait: a slow request.
        lock = sqlite3.connect(site.db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                slow = pool.submit(client.post, "/api/users", json={"username": "slowpoke"})
                deadline = time.monotonic() + 10
                while not (busy := [n for n, h in site.admin.hosts().items() if h["in_flight"]]):
                    assert time.monotonic() < deadline and not slow.done()
                    time.sleep(0.01)
                name = busy[0]
                short = site.admin.drain(name, 0.2)
                assert short["drained"] is False and short["in_flight"] == 1
                drain = pool.submit(site.admin.drain, name, 10)
                time.sleep(0.5)
                assert not drain.done()
                # New requests avoid the draining host meanwhile.
                others = {client.get("/version").headers["x-upstream"] for _ in range(4)}
                assert name not in others
                lock.execute("COMMIT")
                result = drain.result(timeout=15)
                assert result["drained"] is True and result["in_flight"] == 0 and result["waited_s"] >= 0.4
                assert slow.result(timeout=15).status_code == 201
        finally:
            lock.close()
    assert site.admin.enable(name)["in_rotation"] is True


def test_connect_failure_is_retried_on_another_host(site_factory: Callable[..., Site]) -> None:
    # Checks so rare that only the failed connection itself can reveal the dead host.
    site = site_factory(balancer_health_interval_s=60.0)
    site.kill9("host-1")
    with httpx.Client(base_url=site.url, trust_env=False) as client:
        answers = [client.get("/version") for _ in range(6)]
        answers += [client.post("/api/users", json={"username": f"retry_{i}"}) for i in range(6)]
    assert [r.status_code for r in answers] == [200] * 6 + [201] * 6
    assert "host-1" not in {r.headers["x-upstream"] for r in answers}
    host1 = site.admin.hosts()["host-1"]
    assert host1["errors"] == 1 and host1["healthy"] is False and host1["in_rotation"] is False
    # The fleet brings it back; the balancer lets it in once its check passes.
    assert site.fleet.deploy(site.fleet.hosts()[1], site.releases[SHA_A]).changed
    assert site.admin.hosts()["host-1"]["in_rotation"] is True


def test_all_hosts_down_gives_503_from_the_balancer(site_factory: Callable[..., Site]) -> None:
    site = site_factory(host_count=2, balancer_health_interval_s=60.0)
    site.kill9("host-0")
    site.kill9("host-1")
    with httpx.Client(base_url=site.url, trust_env=False) as client:
        first = client.get("/version")
        assert first.status_code == 503 and "host-0" in first.headers["x-balancer-error"]
        for host in site.fleet.hosts():
            site.fleet.stop(host)
        second = client.post("/api/users", json={"username": "nobody"})
    assert second.status_code == 503 and second.headers["x-balancer-error"] == "no host in rotation"


def test_admin_api_errors_and_reconfiguration(site_factory: Callable[..., Site]) -> None:
    site = site_factory(host_count=2)
    calls: list[Callable[[], object]] = [
        lambda: site.admin.drain("nope", 1),
        lambda: site.admin.enable("nope"),
        lambda: site.admin.host("nope"),
    ]
    for call in calls:
        with pytest.raises(BalancerError) as error:
            call()
        assert error.value.status == 404 and "nope" in str(error.value)
    with httpx.Client(base_url=site.url, trust_env=False) as client:
        resp = client.post("/_balancer/hosts/nope/drain")
        assert resp.status_code == 404 and "unknown host 'nope'" in resp.headers["x-balancer-error"]
        assert client.get("/_balancer/typo").status_code == 404
        # A host whose address answers nothing never gets traffic.
        site.admin.set_address("host-x", f"http://127.0.0.1:{free_port_block(1)}")
        assert site.admin.hosts()["host-x"]["in_rotation"] is False
        assert "host-x" not in {client.get("/version").headers["x-upstream"] for _ in range(6)}
        # Re-pointing it at a live host brings it into rotation without restarting anything.
        site.admin.set_address("host-x", site.fleet.hosts()[0].address)
        assert site.admin.hosts()["host-x"]["in_rotation"] is True
        assert "host-x" in {client.get("/version").headers["x-upstream"] for _ in range(6)}
        site.admin.remove("host-x")
        assert "host-x" not in site.admin.hosts()

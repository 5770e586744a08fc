"""A whole-fleet probe that began before a host's replacement never overwrites what the replacement saw."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer import store
from deployer.fleet.base import Artifact, Host, HostStatus
from deployer.reconcile import Reconciler

OLD, NEW = "a" * 40, "b" * 40
HOSTS = [Host("host-0", "http://127.0.0.1:1"), Host("host-1", "http://127.0.0.1:2")]


class _Result:
    changed = True
    total_s = drain_s = stop_s = start_s = health_s = 0.0


class _Fleet:
    """In-memory hosts: `deploy` switches a host's version at once."""

    def __init__(self) -> None:
        self.versions = {h.name: OLD for h in HOSTS}
        self.lock = threading.Lock()

    def hosts(self) -> list[Host]:
        return list(HOSTS)

    def probe(self, host: Host) -> HostStatus:
        with self.lock:
            return HostStatus(host, running=True, healthy=True, version=self.versions[host.name])

    def deploy(self, host: Host, artifact: Artifact) -> _Result:
        with self.lock:
            self.versions[host.name] = artifact.version
        return _Result()

    restart = deploy


@pytest.fixture
def reconciler(tmp_path: Path) -> Iterator[tuple[Reconciler, _Fleet]]:
    engine = store.open_database(f"sqlite:///{tmp_path / 'deployer.db'}")
    fleet = _Fleet()
    reconciler = Reconciler(engine=engine, fleet=fleet, workers=2)  # type: ignore[arg-type]
    with store.session_scope(engine) as session:
        for row in store.host_states_named(session, names=[h.name for h in HOSTS]).values():
            row.desired_version = row.observed_version = OLD
            row.desired_artifact, row.healthy = "releases/a", True
            session.add(row)
    reconciler.load()
    yield reconciler, fleet
    reconciler.close()
    engine.dispose()


def _replace(reconciler: Reconciler, name: str, version: str) -> None:
    with store.session_scope(reconciler.engine) as session:
        row = store.host_state(session, name=name)
        row.desired_version, row.desired_artifact = version, f"releases/{version[0]}"
        session.add(row)
    reconciler.load()
    assert reconciler.start([name]) == [name]
    while reconciler.pool.in_flight():
        reconciler.pool.wait_any(0.05)
        reconciler.poll()


def _observed(reconciler: Reconciler) -> dict[str, str | None]:
    with store.session_scope(reconciler.engine) as session:
        return {r.name: r.observed_version for r in store.host_states(session)}


def test_a_probe_taken_before_a_replacement_is_not_recorded_for_that_host(
        reconciler: tuple[Reconciler, _Fleet]) -> None:
    hosts, fleet = reconciler
    mark = hosts.moves()
    stale = {h.name: fleet.probe(h) for h in HOSTS}      # probes in flight, on OLD
    _replace(hosts, "host-0", NEW)                        # meanwhile the canary moves to NEW
    assert _observed(hosts)["host-0"] == NEW
    assert hosts.record_probes(stale, since=mark) == 0
    assert _observed(hosts)["host-0"] == NEW and hosts.book["host-0"].converged
    assert not hosts.pending()


def test_a_fresh_probe_still_records_a_host_that_drifted(reconciler: tuple[Reconciler, _Fleet]) -> None:
    hosts, fleet = reconciler
    _replace(hosts, "host-0", NEW)
    mark = hosts.moves()
    fleet.versions["host-1"] = NEW  # someone else changed it behind the platform's back
    assert hosts.record_probes({h.name: fleet.probe(h) for h in HOSTS}, since=mark) == 1
    assert _observed(hosts) == {"host-0": NEW, "host-1": NEW}
    assert hosts.pending() == ["host-1"]  # it wants OLD: the reconciler puts it back
    assert hosts.observe_all() == 0

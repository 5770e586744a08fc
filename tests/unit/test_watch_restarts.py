"""The post-deploy watch tells the platform's own restarts from crashes, however short the deployment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from canary.scrape import HostReading
from deployer import store
from deployer.fleet.base import Host
from deployer.model import Deployment, Release
from deployer.pipeline import Status
from deployer.settings import Settings, load_settings
from deployer.watch import PostDeployWatch

HOSTS = [Host("host-0", "http://127.0.0.1:1"), Host("host-1", "http://127.0.0.1:2")]


class _Probe:
    running = True


class _Fleet:
    """Just what the watch asks of a fleet: its hosts, and whether one runs."""

    def hosts(self) -> list[Host]:
        return list(HOSTS)

    def probe(self, host: Host) -> _Probe:
        return _Probe()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "config.yaml").write_text("source: {repository: central.git}\nworkdir: work\n")
    return load_settings(tmp_path / "config.yaml", environ={})


@pytest.fixture
def watch(settings: Settings, tmp_path: Path) -> Iterator[tuple[PostDeployWatch, _Clock, dict[str, float]]]:
    engine = store.open_database(f"sqlite:///{tmp_path / 'deployer.db'}")
    with store.session_scope(engine) as session:
        release = Release(sha="b" * 40, previous_sha="a" * 40, commit_shas=["b" * 40], status=Status.SUCCEEDED,
                          artifact="releases/b")
        session.add(release)
        session.flush()
        session.add(Deployment(release_id=release.id, version=release.sha, status=Status.SUCCEEDED))
    clock = _Clock()
    starts = {h.name: 100.0 for h in HOSTS}
    watch = PostDeployWatch(settings=settings, engine=engine, fleet=_Fleet(), clock=clock)  # type: ignore[arg-type]
    watch._scrape = lambda host: HostReading(start_time=starts[host.name])  # type: ignore[method-assign]
    yield watch, clock, starts
    watch.close()
    engine.dispose()


def _look(watch: PostDeployWatch, clock: _Clock) -> None:
    clock.now += watch.settings.post_deploy.interval
    watch.tick()


def _crashes(watch: PostDeployWatch) -> list[str]:
    return [c.host for c in watch._live.crashes] if watch._live is not None else []


def test_a_restart_nobody_asked_for_is_a_crash(watch: tuple[PostDeployWatch, _Clock, dict[str, float]]) -> None:
    watch_, clock, starts = watch
    _look(watch_, clock)
    starts["host-0"] = 200.0
    _look(watch_, clock)
    assert _crashes(watch_) == ["host-0"]


def test_restarts_by_a_deployment_begun_and_ended_between_two_looks_are_not_crashes(
        watch: tuple[PostDeployWatch, _Clock, dict[str, float]]) -> None:
    watch_, clock, starts = watch
    _look(watch_, clock)
    # A canary that crashed on start: created, hosts restarted, rolled back, all within one interval.
    with store.session_scope(watch_.engine) as session:
        release = Release(sha="c" * 40, previous_sha="b" * 40, status=Status.ROLLED_BACK)
        session.add(release)
        session.flush()
        session.add(Deployment(release_id=release.id, version=release.sha, status=Status.ROLLED_BACK))
    starts.update({"host-0": 300.0, "host-1": 300.0})
    for _ in range(3):
        _look(watch_, clock)
    assert _crashes(watch_) == []
    # The watch goes on afterwards: a later restart of its own is still a crash.
    starts["host-1"] = 400.0
    _look(watch_, clock)
    assert _crashes(watch_) == ["host-1"]

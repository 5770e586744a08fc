"""The real controller and a real SQLite database over a SIMULATED fleet on a simulated clock.

For tests of wave planning at size (1,000 hosts in a second or two). A release is put in
flight at the canary, already built, and `recover()` resumes it exactly as a restarted
controller would, so no git repository, test run or build is involved: those are tested
with real components elsewhere. The source is the only stand-in (nothing new to discover).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from deployer import store
from deployer.controller import Controller
from deployer.fleet.base import Artifact
from deployer.fleet.sim import SimBuilder, SimClock, SimFleet, build_sim_fleet
from deployer.fleet.sim.drive import SimDriver
from deployer.fleet.sim.metrics import SimMetrics, sim_window_factory
from deployer.model import Commit, CommitStatus, Deployment, HostRole, HostState, Release, ReleaseKind
from deployer.pipeline import Phase, Status, plan_waves, rollout_order
from deployer.queue import InProcessQueue
from deployer.service import DeployService
from deployer.settings import Settings, load_settings

OLD, NEW = "a" * 40, "b" * 40


class QuietSource:
    """A source with nothing new: the release under test is already in the database."""

    def fetch(self) -> str:
        return NEW

    def new_commits(self, known: set[str]) -> list[Any]:
        return []


@dataclass
class Start:
    at: float
    host: str
    version: str


@dataclass
class SimWorld:
    settings: Settings
    engine: Engine
    clock: SimClock
    fleet: SimFleet
    controller: Controller
    driver: SimDriver
    starts: list[Start] = field(default_factory=list)

    @property
    def service(self) -> DeployService:
        return DeployService(self.engine)

    def deployment(self) -> Deployment:
        with store.session_scope(self.engine) as session:
            return store.get_deployment(session, deployment_id=1)

    def versions(self) -> dict[str, str | None]:
        return {h.name: self.fleet.runtime.version_of(h.name) for h in self.fleet.hosts()}

    def close(self) -> None:
        self.clock.release()  # host work asleep on the clock finishes, so its threads can stop
        self.controller.close()
        self.controller.queue.close()
        self.engine.dispose()


def make_world(tmp_path: Path, *, hosts: int, settings: dict[str, Any] | None = None, drain_s: float = 0.2,
               start_median_s: float = 2.0, start_p95_s: float = 3.0) -> SimWorld:
    """A fleet of `hosts` on OLD and a release of NEW in flight at the canary (not started yet)."""
    config = {"source.repository": str(tmp_path / "repo"), "workdir": str(tmp_path / "work"),
              "fleet.backend": "sim", "fleet.hosts": hosts, "rollout.canary_bake": "0s",
              "rollout.wave_bake": "0s", "rollout.warmup": "0s", "controller.tick": "250ms",
              "controller.host_workers": 200, **(settings or {})}
    settings_ = load_settings(environ={}, overrides=config)
    engine = store.open_database(f"sqlite:///{tmp_path / 'deployer.db'}")
    clock = SimClock()
    fleet = build_sim_fleet(hosts=hosts, clock=clock, drain_s=drain_s, healthy_checks=1,
                            start_median_s=start_median_s, start_p95_s=start_p95_s)
    names = [h.name for h in fleet.hosts()]
    for host in fleet.hosts():
        fleet.runtime.promote(fleet.runtime.start(host, Artifact(OLD, f"sim:{OLD}")))
    _seed_database(engine, settings_, names)
    assert settings_.canary_config is not None
    windows = sim_window_factory(config=settings_.canary_config, metrics=SimMetrics(fleet.runtime),
                                 interval_s=settings_.analysis.interval, warmup_s=settings_.rollout.warmup)
    controller = Controller(settings=settings_, engine=engine, source=QuietSource(),  # type: ignore[arg-type]
                            builder=SimBuilder(), fleet=fleet, queue=InProcessQueue(workers=1), windows=windows,
                            clock=clock)
    world = SimWorld(settings_, engine, clock, fleet, controller, SimDriver(controller, clock, 0.25))
    fleet.runtime.on_start = lambda host, version: world.starts.append(Start(clock.now(), host, version))
    return world


def _seed_database(engine: Engine, settings: Settings, names: list[str]) -> None:
    now = datetime.now(timezone.utc)
    canary, baseline, order = rollout_order(names, settings.rollout.canary_hosts)
    plan = plan_waves(len(names), settings.rollout.canary_hosts, settings.rollout.waves)
    with store.session_scope(engine) as session:
        session.add(Commit(sha=OLD, position=0, author="a", message="old", committed_at=now,
                           status=CommitStatus.SHIPPED))
        session.add(Commit(sha=NEW, position=1, author="a", message="new", committed_at=now))
        session.add(Release(sha=OLD, kind=ReleaseKind.BOOTSTRAP, commit_shas=[OLD], status=Status.SUCCEEDED,
                            artifact=f"sim:{OLD}", finished_at=now))
        session.flush()
        release = Release(sha=NEW, kind=ReleaseKind.DEPLOY, previous_sha=OLD, commit_shas=[NEW],
                          status=Status.CANARY, artifact=f"sim:{NEW}")
        session.add(release)
        session.flush()
        session.add(Deployment(release_id=release.id, status=Status.CANARY, phase=Phase.DEPLOYING,
                               version=NEW, artifact=f"sim:{NEW}", previous_version=OLD,
                               previous_artifact=f"sim:{OLD}", waves=len(plan), wave_plan=plan, host_order=order,
                               canary_hosts=canary, baseline_hosts=baseline))
        session.add_all([HostState(name=n, address=f"sim://{n}", desired_version=OLD, desired_artifact=f"sim:{OLD}",
                                   observed_version=OLD, healthy=True, role=HostRole.IDLE) for n in names])

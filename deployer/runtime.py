"""Build the controller's parts from Settings; called by the CLI entry points only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from deployer import store
from deployer.analysis import WindowFactory, window_factory
from deployer.controller import Controller
from deployer.fleet import RoutedFleet, SimFleet, build_builder, build_fleet
from deployer.fleet.sim.metrics import SimMetrics, sim_window_factory
from deployer.fleet.base import Builder
from deployer.queue import InProcessQueue, RqQueue, TaskQueue
from deployer.settings import Settings
from deployer.source import GitSource


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    source: GitSource
    builder: Builder
    fleet: RoutedFleet
    queue: TaskQueue

    def close(self) -> None:
        """Release connections and threads (hosts keep running)."""
        self.queue.close()
        self.fleet.close()
        self.engine.dispose()


def build_engine(settings: Settings) -> Engine:
    """The database engine, its schema migrated or checked as `database.migrate` says."""
    return store.open_database(settings.database_url, migrate=settings.database.migrate)


def build_source(settings: Settings) -> GitSource:
    """The controller's mirror of the central repository."""
    return GitSource(repository=settings.repository, branch=settings.source.branch,
                     mirror_dir=settings.workdir_path / "mirror.git")


def build_runtime(settings: Settings) -> Runtime:
    """Every adapter the controller needs."""
    source = build_source(settings)
    queue: TaskQueue
    if settings.queue.backend == "rq":
        queue = RqQueue(redis_url=settings.queue.redis_url, name=settings.queue.name,
                        job_timeout_s=settings.pipeline.test_timeout + 60, retries=settings.queue.retries)
    else:
        queue = InProcessQueue(workers=settings.queue.workers)
    return Runtime(settings=settings, engine=build_engine(settings), source=source,
                   builder=build_builder(settings, source),
                   fleet=build_fleet(settings), queue=queue)


def build_controller(runtime: Runtime) -> Controller:
    """A controller over the runtime's adapters, with the analysis the settings ask for."""
    settings = runtime.settings
    assert settings.canary_config is not None
    analysis = settings.analysis
    windows: WindowFactory
    if isinstance(runtime.fleet, SimFleet):
        # Simulated hosts have simulated metrics; the judge is the real one.
        windows = sim_window_factory(config=settings.canary_config, metrics=SimMetrics(runtime.fleet.runtime),
                                     interval_s=analysis.interval, warmup_s=settings.rollout.warmup)
    else:
        windows = window_factory(config=settings.canary_config, source=analysis.source,
                                 interval_s=analysis.interval, warmup_s=settings.rollout.warmup,
                                 scrape_timeout_s=analysis.scrape_timeout, prometheus_url=analysis.prometheus_url,
                                 wall_clock=time.time)
    Path(settings.workdir_path).mkdir(parents=True, exist_ok=True)
    return Controller(settings=settings, engine=runtime.engine, source=runtime.source, builder=runtime.builder,
                      fleet=runtime.fleet, queue=runtime.queue, windows=windows)

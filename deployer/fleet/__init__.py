"""Hosts and traffic: `build_fleet(settings)` wires a host runtime, a router and a builder.

The controller, the CLI, the rq worker and the benchmarks all go through here, so a new
backend is one new package plus one branch below.
"""

from __future__ import annotations

from pathlib import Path

from deployer.fleet.local.builder import ReleaseBuilder
from deployer.exceptions import ConfigError
from deployer.fleet.base import Builder, Host, HostRuntime, Router
from deployer.fleet.docker.builder import ImageBuilder
from deployer.fleet.docker.engines import Engines
from deployer.fleet.docker.runtime import DockerRuntime, Limits
from deployer.fleet.haproxy import HaproxyRouter
from deployer.fleet.health import HealthPolicy, HttpHealth
from deployer.fleet.local.router import BalancerProcess
from deployer.fleet.local.runtime import LocalRuntime
from deployer.fleet.replace import RoutedFleet
from deployer.pipeline import rollout_order
from deployer.fleet.sim import SimBuilder, SimFleet, build_sim_fleet
from deployer.settings import DockerFleetSettings, HaproxyRouterSettings, Settings, SimFleetSettings
from deployer.source import GitSource

__all__ = ["RoutedFleet", "SimFleet", "build_builder", "build_fleet"]


def health_policy(settings: Settings) -> HealthPolicy:
    """How a started host proves healthy, from the fleet settings."""
    fleet = settings.fleet
    return HealthPolicy(checks=fleet.healthy_checks, interval_s=fleet.health_interval,
                        start_timeout_s=fleet.start_timeout)


def build_router(settings: Settings, hosts: list[Host]) -> Router:
    """The router named in the settings, in front of `hosts`."""
    fleet, router = settings.fleet, settings.router
    if isinstance(router, HaproxyRouterSettings):
        # Canary and baseline slots come first (pipeline.rollout_order) and get the same share,
        # so the comparison stays fair.
        canary, baseline, _ = rollout_order([h.name for h in hosts], settings.rollout.canary_hosts)
        return HaproxyRouter(socket_path=settings.path(router.socket), backend=router.backend,
                             server_name=router.server_name, hosts=hosts, traffic_url=router.traffic_url,
                             weight=router.weight, weights={n: router.canary_weight for n in canary + baseline},
                             drain_timeout_s=fleet.drain_timeout, timeout_s=router.timeout)
    return BalancerProcess(state_dir=settings.workdir_path / "fleet", bind=fleet.bind, port=fleet.balancer_port,
                           hosts=hosts, health_path="/healthz", health_interval_s=0.5,
                           drain_timeout_s=fleet.drain_timeout,
                           # A machine too busy to start a host quickly is too busy to start the balancer.
                           start_timeout_s=max(15.0, fleet.start_timeout))


def build_engines(settings: Settings) -> Engines:
    """Clients for the Docker engines of a docker fleet (connected on first use)."""
    fleet = settings.fleet
    if not isinstance(fleet, DockerFleetSettings):
        raise ConfigError([f"fleet.backend: \"{fleet.backend}\" has no Docker engines; use backend: docker"])
    return Engines(fleet.engines, timeout_s=fleet.engine_timeout, bind=fleet.bind)


def build_fleet(settings: Settings) -> RoutedFleet:
    """The fleet backend and router named in the settings, wired together (nothing is started)."""
    fleet = settings.fleet
    if isinstance(fleet, SimFleetSettings):
        # A SIMULATOR in real time (benchmarks pass their own simulated clock to build_sim_fleet).
        return build_sim_fleet(hosts=fleet.hosts, start_median_s=fleet.start_median, start_p95_s=fleet.start_p95,
                               failure_rate=fleet.failure_rate, seed=fleet.seed, drain_s=fleet.drain,
                               healthy_checks=fleet.healthy_checks, health_interval_s=fleet.health_interval,
                               start_timeout_s=fleet.start_timeout)
    health = HttpHealth(health_policy(settings))
    app_env = {"SAMPLE_APP_DATABASE_URL": settings.app_database_url}
    runtime: HostRuntime
    if isinstance(fleet, DockerFleetSettings):
        runtime = DockerRuntime(engines=build_engines(settings), host_count=fleet.hosts, base_port=fleet.base_port,
                                health=health, platform=fleet.platform, limits=Limits(fleet.cpus, fleet.memory),
                                bind=fleet.bind, app_env=app_env, volumes=_shared_folders(settings),
                                stop_timeout_s=fleet.stop_timeout)
        return RoutedFleet(runtime=runtime, router=build_router(settings, runtime.hosts()), health=health)
    runtime = LocalRuntime(state_dir=settings.workdir_path / "fleet", host_count=fleet.hosts,
                           base_port=fleet.base_port, health=health, bind=fleet.bind,
                           app_env=app_env, stop_timeout_s=fleet.stop_timeout,
                           fork_server=fleet.fork_server)
    return RoutedFleet(runtime=runtime, router=build_router(settings, runtime.hosts()), health=health)


def build_builder(settings: Settings, source: GitSource) -> Builder:
    """The builder that makes artifacts this fleet's runtime can start: release folders, or images from them."""
    fleet = settings.fleet
    if isinstance(fleet, SimFleetSettings):
        return SimBuilder()
    releases = ReleaseBuilder(source=source, releases_dir=settings.workdir_path / "releases")
    if isinstance(fleet, DockerFleetSettings):
        return ImageBuilder(releases=releases, engines=build_engines(settings), repository=fleet.image_repository,
                            dockerfile=fleet.dockerfile, base_image=fleet.base_image, platform=fleet.platform)
    return releases


def _shared_folders(settings: Settings) -> list[Path]:
    """Folders the containers share with this machine: where the app's default SQLite file lives."""
    if settings.fleet.app_database_url is not None:
        return []
    folder = settings.workdir_path / "fleet"
    folder.mkdir(parents=True, exist_ok=True)
    return [folder]

"""Hosts and traffic: `build_fleet(settings)` wires a host runtime, a router and a builder.

The controller, the CLI, the rq worker and the benchmarks all go through here, so a new
backend is one new package plus one branch below.
"""

from __future__ import annotations

from deployer.fleet.local.builder import ReleaseBuilder
from deployer.fleet.base import Builder, Host, Router
from deployer.fleet.haproxy import HaproxyRouter
from deployer.fleet.health import HealthPolicy, HttpHealth
from deployer.fleet.local.router import BalancerProcess
from deployer.fleet.local.runtime import LocalRuntime
from deployer.fleet.replace import RoutedFleet
from deployer.pipeline import rollout_order
from deployer.settings import HaproxyRouterSettings, LocalFleetSettings, Settings
from deployer.source import GitSource

__all__ = ["RoutedFleet", "build_builder", "build_fleet"]


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
                           drain_timeout_s=fleet.drain_timeout)


def build_fleet(settings: Settings) -> RoutedFleet:
    """The fleet backend and router named in the settings, wired together (nothing is started)."""
    fleet = settings.fleet
    health = HttpHealth(health_policy(settings))
    assert isinstance(fleet, LocalFleetSettings)
    runtime = LocalRuntime(state_dir=settings.workdir_path / "fleet", host_count=fleet.hosts,
                           base_port=fleet.base_port, health=health, bind=fleet.bind,
                           app_env={"SAMPLE_APP_DATABASE_URL": settings.app_database_url},
                           stop_timeout_s=fleet.stop_timeout)
    return RoutedFleet(runtime=runtime, router=build_router(settings, runtime.hosts()), health=health)


def build_builder(settings: Settings, source: GitSource) -> Builder:
    """The builder that makes artifacts this fleet's runtime can start."""
    return ReleaseBuilder(source=source, releases_dir=settings.workdir_path / "releases")

"""The whole pipeline with containers on a real Docker engine behind a real HAProxy.

Canary, waves and a rollback happen under traffic; the controller is killed with SIGKILL
mid-wave and the restarted one rediscovers the containers from their labels and finishes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.demo.scenario import GOOD_IMAGE_CACHE
from tests.docker_support import BASE_IMAGE, docker_cli, ensure_engine
from tests.fleet_support import free_port_block
from tests.haproxy_support import running_haproxy
from tests.pipeline_world import FEED_ERRORS, PipelineWorld

# Image builds and container starts are slow on a busy 2-core machine; the whole scenario gets 25 minutes.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]
HOSTS = 4


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PipelineWorld]:
    url = ensure_engine()
    platform = f"deployer-test-{uuid.uuid4().hex[:8]}"
    servers = {f"web-{i}": f"127.0.0.1:{free_port_block(1)}" for i in range(HOSTS)}
    with running_haproxy(tmp_path / "haproxy", servers) as haproxy:
        world = PipelineWorld(tmp_path, hosts=HOSTS, overrides={
            "fleet.backend": "docker", "fleet.engines": [url], "fleet.base_image": BASE_IMAGE,
            "fleet.platform": platform, "fleet.image_repository": f"{platform}/app",
            "fleet.base_port": free_port_block(2 * HOSTS), "fleet.start_timeout": "180s",
            "router.kind": "haproxy", "router.socket": str(haproxy.socket), "router.server_name": "web-{index}",
            "router.traffic_url": haproxy.url})
        world.balancer_url = haproxy.url
        try:
            world.start_controller()
            world.wait_for_fleet(timeout=600)  # the first image build on a fresh engine installs the dependencies
            world.start_traffic(rate=30)
            yield world
        finally:
            world.close()
            # --no-prune: the dependency layer stays cached on the shared engine for the next run.
            for image in docker_cli("images", "-q", "--filter", f"label=io.deployer.platform={platform}").split():
                docker_cli("rmi", "-f", "--no-prune", image, check=False)


def containers(world: PipelineWorld) -> list[str]:
    platform = world.settings.fleet.platform  # type: ignore[union-attr]
    return sorted(docker_cli("ps", "-a", "--filter", f"label=io.deployer.platform={platform}",
                             "--format", "{{.Names}} {{.Label \"io.deployer.version\"}}").splitlines())


def test_canary_waves_kill9_and_rollback_as_containers_behind_haproxy(world: PipelineWorld) -> None:
    platform = world.settings.fleet.platform  # type: ignore[union-attr]
    good, = world.merge(GOOD_IMAGE_CACHE)
    world.wait_for_state(good, "rolling_out", "deploying", wave=-1, timeout=300)  # the last wave
    world.kill_controller()
    for version in world.fleet_versions().values():
        assert version in (world.seed_sha, good)
    world.start_controller()
    world.wait_settled(timeout=300)
    assert world.deployment_of(good)["status"] == "succeeded"
    assert set(world.fleet_versions().values()) == {good}
    assert containers(world) == sorted(f"{platform}-host-{i} {good}" for i in range(HOSTS))

    bad, = world.merge(FEED_ERRORS)
    world.wait_settled(timeout=300)
    deployment = world.deployment_of(bad)
    assert deployment["status"] == "rolled_back", deployment["status"]
    assert set(world.fleet_versions().values()) == {good}
    assert containers(world) == sorted(f"{platform}-host-{i} {good}" for i in range(HOSTS))

    stats = world.traffic.stats()
    # The bad release's own 500s are expected; nothing may fail because a host was replaced.
    restarts = [f for f in stats.failures if f.status in (502, 503, 504) or f.error]
    assert stats.transport_errors == 0 and restarts == [], stats.to_dict()

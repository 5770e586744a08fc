"""The Docker backend against a real Docker engine: images per release, containers as hosts, HAProxy in front.

One engine, one base image and one set of release images are shared by every test here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.exceptions import HostFailed
from deployer.fleet.base import Artifact
from deployer.fleet.docker.builder import ImageBuilder
from deployer.fleet.docker.engines import EngineError, Engines
from deployer.fleet.docker.runtime import DockerRuntime, Limits
from deployer.fleet.haproxy import HaproxyRouter
from deployer.fleet.health import HealthPolicy, HttpHealth
from deployer.fleet.local.builder import ReleaseBuilder
from deployer.fleet.replace import RoutedFleet
from deployer.loadgen.traffic import TrafficGenerator
from deployer.source import GitSource
from tests.docker_support import BASE_IMAGE, docker_cli, ensure_engine
from tests.fleet_support import REPO, free_port_block
from tests.gitrepo import make_central_repo
from tests.haproxy_support import running_haproxy

pytestmark = pytest.mark.integration
HOSTS = 3


@dataclass
class Images:
    """Release images built once for the module: A, B, and one that runs out of memory."""

    engine_url: str
    platform: str
    builder: ImageBuilder
    a: Artifact
    b: Artifact
    hog: Artifact
    root: Path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    url = ensure_engine()
    root = tmp_path_factory.mktemp("docker")
    central = make_central_repo(root)
    shutil.copytree(REPO / "sample_app", central.clone / "sample_app",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "tests"))
    sha_a = central.commit("Snapgram", {})
    sha_b = central.commit("Docs", {"docs/notes.md": "a harmless change\n"})
    main = (central.clone / "sample_app" / "__main__.py").read_text()
    hog = main.replace("from __future__ import annotations\n",
                       "from __future__ import annotations\nBALLAST = bytearray(400 * 1024 * 1024)\n", 1)
    sha_hog = central.commit("Allocate 400 MiB at start", {"sample_app/__main__.py": hog})
    central.push()
    platform = f"deployer-test-{uuid.uuid4().hex[:8]}"
    engines = Engines([url], timeout_s=120, bind="127.0.0.1")
    source = GitSource(repository=str(central.bare), branch="main", mirror_dir=root / "mirror.git")
    source.fetch()
    builder = ImageBuilder(releases=ReleaseBuilder(source=source, releases_dir=root / "releases"), engines=engines,
                           repository=f"{platform}/app", dockerfile="sample_app/Dockerfile", base_image=BASE_IMAGE,
                           platform=platform)
    built = Images(url, platform, builder, builder.build(sha_a), builder.build(sha_b), builder.build(sha_hog), root)
    try:
        yield built
    finally:
        # --no-prune: the dependency layer stays cached on the shared engine for the next run.
        docker_cli("rmi", "--no-prune", built.a.location, built.b.location, built.hog.location, check=False)
        engines.close()


def make_runtime(images: Images, tmp_path: Path, *, memory: str = "256m", engines: list[str] | None = None,
                 hosts: int = HOSTS, base_port: int | None = None) -> DockerRuntime:
    health = HttpHealth(HealthPolicy(checks=3, interval_s=0.1, start_timeout_s=60.0))
    (tmp_path / "fleet").mkdir(exist_ok=True)
    return DockerRuntime(engines=Engines(engines or [images.engine_url], timeout_s=30, bind="127.0.0.1"),
                         host_count=hosts, base_port=base_port or free_port_block(2 * hosts), health=health,
                         platform=images.platform, limits=Limits(cpus=1.0, memory=memory),
                         app_env={"SAMPLE_APP_DATABASE_URL": f"sqlite:///{tmp_path / 'fleet' / 'app.db'}"},
                         volumes=[tmp_path / "fleet"], stop_timeout_s=5.0)


@pytest.fixture
def runtime(images: Images, tmp_path: Path) -> Iterator[DockerRuntime]:
    made = make_runtime(images, tmp_path)
    try:
        yield made
    finally:
        made.stop_all()
        made.close()


def test_images_are_tagged_labelled_and_built_once(images: Images) -> None:
    assert images.a.location == f"{images.platform}/app:{images.a.version}"
    labels = docker_cli("image", "inspect", "-f", "{{json .Config.Labels}}", images.b.location)
    assert images.platform in labels and images.b.version in labels
    began = time.monotonic()
    assert images.builder.build(images.b.version) == images.b  # already there: no build
    assert time.monotonic() - began < 5


def test_canary_waves_and_rollback_behind_haproxy_under_traffic(images: Images, runtime: DockerRuntime,
                                                                tmp_path: Path) -> None:
    servers = {f"web-{i}": f"127.0.0.1:{free_port_block(1)}" for i in range(HOSTS)}
    with running_haproxy(tmp_path / "haproxy", servers) as haproxy:
        router = HaproxyRouter(socket_path=haproxy.socket, backend="app", server_name="web-{index}",
                               hosts=runtime.hosts(), traffic_url=haproxy.url, drain_timeout_s=5.0)
        fleet = RoutedFleet(runtime=runtime, router=router, health=runtime.health)
        fleet.start_router()
        with ThreadPoolExecutor(max_workers=HOSTS) as pool:
            list(pool.map(lambda h: fleet.deploy(h, images.a), fleet.hosts()))
        traffic = TrafficGenerator(haproxy.url, rate=30, seed=11)
        traffic.start()
        try:
            canary, baseline, rest = fleet.hosts()
            first = fleet.deploy(canary, images.b)  # canary on B, baseline restarted on A beside it
            fleet.restart(baseline, images.a)
            assert first.changed and first.notes == []
            wave = fleet.deploy(rest, images.b)
            assert wave.changed and fleet.deploy(rest, images.b).changed is False  # replay is a no-op
            for host in (canary, rest):  # roll back what the release touched
                fleet.deploy(host, images.a)
        finally:
            stats = traffic.stop()
        assert stats.sent > 30 and stats.failed == 0, stats.failures[:5]
        assert {fleet.probe(h).version for h in fleet.hosts()} == {images.a.version}
        served = router.traffic()
        assert all(c.in_rotation for c in served.values()), served
        # Exactly one container per slot, under its serving name, on the version it reports.
        rows = docker_cli("ps", "-a", "--filter", f"label=io.deployer.platform={images.platform}",
                          "--format", "{{.Names}} {{.Label \"io.deployer.version\"}}").splitlines()
        assert sorted(rows) == sorted(f"{images.platform}-host-{i} {images.a.version}" for i in range(HOSTS))
        fleet.stop_all()


def test_a_restarted_controller_rediscovers_the_containers(images: Images, runtime: DockerRuntime,
                                                           tmp_path: Path) -> None:
    fleet = RoutedFleet(runtime=runtime, router=None, health=runtime.health)
    host = fleet.hosts()[0]
    fleet.deploy(host, images.a)
    serving = fleet.probe(host)
    # As if a controller died mid-replacement: the next version was started but never promoted.
    runtime.start(host, images.b)
    again = make_runtime(images, tmp_path, base_port=runtime.ports(host)[0])  # the same configuration
    try:
        second = RoutedFleet(runtime=again, router=None, health=again.health)
        status = second.probe(second.hosts()[0])
        assert status.version == images.a.version and status.target == serving.target
        assert not second.deploy(second.hosts()[0], images.a).changed
        assert second.deploy(second.hosts()[0], images.b).changed  # the leftover -next is cleared first
        assert second.probe(second.hosts()[0]).version == images.b.version
        names = docker_cli("ps", "-a", "--filter", f"label=io.deployer.platform={images.platform}",
                           "--format", "{{.Names}}").split()
        assert names == [f"{images.platform}-host-0"]
    finally:
        again.close()


def test_an_unknown_labelled_container_is_reported_never_removed(images: Images, runtime: DockerRuntime) -> None:
    stray = f"{images.platform}-someone-else"
    docker_cli("run", "-d", "--name", stray, "--label", f"io.deployer.platform={images.platform}",
               "--network", "host", BASE_IMAGE, "sleep", "300")
    try:
        assert any(stray in item for item in runtime.unknown())
        runtime.stop_all()
        assert docker_cli("inspect", "-f", "{{.State.Running}}", stray) == "true"
    finally:
        docker_cli("rm", "-f", stray)


def test_an_oom_kill_is_a_host_failure_with_its_cause(images: Images, tmp_path: Path) -> None:
    small = make_runtime(images, tmp_path, memory="64m", hosts=2)
    fleet = RoutedFleet(runtime=small, router=None, health=small.health)
    try:
        with pytest.raises(HostFailed, match="out of memory"):
            fleet.deploy(fleet.hosts()[0], images.hog)
        assert not fleet.probe(fleet.hosts()[0]).running  # nothing half-started is left
    finally:
        small.stop_all()
        small.close()


def test_an_unreachable_engine_is_named(images: Images, tmp_path: Path) -> None:
    port = free_port_block(1)
    bad = f"tcp://127.0.0.1:{port}"
    with pytest.raises(EngineError, match=f"Docker engine {bad} cannot be reached"):
        Engines([images.engine_url, bad], timeout_s=2, bind="127.0.0.1").check()
    # The command line says the same, without a traceback.
    config = tmp_path / "config.yaml"
    config.write_text(f"source: {{repository: r.git}}\nworkdir: {tmp_path / 'w'}\n"
                      f"fleet: {{backend: docker, engines: ['{bad}'], engine_timeout: 2s}}\n")
    done = subprocess.run([sys.executable, "-P", "-m", "deployer.cli", "-c", str(config), "fleet", "ps"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"Docker engine {bad} cannot be reached" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

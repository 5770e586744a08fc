"""The controller as a real process over a real repository and fleet: ship, stop, survive SIGKILL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.demo.scenario import BAD_CRASH, GOOD_COMMENT_PAGE, GOOD_IMAGE_CACHE, REVERT_CRASH
from tests.pipeline_world import FEED_ERRORS, PipelineWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PipelineWorld]:
    world = PipelineWorld(tmp_path)
    try:
        world.start_controller()
        world.wait_for_fleet()
        world.start_traffic()
        yield world
    finally:
        world.close()


def assert_fleet_on(world: PipelineWorld, sha: str) -> None:
    assert set(world.fleet_versions().values()) == {sha}
    for row in world.host_rows().values():
        assert row["desired_version"] == row["observed_version"] == sha, row


def test_ships_good_commits_and_stops_bad_ones(world: PipelineWorld) -> None:
    good, = world.merge(GOOD_IMAGE_CACHE)
    world.wait_settled()
    assert world.deployment_of(good)["status"] == "succeeded"
    assert_fleet_on(world, good)
    assert {s["status"] for s in world.deployment_of(good)["stages"]} == {"passed"}

    crash, = world.merge(BAD_CRASH)
    world.wait_settled()
    detail = world.deployment_of(crash)
    assert detail["status"] == "rolled_back"
    assert any(e["event"] == "host_failed" for e in detail["events"])
    assert_fleet_on(world, good)

    revert, = world.merge(REVERT_CRASH)
    world.wait_settled()
    assert_fleet_on(world, revert)

    spike, = world.merge(FEED_ERRORS)
    world.wait_settled()
    detail = world.deployment_of(spike)
    assert detail["status"] == "rolled_back", detail["reason"]
    assert any(v["result"] == "fail" for v in detail["verdicts"])
    stages = {s["name"]: s for s in detail["stages"]}
    assert stages["bake-0"]["status"] == "failed" and "analysis_failed" in stages["bake-0"]["detail"]
    assert stages["rollback"]["status"] == "passed" and "wave-1" not in stages
    deployed_to = {e["data"]["host"] for e in detail["events"]
                   if e["kind"] == "host_deployed" and e["data"]["version"] == spike}
    assert deployed_to <= set(detail["canary_hosts"])
    assert_fleet_on(world, revert)
    commits = {c.sha: c.status.value for c in world.service.commits()}
    assert (commits[good], commits[crash], commits[revert], commits[spike]) == ("shipped", "bad", "shipped", "bad")

    stats = world.traffic.stats()
    assert stats.balancer_errors == 0 and stats.transport_errors == 0, stats.to_dict()


def test_survives_sigkill_mid_canary_and_mid_rollout(world: PipelineWorld) -> None:
    old = world.seed_sha
    first, = world.merge(GOOD_IMAGE_CACHE)
    world.wait_for_state(first, "canary", "baking")
    world.kill_controller()
    hosts = world.host_rows()
    # Every host runs a version the database knows: the one it wants or the one it had.
    for name, version in world.fleet_versions().items():
        assert version in (old, first) and version in (hosts[name]["desired_version"], hosts[name]["observed_version"])
    world.start_controller()
    world.wait_settled()
    assert world.deployment_of(first)["status"] == "succeeded"
    assert any(e["kind"] == "recovered" for e in world.deployment_of(first)["events"])
    assert_fleet_on(world, first)

    second, = world.merge(GOOD_COMMENT_PAGE)
    world.wait_for_state(second, "rolling_out", "deploying", wave=-1, timeout=180)  # the last wave
    world.kill_controller()
    for version in world.fleet_versions().values():
        assert version in (first, second, None)  # None: a host caught between stop and start
    world.start_controller()
    world.wait_settled()
    assert world.deployment_of(second)["status"] == "succeeded"
    assert_fleet_on(world, second)
    stats = world.traffic.stats()
    assert stats.balancer_errors == 0 and stats.transport_errors == 0, stats.to_dict()


@pytest.fixture
def blind_world(tmp_path: Path) -> Iterator[PipelineWorld]:
    """A pipeline whose metrics source (Prometheus) is down."""
    from deployer.fleet.local.procs import free_port_block

    world = PipelineWorld(tmp_path, overrides={
        "analysis.source": "prometheus", "analysis.prometheus_url": f"http://127.0.0.1:{free_port_block(1)}",
        "rollout.canary_bake": "3s", "rollout.max_extensions": 1})
    try:
        world.start_controller()
        world.wait_for_fleet()
        world.start_traffic(rate=20)
        yield world
    finally:
        world.close()


def test_a_blind_canary_is_never_promoted_and_waits_for_a_human(blind_world: PipelineWorld) -> None:
    from deployer.model import CommandKind

    world = blind_world
    sha, = world.merge(GOOD_IMAGE_CACHE)
    paused = world.wait_for_state(sha, "paused", timeout=120)
    detail = world.deployment_of(sha)
    verdicts = [v["result"] for v in detail["verdicts"]]
    assert verdicts == ["inconclusive", "inconclusive"], verdicts
    assert "metrics source problems" in detail["verdicts"][-1]["reason"]
    assert set(world.fleet_versions().values()) == {world.seed_sha, sha}  # only the canary runs it
    assert paused["canary_hosts"] == ["host-0"]
    # A release manager decides: abort. Everything goes back.
    world.service.command(CommandKind.ABORT, actor="ana", reason="no metrics")
    world.wait_settled()
    assert world.deployment_of(sha)["status"] == "rolled_back"
    assert set(world.fleet_versions().values()) == {world.seed_sha}
    commits = {c.sha: c.status.value for c in world.service.commits()}
    assert commits[sha] == "blocked"  # an abort blames nobody; the commit waits for a newer one

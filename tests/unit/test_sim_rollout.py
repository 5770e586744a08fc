"""The controller's capacity-budgeted, non-blocking waves, on a simulated fleet of 1,000 hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.model import CommandKind
from deployer.pipeline import Phase, Status
from tests.sim_world import NEW, OLD, SimWorld, make_world

# Whole rollouts of up to 1,000 simulated hosts: a few seconds each.
pytestmark = pytest.mark.slow


@pytest.fixture
def worlds(tmp_path: Path) -> Iterator[list[SimWorld]]:
    made: list[SimWorld] = []
    yield made
    for world in made:
        world.close()


def build(worlds: list[SimWorld], tmp_path: Path, **kwargs: object) -> SimWorld:
    world = make_world(tmp_path, **kwargs)  # type: ignore[arg-type]
    worlds.append(world)
    world.driver.recover()
    return world


def run_watching_capacity(world: SimWorld, max_sim_s: float = 3600) -> tuple[int, int]:
    """Run the release to its end; returns (most hosts out of rotation, most replacements at once)."""
    worst_out = most_in_flight = 0
    hosts = len(world.fleet.hosts())
    while world.deployment().status not in (Status.SUCCEEDED, Status.ROLLED_BACK, Status.PAUSED):
        assert world.clock.now() < max_sim_s, "the rollout did not finish"
        world.driver.step()
        worst_out = max(worst_out, hosts - world.fleet.router.in_rotation())
        most_in_flight = max(most_in_flight, len(world.controller.hosts.pool.in_flight()))
    return worst_out, most_in_flight


def test_a_thousand_hosts_roll_out_within_the_budget(worlds: list[SimWorld], tmp_path: Path) -> None:
    world = build(worlds, tmp_path, hosts=1000, settings={"rollout.max_unavailable": "5%"})
    worst_out, most_in_flight = run_watching_capacity(world)
    assert world.deployment().status is Status.SUCCEEDED, world.deployment().reason
    assert set(world.versions().values()) == {NEW}
    assert worst_out <= 50 and most_in_flight <= 50
    # The budget is used, not just respected: far faster than two at a time (1,000 x 2 s / 2 = 1,000 s).
    assert most_in_flight == 50
    assert world.clock.now() < 120


def test_the_floor_of_healthy_hosts_wins_over_a_generous_budget(worlds: list[SimWorld], tmp_path: Path) -> None:
    world = build(worlds, tmp_path, hosts=200,
                  settings={"rollout.max_unavailable": "50%", "rollout.min_healthy": "90%"})
    worst_out, _ = run_watching_capacity(world)
    assert world.deployment().status is Status.SUCCEEDED
    assert worst_out == 20  # 10% of 200 out at most, and the planner uses all of it


def test_a_failing_host_stops_the_wave_and_everything_rolls_back(worlds: list[SimWorld], tmp_path: Path) -> None:
    world = build(worlds, tmp_path, hosts=1000, settings={"rollout.max_unavailable": "5%"})
    deployment = world.deployment()
    bad = deployment.host_order[600]  # in the last wave, after many hosts are already on NEW
    world.fleet.runtime.bad_starts.add((bad, NEW))
    stopped_at, why = None, ""
    while world.deployment().status not in (Status.ROLLED_BACK, Status.SUCCEEDED, Status.PAUSED):
        assert world.clock.now() < 3600, "the rollout did not finish"
        world.driver.step()
        if stopped_at is None and world.deployment().status is Status.ROLLING_BACK:
            stopped_at, why = world.clock.now(), world.deployment().reason
    assert world.deployment().status is Status.ROLLED_BACK
    assert bad in why and "simulated start failure" in why
    assert stopped_at is not None
    # Nothing new started once the failure was seen (the tick that saw it stopped the wave).
    assert not [s for s in world.starts if s.version == NEW and s.at >= stopped_at]
    assert len({s.host for s in world.starts if s.version == NEW}) < 1000
    assert set(world.versions().values()) == {OLD}


def test_an_abort_in_the_middle_of_a_wave_acts_within_one_tick(worlds: list[SimWorld], tmp_path: Path) -> None:
    world = build(worlds, tmp_path, hosts=1000, settings={"rollout.max_unavailable": "5%"})
    # Into the 100% wave, with replacements in flight.
    while not (world.deployment().wave == 2 and world.deployment().phase is Phase.DEPLOYING
               and sum(v == NEW for v in world.versions().values()) > 400):
        assert world.clock.now() < 3600, "the last wave never started"
        world.driver.step()
    in_flight = world.controller.hosts.pool.in_flight()
    assert in_flight
    world.service.command(CommandKind.ABORT, actor="ana", reason="test")
    asked = world.clock.now()
    world.driver.step()
    assert world.deployment().status is Status.ROLLING_BACK
    after = [s for s in world.starts if s.at >= asked]
    # Replacements already under way finish (a host is never abandoned mid-start); none is begun...
    assert {s.host for s in after if s.version == NEW} <= in_flight
    # ...and the rollback starts in the very tick that read the abort.
    assert any(s.version == OLD for s in after), "the abort did not start the rollback in its tick"
    while world.deployment().status is Status.ROLLING_BACK:
        assert world.clock.now() < 3600, "the rollback did not finish"
        world.driver.step()
    assert world.deployment().status is Status.ROLLED_BACK
    assert set(world.versions().values()) == {OLD}


def test_a_failed_rollback_backs_off_before_it_retries(worlds: list[SimWorld], tmp_path: Path) -> None:
    world = build(worlds, tmp_path, hosts=20, settings={"rollout.max_unavailable": 2, "rollout.rollback_retry": "10s",
                                                       "rollout.rollback_retry_max": "40s"})
    world.fleet.runtime.bad_versions[NEW] = "crashes on start"
    world.fleet.runtime.bad_versions[OLD] = "its database is gone"
    failed_at: list[float] = []  # when each rollback attempt was seen to fail
    while world.deployment().rollback_failures < 3:
        world.driver.step()
        if world.deployment().rollback_failures > len(failed_at):
            failed_at.append(world.clock.now())
        assert world.clock.now() < 600
    waits = [min(s.at for s in world.starts if s.version == OLD and s.at >= t) - t for t in failed_at[:2]]
    # The next attempt waits rollback_retry, then twice that (minus at most a tick of rounding).
    assert waits[0] >= 10 - 0.5 and waits[1] >= 20 - 0.5, waits
    assert waits[0] < 12 and waits[1] < 22, waits

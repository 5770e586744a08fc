"""Two real controller processes on one database: one leads, the other takes over after a kill -9."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from deployer.demo.scenario import GOOD_COMMENT_PAGE, GOOD_IMAGE_CACHE
from tests.integration.test_store_and_queue import postgres_url  # noqa: F401  (fixture)
from tests.pipeline_world import PipelineWorld, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def leader_pid(world: PipelineWorld) -> int | None:
    leader = world.service.status(releases=1).leader
    return leader.pid if leader else None


def elections(world: PipelineWorld) -> list[dict[str, object]]:
    return [e.data for e in _audit(world) if e.kind == "leader_elected"]


def _audit(world: PipelineWorld) -> list:  # type: ignore[type-arg]
    from deployer import store

    with store.session_scope(world.service.engine) as session:
        return store.recent_audit(session, limit=10_000)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_one_leader_drives_and_a_standby_takes_over_after_kill_9(
        database: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    overrides = {"controller.leader_poll": "250ms", "controller.heartbeat": "500ms"}
    if database == "postgresql":
        overrides["database.url"] = request.getfixturevalue("postgres_url")
    world = PipelineWorld(tmp_path, hosts=2, overrides=overrides)
    try:
        world.start_controller()
        world.wait_for_fleet()
        world.start_traffic(rate=30)
        assert world.controller is not None
        first = world.controller.pid
        standby = world.start_standby("standby")
        wait_until("the second controller to stand by",
                   lambda: "standing by" in (world.workspace.logs / "standby.log").read_text(), 60)
        assert leader_pid(world) == first and world.service.status().leader.heartbeat_age_s < 5

        # Only the leader acts: a release ships, and the standby was never elected.
        good, = world.merge(GOOD_IMAGE_CACHE)
        world.wait_settled()
        assert world.deployment_of(good)["status"] == "succeeded"
        assert [e["pid"] for e in elections(world)] == [first]

        # Kill the leader mid-canary; the standby takes over and finishes the release as a restart would.
        second, = world.merge(GOOD_COMMENT_PAGE)
        world.wait_for_state(second, "canary", "baking")
        killed_at = time.monotonic()
        os.killpg(first, signal.SIGKILL)
        world.controller.wait(timeout=10)
        world.controller = None
        wait_until("the standby to lead", lambda: leader_pid(world) == standby.pid, 60, interval=0.02)
        takeover_s = time.monotonic() - killed_at
        world.controller, world.standbys = standby, []
        world.wait_settled()
        detail = world.deployment_of(second)
        assert detail["status"] == "succeeded"
        assert any(e["kind"] == "recovered" for e in detail["events"])
        assert set(world.fleet_versions().values()) == {second}
        assert [e["pid"] for e in elections(world)] == [first, standby.pid]
        assert elections(world)[-1]["previous"] == f"{world.service.status().leader.host}:{first}"
        # Bounded: one poll of the standby plus the time to record it, far below this on an idle machine.
        assert takeover_s < 10, takeover_s
        print(json.dumps({"database": database, "leader_takeover_s": round(takeover_s, 3)}))
    finally:
        world.close()

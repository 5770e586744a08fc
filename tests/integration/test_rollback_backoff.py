"""A rollback whose previous version cannot start: retries back off, then a human is asked, with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from deployer.demo.scenario import GOOD_IMAGE_CACHE
from deployer.model import CommandKind
from tests.pipeline_world import PipelineWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PipelineWorld]:
    world = PipelineWorld(tmp_path, hosts=2, overrides={
        "rollout.canary_bake": "10m",  # the canary waits for the operator's abort below
        "rollout.rollback_retry": "1s", "rollout.rollback_retry_max": "2s", "rollout.rollback_max_failures": 4})
    try:
        world.start_controller()
        world.wait_for_fleet()
        yield world
    finally:
        world.close()


def test_a_failing_rollback_backs_off_then_pauses_for_a_human(world: PipelineWorld) -> None:
    old = world.seed_sha
    new, = world.merge(GOOD_IMAGE_CACHE)
    world.wait_for_state(new, "canary", "baking", timeout=180)
    # The previous release can no longer start (say its directory was damaged): rolling back must fail.
    main = world.settings.workdir_path / "releases" / old / "sample_app" / "__main__.py"
    original = main.read_text()
    main.write_text("raise SystemExit('cannot start: damaged release directory')\n")
    world.service.command(CommandKind.ABORT, actor="ana", reason="stop it")
    paused = world.wait_for_state(new, "paused", timeout=180)
    detail = world.deployment_of(new)
    attempts = [e for e in detail["events"] if e["kind"] == "transition" and e["event"] == "host_failed"]
    assert len(attempts) == 4, [e["message"] for e in attempts]
    assert "rollback attempt 4 failed" in attempts[-1]["message"]
    gaps = [(datetime.fromisoformat(b["at"]) - datetime.fromisoformat(a["at"])).total_seconds()
            for a, b in zip(attempts, attempts[1:])]
    # Waits of 1 s, 2 s, 2 s (capped) before the 2nd, 3rd and 4th attempts, each plus the failed start itself.
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0 and gaps[2] >= 2.0, gaps
    asked = [e for e in detail["events"] if e["kind"] == "awaiting_operator"]
    assert asked and "rollback failed 4 times in a row" in asked[-1]["message"]
    assert attempts[-1]["to"] == "paused" and paused["reason"].startswith("rollback attempt 4 failed")

    # The human repairs the release and resumes: the rollback completes.
    main.write_text(original)
    world.service.command(CommandKind.RESUME, actor="ana", reason="release directory restored")
    world.wait_settled(timeout=180)
    assert world.deployment_of(new)["status"] == "rolled_back"
    assert set(world.fleet_versions().values()) == {old}
    # The timeline is true: nothing of the aborted rollout is left "running".
    stages = {s["name"]: s for s in world.deployment_of(new)["stages"]}
    assert all(s["status"] != "running" and s["finished_at"] for s in stages.values()), stages
    assert stages["wave-0"]["status"] == "passed"          # the canary hosts had converged
    assert stages["bake-0"]["status"] == "failed" and "stopped by abort" in stages["bake-0"]["detail"]
    assert stages["rollback"]["status"] == "passed"

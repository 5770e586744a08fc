"""Cadence through the real pieces: freezes and windows, tests that run ahead, the planner's releases.

The first tests drive the service, the API and the CLI over a real database; the last one runs
the controller as a process over a real repository and a small local fleet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dashboards.app import create_app
from deployer import store
from deployer.cli import main
from deployer.demo.scenario import BAD_TESTS, GOOD_COMMENT_PAGE, GOOD_DOCS, GOOD_IMAGE_CACHE, ScriptedCommit
from deployer.exceptions import Conflict
from deployer.model import Commit, Role
from deployer.service import BadInput, DeployService
from deployer.settings import Settings, load_settings
from tests.pipeline_world import PipelineWorld, wait_until

pytestmark = pytest.mark.integration

# The demo refuses the failing-tests commit at the merge gate; here it lands on main (no gate),
# so its author reverts it.
REVERT_TESTS = ScriptedCommit("revert-failing-tests", "", "Chen Wei", "revert", "ship", reverts="failing-tests")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "config.yaml").write_text(
        "source: {repository: central.git}\nworkdir: work\n"
        "windows:\n  timezone: Europe/Paris\n  blackouts:\n  - {name: weekend, days: [sat, sun]}\n")
    return load_settings(tmp_path / "config.yaml", environ={})


@pytest.fixture
def service(settings: Settings) -> Iterator[DeployService]:
    service = DeployService.from_settings(settings)
    yield service
    service.engine.dispose()


def test_a_freeze_holds_releases_says_why_until_when_and_gates_merges(service: DeployService) -> None:
    # A Monday in the past, 11:00 in Paris: every freeze set at a given time has ended by the real now,
    # so the open-ended freeze below (set at the real now) never meets one of these.
    monday = datetime(2025, 11, 24, 10, 0, tzinfo=timezone.utc)
    assert service.deploy_window(now=monday).open
    window = service.freeze(actor="ana", reason="black friday", until=monday + timedelta(hours=4), now=monday)
    assert not window.open and window.until == monday + timedelta(hours=4)
    assert "frozen by ana" in window.reason and "black friday" in window.reason and "14:00 UTC" in window.reason
    with pytest.raises(Conflict, match="already frozen by ana"):
        service.freeze(actor="ben", reason="again", now=monday)
    with pytest.raises(BadInput, match="not in the future"):
        service.freeze(actor="ben", reason="late", until=monday - timedelta(hours=1), now=monday + timedelta(hours=5))
    # The freeze ends on its own at its end; a weekend blackout follows through to Monday.
    assert service.deploy_window(now=monday + timedelta(hours=4)).open
    saturday = monday + timedelta(days=5)
    weekend = service.deploy_window(now=saturday)
    assert not weekend.open and "weekend" in weekend.reason and weekend.until is not None
    assert weekend.until.isoformat().startswith("2025-11-30T23:00")  # Monday 00:00 in Paris
    # An open-ended freeze is on until lifted, and the merge gate refuses merges to main meanwhile.
    service.freeze(actor="ana", reason="incident 42")
    now = service.deploy_window()
    assert not now.open and now.until is None and [f.by for f in now.freezes] == ["ana"]
    assert service.gate is not None
    gate = service.gate.gate(branch="main", sha="a" * 40)
    assert not gate.allowed and gate.refusal == "frozen" and "incident 42" in gate.reason
    assert service.gate.gate(branch="topic", sha="a" * 40).allowed
    status = service.status()
    assert status.window is not None and not status.window.open and "incident 42" in status.window.reason
    lifted = service.unfreeze(actor="ben", reason="resolved")
    assert lifted.freezes == [] and service.gate.gate(branch="main", sha="a" * 40).refusal != "frozen"
    with pytest.raises(Conflict, match="not frozen"):
        service.unfreeze(actor="ben")
    kinds = [e.kind for e in service.audit(limit=3)]
    assert kinds == ["unfreeze", "freeze", "freeze"]


def test_the_api_and_the_cli_freeze_with_roles_and_clear_errors(settings: Settings, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(settings)
    service: DeployService = app.state.service
    try:
        tokens = {role: service.accounts.create_token(name=role.value, role=role).secret for role in Role}
        viewer = TestClient(app, headers={"Authorization": f"Bearer {tokens[Role.VIEWER]}"})
        manager = TestClient(app, headers={"Authorization": f"Bearer {tokens[Role.RELEASE_MANAGER]}"})
        assert viewer.get("/api/v1/window").json()["open"] in (True, False)
        assert viewer.post("/api/v1/freeze", json={"reason": "x"}).status_code == 403
        bad = manager.post("/api/v1/freeze", json={"reason": "x", "until": "someday"})
        assert bad.status_code == 422 and "neither a duration nor a time" in bad.json()["detail"]
        assert manager.post("/api/v1/freeze", json={"reason": ""}).status_code == 422
        assert manager.post("/api/v1/freeze", json={"reason": "x", "actor": "mallory"}).status_code == 422
        done = manager.post("/api/v1/freeze", json={"reason": "db migration", "until": "2h"})
        assert done.status_code == 200 and not done.json()["open"] and done.json()["freezes"][0]["by"] == "token:release_manager"
        assert manager.post("/api/v1/freeze", json={"reason": "again"}).status_code == 409
        assert viewer.delete("/api/v1/freeze").status_code == 403
        assert manager.delete("/api/v1/freeze?reason=done").json()["freezes"] == []
        assert manager.delete("/api/v1/freeze").status_code == 409
    finally:
        service.engine.dispose()

    config = str(tmp_path / "config.yaml")
    assert main(["-c", config, "freeze", "--reason", "quiet period", "--until", "90m", "--actor", "cli"]) == 0
    assert "deploys frozen" in capsys.readouterr().out
    assert main(["-c", config, "status"]) == 0
    assert "DEPLOYS HELD" in capsys.readouterr().out
    assert main(["-c", config, "freeze", "--reason", "x", "--until", "yesterday"]) == 2
    assert "until: \"yesterday\"" in capsys.readouterr().err
    assert main(["-c", config, "unfreeze", "--actor", "cli"]) == 0
    assert "freeze lifted" in capsys.readouterr().out
    assert main(["-c", config, "unfreeze"]) == 2


# --- the controller: tests ahead, the planner, a freeze --------------------------------------------------

@pytest.fixture
def world(tmp_path: Path) -> Iterator[PipelineWorld]:
    world = PipelineWorld(tmp_path, hosts=2, overrides={
        # The sample app's own tests on likes: the failing-tests commit breaks them.
        "pipeline.test_command": "python -m pytest -q -x -p no:cacheprovider sample_app/tests/test_app_posts.py",
        # A goal no batch can meet: the planner takes max_batch, so newer commits supersede a queued release.
        "pipeline.lead_time_goal": "1s",
        "rollout.canary_bake": "3s", "rollout.wave_bake": "2s",
    })
    try:
        world.start_controller()
        world.wait_for_fleet()
        world.start_traffic(rate=30)
        yield world
    finally:
        world.close()


def _checks(world: PipelineWorld, sha: str) -> dict[str, str]:
    return {c.name: c.state.value for c in world.service.gate.checks.of(sha)}  # type: ignore[union-attr]


@pytest.mark.slow
def test_tests_run_ahead_the_planner_batches_and_a_freeze_queues_and_supersedes(world: PipelineWorld) -> None:
    service = world.service
    service.freeze(actor="ana", reason="release train boards at noon")
    first, = world.merge(GOOD_IMAGE_CACHE)
    # Tested as soon as it is discovered, and planned into a release that waits for the window.
    wait_until("tests of the first commit", lambda: _checks(world, first).get("tests") == "success", 90)
    queued = wait_until("a queued release", lambda: (a := service.status().active) and a.version == first and a, 30)
    assert queued.status == "queued"
    second, third = world.merge(GOOD_COMMENT_PAGE, GOOD_DOCS)
    wait_until("tests of the newer commits", lambda: all(_checks(world, s).get("tests") == "success"
                                                         for s in (second, third)), 120)
    wait_until("the queued release to be superseded",
               lambda: (a := service.status().active) and a.version == third, 30)
    assert service.status(releases=5).releases[0].status == "queued"
    kinds = {e.kind for e in service.audit(limit=200)}
    assert {"deploys_held", "commit_discovered"} <= kinds
    assert any(r.status == "superseded" and r.sha == first for r in service.status(releases=5).releases)
    service.unfreeze(actor="ana", reason="boarding")
    world.wait_settled()
    detail = world.deployment_of(third)
    assert detail is not None and detail["status"] == "succeeded"
    assert detail["release"]["commits"] == [first, second, third]
    tests = [s for s in detail["stages"] if s["name"] == "tests"]
    assert len(tests) == 1 and tests[0]["detail"].startswith("passed ahead of the release")
    assert any(e["event"] == "start_tested" for e in detail["events"])
    assert "deploys_resumed" in {e.kind for e in service.audit(limit=200)}

    # A commit whose tests fail is marked bad at once, with no release; the revert ships.
    broken, = world.merge(BAD_TESTS)
    wait_until("the failing commit to be marked bad",
               lambda: {c.sha: c.status.value for c in service.commits()}.get(broken) == "bad", 120)
    assert all(broken not in r.commits for r in service.status(releases=20).releases)
    gate = service.gate.gate(branch="main", sha="d" * 40)  # type: ignore[union-attr]
    assert gate.refusal == "known_bad" and broken[:12] in gate.reason
    revert, = world.merge(REVERT_TESTS)
    world.wait_settled()
    assert world.deployment_of(revert)["status"] == "succeeded"
    assert set(world.fleet_versions().values()) == {revert}
    with store.session_scope(service.engine) as session:
        assert session.get(Commit, broken).status.value == "bad"

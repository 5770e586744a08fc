"""The post-deploy watch rolls back, without a human, versions that go bad after their release succeeded.

Real controller process, real sample-app processes behind the built-in balancer, real
traffic. One version starts crashing 25 s after it starts (far longer than the canary's
bake); another starts answering errors 15 s after it starts. Each passes its canary,
succeeds, and is then rolled back by the watch; the test prints the time from the first
crash or error to the fleet being back on the previous version.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from deployer import store
from deployer.demo.scenario import FEED, FEED_IMPORT, FEED_RETURN, MAIN, Edit, ScriptedCommit
from deployer.model import AuditEvent, VersionHealth
from sqlmodel import col, select
from tests.pipeline_world import PipelineWorld, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CRASH_AFTER_S = 25.0
ERRORS_AFTER_S = 15.0

CRASH_LATER = ScriptedCommit(
    "crash-later", "Reload the ranking model on a timer", "Eli Novak", "crash-later", "stop",
    edits=(Edit(MAIN, "import argparse\n", "import argparse\nimport os\nimport threading\n"),
           Edit(MAIN, "    args = parse_args(argv)\n",
                "    args = parse_args(argv)\n"
                f"    reload = threading.Timer({CRASH_AFTER_S}, os._exit, args=(3,))  # the reload kills the process\n"
                "    reload.daemon = True\n    reload.start()\n")))
REVERT_CRASH_LATER = ScriptedCommit("revert-crash-later", "", "Eli Novak", "revert", "ship", reverts="crash-later")
ERRORS_LATER = ScriptedCommit(
    "errors-later", "Serve long feeds from the ranking cache once it is warm", "Fay Adeyemi", "errors-later", "stop",
    edits=(Edit(FEED, FEED_IMPORT, "import random\nimport time\n\n" + FEED_IMPORT),
           Edit(FEED, "router = APIRouter(", "_WARM_AT = time.monotonic() + " + repr(ERRORS_AFTER_S) + "\n\nrouter = APIRouter("),
           Edit(FEED, FEED_RETURN, "    if time.monotonic() > _WARM_AT and random.random() < 0.5:\n"
                                   "        raise KeyError('ranking cache entry evicted')\n" + FEED_RETURN)))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PipelineWorld]:
    world = PipelineWorld(tmp_path, hosts=2, overrides={
        "rollout.canary_bake": "5s", "rollout.wave_bake": "1s", "rollout.warmup": "0s",
        "post_deploy.watch": "10m", "post_deploy.interval": "1s", "post_deploy.warmup": "6s",
        # One-second windows of ~30 requests make a noisy p99 on a busy machine: only a clear
        # latency change counts here (the faults below are crashes and errors).
        "post_deploy.strict": {"max_crashes": 2, "crash_window": "5m", "bad_windows": 2, "min_requests": 10,
                               "latency_ratio": 4.0, "latency_increase": "500ms"},
    })
    try:
        world.start_controller()
        world.wait_for_fleet()
        world.start_traffic(rate=30.0)
        yield world
    finally:
        world.close()


def _rollback_event(world: PipelineWorld, sha: str) -> AuditEvent | None:
    with store.session_scope(world.service.engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.kind == "post_deploy_rollback")
                              .order_by(col(AuditEvent.id))).all()
        for event in events:
            if event.message and sha[:12] in event.message:
                session.expunge(event)
                return event
    return None


def _back_on(world: PipelineWorld, sha: str) -> bool:
    world.check_controller()
    hosts = world.host_rows()
    return set(world.fleet_versions().values()) == {sha} and all(h["healthy"] for h in hosts.values()) and \
        world.service.status(releases=1).active is None


def _wall(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()


def test_versions_that_go_bad_after_success_are_rolled_back_without_a_human(world: PipelineWorld) -> None:
    good = world.seed_sha
    time.sleep(8)  # the seed version's figures are recorded while it is live: the yardstick

    # 1. A version that crashes 25 s after it starts: canary passes, rollout succeeds, then a crash loop.
    crash, = world.merge(CRASH_LATER)
    wait_until("the crashing version to succeed",
               lambda: world.deployment_of(crash) and world.deployment_of(crash)["status"] == "succeeded", 180)
    event = wait_until("the watch to roll the crashing version back", lambda: _rollback_event(world, crash), 120)
    wait_until("the fleet back on the good version", lambda: _back_on(world, good), 120)
    back = time.time()
    assert "crash" in event.message and event.to_status == "rolled_back"
    first_crash = _wall(event.at) - max(c["seconds_ago"] for c in event.data["crashes"])
    crash_recovery = back - first_crash
    assert world.service.settled([crash])
    shown = world.deployment_of(crash)  # the release's own page: rolled back, with the evidence
    assert shown is not None and shown["release"]["status"] == "rolled_back"
    assert any(e["kind"] == "post_deploy_rollback" and "crash" in e["message"] for e in shown["events"])
    commits = {c.sha: c.status for c in world.service.commits()}
    assert commits[crash] == "bad"  # it was alone in its release: the culprit
    with store.session_scope(world.service.engine) as session:
        health = session.get(VersionHealth, crash)
        assert health is not None and health.evidence and health.evidence["crashes"]
        assert session.get(VersionHealth, good).figures["windows"] >= 1  # type: ignore[union-attr]

    # 2. The revert ships; then a version whose error rate rises 15 s after it starts.
    world.merge(REVERT_CRASH_LATER)
    world.wait_settled(timeout=180)
    revert = world.shas["revert-crash-later"]
    time.sleep(8)  # its figures, as the next release's yardstick
    errors, = world.merge(ERRORS_LATER)
    wait_until("the erroring version to succeed",
               lambda: world.deployment_of(errors) and world.deployment_of(errors)["status"] == "succeeded", 180)
    event = wait_until("the watch to roll the erroring version back", lambda: _rollback_event(world, errors), 120)
    wait_until("the fleet back on the reverted version", lambda: _back_on(world, revert), 120)
    back = time.time()
    assert "error rate" in event.message
    windows = event.data["windows"]
    assert all(w["error_rate"] > event.data["limits"]["error_rate"] for w in windows)
    # The first bad window ended one interval per window before the decision.
    first_error = _wall(event.at) - len(windows) * world.settings.post_deploy.interval
    error_recovery = back - first_error
    assert {c.sha: c.status for c in world.service.commits()}[errors] == "bad"
    assert world.traffic is not None
    print(f"\npost-deploy watch: crash loop -> fleet back in {crash_recovery:.1f}s; "
          f"error rise -> fleet back in {error_recovery:.1f}s "
          f"(users' failed requests during both: {world.traffic.stats().failed})")

"""The demo's scripted commits apply to the sample app and behave as labelled in its test suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.demo import workspace as ws_ops
from deployer.demo.scenario import STEPS, ScriptedCommit, apply_edits

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ALL = [c for step in STEPS for c in step]
TEST_COMMAND = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not integration",
                "sample_app/tests"]


def test_the_scenario_has_every_kind_of_bad_commit() -> None:
    kinds = {c.kind for c in ALL if c.expected == "stop"}
    assert {"crash-on-start", "error-spike", "latency", "cpu", "memory-leak", "client-errors",
            "tail-latency"} <= kinds
    # Stopped before merge by the required checks: failing tests, and a slowdown the benchmark measures.
    assert {c.kind for c in ALL if c.expected == "refuse"} == {"failing-tests", "bench-slowdown"}
    assert ALL[-1].expected == "ship"
    assert any(len(step) > 1 and {c.expected for c in step} == {"ship", "stop"} for step in STEPS)


def test_whole_scenario_applies_in_order(tmp_path: Path) -> None:
    workspace = ws_ops.create(tmp_path / "ws", base_config={}, overrides={})
    shas: dict[str, str] = {}
    for step in STEPS:
        for item in step:
            shas[item.key] = ws_ops.commit(workspace, item, shas)
        if any(c.expected == "refuse" for c in step):
            ws_ops.push_branch(workspace, f"topic/{step[-1].key}")
            ws_ops.abandon(workspace)  # what the demo does after the gate refuses the merge
        else:
            ws_ops.push(workspace)
    log = ws_ops.git(workspace.repo, "log", "--format=%B", "main")
    assert len(ws_ops.git(workspace.repo, "rev-list", "main").split()) == \
        len([c for c in ALL if c.expected != "refuse"]) + 1
    # A fix names what it fixes, so the gate lets it through while main is known-bad.
    assert f"Fixes {shas['latency']}" in log


@pytest.mark.parametrize("item", [c for c in ALL if c.expected != "ship"], ids=lambda c: c.key)
def test_bad_commits_fail_tests_only_when_meant_to(item: ScriptedCommit, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copytree(ws_ops.sample_app_source(), tree / "sample_app",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    apply_edits(tree, item)
    result = subprocess.run(TEST_COMMAND, cwd=tree, capture_output=True, text=True, timeout=300)
    if item.kind == "failing-tests":
        assert result.returncode != 0, result.stdout[-2000:]
    else:
        assert result.returncode == 0, result.stdout[-3000:]

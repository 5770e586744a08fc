"""A whole pipeline on loopback for integration tests: repository, controller process, fleet, traffic.

Everything it starts is stopped by `close()`, which the fixtures call even when a test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deployer.demo import workspace as ws_ops
from deployer.demo.scenario import FEED, FEED_RETURN, Edit, ScriptedCommit
from deployer.demo.seed import seed_content
from deployer.fleet.local.procs import free_port_block
from deployer.fleet import build_fleet
from deployer.service import DeployService
from deployer.settings import Settings, load_settings
from deployer.loadgen.traffic import TrafficGenerator

FAST_JUDGE = {"minimumEvidence": {"requests": 20, "intervals": 4}}


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, *, interval: float = 0.2,
               on_wait: Callable[[], None] | None = None) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        if on_wait:
            on_wait()
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


class PipelineWorld:
    """A central repo seeded with the sample app, a config, and helpers to drive the controller."""

    def __init__(self, root: Path, *, hosts: int = 4, overrides: dict[str, Any] | None = None) -> None:
        base = free_port_block(hosts + 1)
        config: dict[str, Any] = {
            "source.repository": str(root / "ws" / "app.git"),
            "source.poll_interval": "1s",
            "workdir": str(root / "ws" / "deployer"),
            "pipeline.test_command": "python -c 'import sample_app.app'",
            "fleet.hosts": hosts,
            "fleet.base_port": base + 1,
            "fleet.balancer_port": base,
            "rollout.max_unavailable": 2,
            "rollout.canary_bake": "6s",
            "rollout.wave_bake": "3s",
            "rollout.warmup": "1s",
            "analysis.interval": "1s",
            "analysis.canary": FAST_JUDGE,
            "controller.tick": "100ms",
        }
        config.update(overrides or {})
        self.workspace = ws_ops.create(root / "ws", base_config={}, overrides=config)
        self.settings: Settings = load_settings(self.workspace.config, environ={})
        self.service = DeployService.from_settings(self.settings)
        self.controller: subprocess.Popen[bytes] | None = None
        self.standbys: list[subprocess.Popen[bytes]] = []
        self.traffic: TrafficGenerator | None = None
        self.shas: dict[str, str] = {}
        self.balancer_url = f"http://127.0.0.1:{self.settings.fleet.balancer_port}"
        self.seed_sha = ws_ops.git(self.workspace.clone, "rev-parse", "HEAD")

    # --- processes ----------------------------------------------------------------

    def start_controller(self) -> None:
        log = open(self.workspace.logs / "controller.log", "ab")  # noqa: SIM115 - the child owns it
        self.controller = subprocess.Popen(
            [sys.executable, "-P", "-m", "deployer.cli", "-c", str(self.workspace.config), "run"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workspace.root)
        log.close()

    def start_standby(self, name: str) -> subprocess.Popen[bytes]:
        """Another controller on the same database (it waits for the leadership); logs to logs/<name>.log."""
        log = open(self.workspace.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "deployer.cli", "-c", str(self.workspace.config), "run"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workspace.root)
        log.close()
        self.standbys.append(process)
        return process

    def kill_controller(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.controller is not None
        os.killpg(self.controller.pid, signal.SIGKILL)
        self.controller.wait(timeout=10)
        self.controller = None

    def controller_log(self) -> str:
        return (self.workspace.logs / "controller.log").read_text(errors="replace")[-4000:]

    def check_controller(self) -> None:
        if self.controller is not None and self.controller.poll() is not None:
            raise AssertionError(f"controller exited ({self.controller.returncode}):\n{self.controller_log()}")

    def wait_for_fleet(self, timeout: float = 120) -> None:
        def ready() -> bool:
            self.check_controller()
            status = self.service.status()
            return bool(status.releases) and len(status.hosts) == self.settings.fleet.hosts and \
                all(h.healthy for h in status.hosts)
        wait_until("the fleet to start", ready, timeout)

    def start_traffic(self, rate: float = 40.0) -> None:
        seed_content(self.balancer_url)
        self.traffic = TrafficGenerator(self.balancer_url, rate=rate, seed=3)
        self.traffic.start()

    def close(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        for process in [self.controller, *self.standbys]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        fleet = build_fleet(self.settings)
        fleet.stop_all()
        fleet.close()

    # --- engineers' actions and checks ------------------------------------------------

    def merge(self, *commits: ScriptedCommit) -> list[str]:
        shas = []
        for item in commits:
            self.shas[item.key] = ws_ops.commit(self.workspace, item, self.shas)
            shas.append(self.shas[item.key])
        ws_ops.push(self.workspace)
        return shas

    def deployment_of(self, sha: str) -> dict[str, Any] | None:
        for release in self.service.status(releases=100).releases:
            if release.sha == sha and release.deployment_id:
                return self.service.deployment(release.deployment_id).model_dump(mode="json", by_alias=True)
        return None

    def wait_settled(self, timeout: float = 180) -> None:
        def settled() -> bool:
            self.check_controller()
            return self.service.settled(list(self.shas.values()))
        wait_until("the pipeline to settle", settled, timeout)

    def wait_for_state(self, sha: str, status: str, phase: str | None = None, *, wave: int | None = None,
                       timeout: float = 120) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            self.check_controller()
            view = self.service.status(releases=1).active
            active = view.model_dump(mode="json") if view else None
            if active and active["version"] == sha and active["status"] == status and \
                    (phase is None or active["phase"] == phase) and \
                    (wave is None or active["wave"] == (wave if wave >= 0 else active["waves"] + wave)):
                return active
            return None
        return wait_until(f"{sha[:10]} to reach {status}/{phase}", reached, timeout, interval=0.05)

    def fleet_versions(self) -> dict[str, str | None]:
        fleet = build_fleet(self.settings)
        try:
            return {h.name: fleet.probe(h).version for h in fleet.hosts()}
        finally:
            fleet.close()

    def host_rows(self) -> dict[str, dict[str, Any]]:
        return {h.name: h.model_dump(mode="json") for h in self.service.status().hosts}


# A plain, loud error spike for end-to-end tests (no merge gate here): every feed load answers
# 500, about a third of the traffic. The demo's own error spikes are subtler, because they must
# pass the merge checks first.
FEED_ERRORS = ScriptedCommit(
    "feed-errors", "Prefetch ranking hints for the feed", "Fay Adeyemi", "error-spike", "stop",
    edits=(Edit(FEED, FEED_RETURN, "    raise RuntimeError(\"ranking hints service refused the request\")\n"
                                   + FEED_RETURN),))

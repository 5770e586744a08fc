"""Abort latency at each stage of a release: from the service call to the first host starting its rollback.

    python bench/abort.py [--hosts 200] [--trials 3] [--max-unavailable 5%] [--tick 250ms]

The real controller runs in its own thread, in real time, with its configured tick, over a
SIMULATED fleet (deployer.fleet.sim, real clock: host starts take 1.7 s median) so that a
wave of many hosts is in flight when the abort comes. Each trial pushes a commit, waits for
the stage, calls `DeployService.command(ABORT)` (what the API and the CLI call), and times
the controller submitting the first replacement back to the previous version. Prints one
JSON line: median and maximum per stage, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployer import store  # noqa: E402
from deployer.demo import workspace as ws_ops  # noqa: E402
from deployer.demo.scenario import ScriptedCommit  # noqa: E402
from deployer.fleet.base import Artifact, Host  # noqa: E402
from deployer.model import CommandKind  # noqa: E402
from deployer.pipeline import Phase, Status  # noqa: E402
from deployer.runtime import build_controller, build_runtime  # noqa: E402
from deployer.service import DeployService  # noqa: E402
from deployer.settings import load_settings  # noqa: E402

# (label, status, phase, wave; None: the last wave)
STAGES: list[tuple[str, Status, Phase, int | None]] = [
    ("canary/deploying", Status.CANARY, Phase.DEPLOYING, 0),
    ("canary/baking", Status.CANARY, Phase.BAKING, 0),
    ("wave 1/deploying", Status.ROLLING_OUT, Phase.DEPLOYING, 1),
    ("wave 1/baking", Status.ROLLING_OUT, Phase.BAKING, 1),
    ("last wave/deploying (mid 100%)", Status.ROLLING_OUT, Phase.DEPLOYING, None),
]


def wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--max-unavailable", default="5%")
    parser.add_argument("--tick", default="250ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="abort-bench-") as tmp:
        root = Path(tmp)
        overrides = {
            "source.repository": str(root / "ws" / "app.git"), "workdir": str(root / "ws" / "deployer"),
            "source.poll_interval": "200ms", "pipeline.test_command": "true", "fleet.backend": "sim",
            "fleet.hosts": args.hosts, "fleet.healthy_checks": 1, "rollout.max_unavailable": args.max_unavailable,
            "rollout.canary_bake": "15s", "rollout.wave_bake": "15s", "rollout.warmup": "0s",
            "analysis.interval": "1s", "controller.tick": args.tick}
        workspace = ws_ops.create(root / "ws", base_config={}, overrides=overrides)
        settings = load_settings(workspace.config, environ={})
        runtime = build_runtime(settings)
        controller = build_controller(runtime)
        service = DeployService(runtime.engine)
        submitted: list[tuple[float, str, str]] = []
        pool = controller.hosts.pool
        real_submit = pool.submit

        def watched_submit(host: Host, artifact: Artifact, *, restart: bool, generation: int) -> None:
            submitted.append((time.monotonic(), host.name, artifact.version))
            real_submit(host, artifact, restart=restart, generation=generation)

        pool.submit = watched_submit  # type: ignore[method-assign]
        stop = threading.Event()
        thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
        thread.start()
        latencies: dict[str, list[float]] = {label: [] for label, *_ in STAGES}
        try:
            wait(lambda: service.status().releases, 300, "the fleet to start")
            number = 0
            for _ in range(args.trials):
                for label, status, phase, wave in STAGES:
                    number += 1
                    ws_ops.commit(workspace, ScriptedCommit(f"abort-{number}", f"Abort bench {number}", "Bench Mark",
                                                            "good", "ship",
                                                            new_files={f"docs/abort-{number}.md": f"{number}\n"}), {})
                    ws_ops.push(workspace)
                    service.command(CommandKind.POLL, actor="bench")

                    def at_stage() -> Any:
                        with store.session_scope(runtime.engine) as session:
                            d = store.active_deployment(session)
                        if d is None or d.status is not status or d.phase is not phase:
                            return None
                        last = d.waves - 1 if wave is None else wave
                        if d.wave != last:
                            return None
                        if phase is Phase.DEPLOYING and len(pool.in_flight()) < (2 if wave is None else 1):
                            return None  # in the middle of the wave: replacements in flight
                        return d

                    deployment = wait(at_stage, 300, label)
                    previous = deployment.previous_version
                    asked = time.monotonic()
                    service.command(CommandKind.ABORT, actor="bench", reason="abort latency benchmark")
                    first = wait(lambda: next((t for t, _h, v in submitted if t >= asked and v == previous), None),
                                 120, f"the first rollback after an abort at {label}")
                    latencies[label].append(first - asked)
                    wait(lambda: (d := store_deployment(runtime.engine, deployment.id)) is not None
                         and d.status is Status.ROLLED_BACK, 600, "the rollback to finish")
        finally:
            stop.set()
            thread.join(timeout=60)
            runtime.close()
    print(json.dumps({"benchmark": "abort", "hosts": args.hosts, "trials": args.trials,
                      "max_unavailable": args.max_unavailable, "tick": args.tick,
                      "stages": {label: {"median_ms": round(1000 * median(v), 1), "max_ms": round(1000 * max(v), 1)}
                                 for label, v in latencies.items()}}))
    return 0


def store_deployment(engine: Any, deployment_id: int | None) -> Any:
    with store.session_scope(engine) as session:
        return store.get_deployment(session, deployment_id=deployment_id or 0)


if __name__ == "__main__":
    sys.exit(main())

"""Roll releases out to N local hosts with zero bake time; print one JSON line of figures.

    python bench/rollout.py [--hosts 8] [--releases 3] [--parallel 2]

Each release goes canary -> waves -> whole fleet with no analysis wait, so the time is
host replacement (drain, stop, start, health checks) plus the platform's own overhead
(database, planning, effects). The figures are medians over the releases:
`wall_s` from the build being ready to the release having succeeded,
`replacing_s` the time during which at least one host was being replaced,
`overhead_s` the rest, and the sum of per-host phase times.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployer.demo import workspace as ws_ops  # noqa: E402
from deployer.demo.scenario import ScriptedCommit  # noqa: E402
from deployer.fleet.local.procs import free_port_block  # noqa: E402
from deployer.runtime import build_controller, build_runtime  # noqa: E402
from deployer.service import DeployService  # noqa: E402
from deployer.settings import load_settings  # noqa: E402


def change(number: int) -> ScriptedCommit:
    """A harmless commit (a new file) so every release has something new to ship."""
    return ScriptedCommit(f"bench-{number}", f"Benchmark change {number}", "Bench Mark", "good", "ship",
                          new_files={f"docs/bench-{number}.md": f"change {number}\n"})


def at(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def figures(detail: dict[str, Any]) -> dict[str, float]:
    events = detail["events"]
    start = next(e["at"] for e in events if e.get("event") == "build_succeeded")
    end = next(e["at"] for e in events if e.get("to") == "succeeded")
    hosts = [e for e in events if e["kind"] == "host_deployed"]
    spans = []
    sums = {"drain_s": 0.0, "stop_s": 0.0, "start_s": 0.0, "health_s": 0.0}
    for event in hosts:
        total = sum(event["data"][k] for k in sums)
        for key in sums:
            sums[key] += event["data"][key]
        spans.append((at(event["at"]) - total, at(event["at"])))
    wall = at(end) - at(start)
    replacing = union_length(spans)
    return {"wall_s": wall, "replacing_s": replacing, "overhead_s": wall - replacing,
            "host_replacements": float(len(hosts)), **sums}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--releases", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2, help="hosts replaced at once within a wave")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        root = Path(tmp)
        base = free_port_block(args.hosts + 1)
        workspace = ws_ops.create(root / "ws", base_config={}, overrides={
            "source.repository": str(root / "ws" / "app.git"), "workdir": str(root / "ws" / "deployer"),
            "source.poll_interval": "200ms", "pipeline.test_command": "true",
            "fleet.hosts": args.hosts, "fleet.base_port": base + 1, "fleet.balancer_port": base,
            "fleet.max_parallel": args.parallel, "rollout.canary_bake": "0s", "rollout.wave_bake": "0s",
            "rollout.warmup": "0s", "controller.tick": "50ms"})
        settings = load_settings(workspace.config, environ={})
        runtime = build_runtime(settings)
        runtime.fleet.start_router()
        controller = build_controller(runtime)
        service = DeployService(runtime.engine)
        stop = threading.Event()
        thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
        thread.start()
        results = []
        try:
            wait(lambda: bool(service.status()["releases"]), 180)
            shas: dict[str, str] = {}
            for number in range(args.releases):
                item = change(number)
                shas[item.key] = ws_ops.commit(workspace, item, shas)
                ws_ops.push(workspace)
                wait(lambda: any(r["sha"] == shas[item.key] and r["status"] == "succeeded"
                                 for r in service.status()["releases"]), 300)
                release = next(r for r in service.status()["releases"] if r["sha"] == shas[item.key])
                results.append(figures(service.deployment(release["deployment_id"])))
                waves = len(service.deployment(release["deployment_id"])["wave_plan"])
        finally:
            stop.set()
            thread.join(timeout=30)
            runtime.fleet.stop_all()
            runtime.close()
    summary = {k: round(median(r[k] for r in results), 3) for k in results[0]}
    print(json.dumps({"benchmark": "rollout", "hosts": args.hosts, "waves": waves, "parallel": args.parallel,
                      "releases": len(results), **summary,
                      "overhead_share": round(summary["overhead_s"] / summary["wall_s"], 3)}))
    return 0


def wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout}s")


if __name__ == "__main__":
    sys.exit(main())

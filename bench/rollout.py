"""Roll releases out to N hosts with zero bake time; print one JSON line of figures.

    python bench/rollout.py [--backend local|docker] [--router builtin|haproxy] [--hosts 8]
                            [--releases 3] [--max-unavailable 2] [--max-surge 0] [--fork-server on|off]
                            [--engine URL] [--base-image IMAGE]

Each release goes canary -> waves -> whole fleet with no analysis wait, so the time is
host replacement (drain, stop, start, health checks) plus the platform's own overhead
(database, planning, effects). The figures are medians over the releases:
`wall_s` from the build being ready to the release having succeeded,
`replacing_s` the time during which at least one host was being replaced,
`overhead_s` the rest, and the sum of per-host phase times. Simulated users send traffic
through the router the whole time; `failed_requests` counts what they saw fail.
The docker backend needs an engine (default: the tests' private one, see
scripts/ensure-docker.sh) and a base image; the haproxy router starts an HAProxy of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployer.demo import workspace as ws_ops  # noqa: E402
from deployer.demo.haproxy import LocalHaproxy  # noqa: E402
from deployer.demo.scenario import ScriptedCommit  # noqa: E402
from deployer.demo.seed import seed_content  # noqa: E402
from deployer.fleet.local.procs import free_port_block  # noqa: E402
from deployer.loadgen.traffic import TrafficGenerator  # noqa: E402
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


def backend_overrides(args: argparse.Namespace, hosts_base: int) -> dict[str, Any]:
    """Settings for the chosen fleet backend."""
    if args.backend == "local":
        return {"fleet.base_port": hosts_base, "fleet.fork_server": args.fork_server == "on"}
    platform = f"bench-{uuid.uuid4().hex[:8]}"
    return {"fleet.backend": "docker", "fleet.engines": [args.engine], "fleet.base_image": args.base_image,
            "fleet.platform": platform, "fleet.image_repository": f"{platform}/app", "fleet.base_port": hosts_base,
            "fleet.start_timeout": "180s"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["local", "docker"], default="local")
    parser.add_argument("--router", choices=["builtin", "haproxy"], default="builtin")
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--releases", type=int, default=3)
    parser.add_argument("--max-unavailable", default="2", help="rollout.max_unavailable: a count or a share (\"25%%\")")
    parser.add_argument("--max-surge", default="0", help="rollout.max_surge: a count or a share")
    parser.add_argument("--parallel", dest="max_unavailable", help="deprecated name of --max-unavailable")
    parser.add_argument("--fork-server", choices=["on", "off"], default="on",
                        help="local backend: fork hosts from a preloaded interpreter (fleet.fork_server)")
    parser.add_argument("--rate", type=float, default=20.0, help="simulated users' requests per second")
    parser.add_argument("--engine", default=os.environ.get("DEPLOYER_TEST_DOCKER_URL",
                                                           "unix:///var/lib/deployer-test-docker/docker.sock"))
    parser.add_argument("--base-image", default=os.environ.get("DEPLOYER_TEST_BASE_IMAGE",
                                                               "local/python-base:bookworm"))
    args = parser.parse_args()
    # Containers may still be flushing the shared SQLite file while the folder goes: never fail on that.
    with tempfile.TemporaryDirectory(prefix="rollout-bench-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        balancer = free_port_block(1)
        # A docker slot alternates between two ports so the new version starts beside the old.
        hosts_base = free_port_block(args.hosts * (2 if args.backend == "docker" else 1))
        overrides = {
            "source.repository": str(root / "ws" / "app.git"), "workdir": str(root / "ws" / "deployer"),
            "source.poll_interval": "200ms", "pipeline.test_command": "true",
            "fleet.hosts": args.hosts, "fleet.balancer_port": balancer,
            "rollout.max_unavailable": args.max_unavailable, "rollout.max_surge": args.max_surge,
            "rollout.canary_bake": "0s", "rollout.wave_bake": "0s",
            "rollout.warmup": "0s", "controller.tick": "50ms", **backend_overrides(args, hosts_base)}
        haproxy = None
        if args.router == "haproxy":
            haproxy = LocalHaproxy(root / "haproxy", port=free_port_block(1),
                                   servers={f"host-{i}": f"127.0.0.1:{free_port_block(1)}" for i in range(args.hosts)})
            haproxy.start()
            overrides.update({"router.kind": "haproxy", "router.socket": str(haproxy.socket),
                              "router.traffic_url": haproxy.url})
        workspace = ws_ops.create(root / "ws", base_config={}, overrides=overrides)
        settings = load_settings(workspace.config, environ={})
        runtime = build_runtime(settings)
        url = runtime.fleet.start_router()
        controller = build_controller(runtime)
        service = DeployService(runtime.engine)
        stop = threading.Event()
        thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
        thread.start()
        results = []
        traffic = None
        try:
            wait(lambda: bool(service.status().releases) and all(h.healthy for h in service.status().hosts)
                 and len(service.status().hosts) == args.hosts, 900)
            assert url is not None
            seed_content(url)
            traffic = TrafficGenerator(url, rate=args.rate, seed=1)
            traffic.start()
            shas: dict[str, str] = {}
            for number in range(args.releases):
                item = change(number)
                shas[item.key] = ws_ops.commit(workspace, item, shas)
                ws_ops.push(workspace)
                wait(lambda: any(r.sha == shas[item.key] and r.status == "succeeded"
                                 for r in service.status().releases), 600)
                release = next(r for r in service.status().releases if r.sha == shas[item.key])
                assert release.deployment_id is not None
                detail = service.deployment(release.deployment_id).model_dump(mode="json", by_alias=True)
                results.append(figures(detail))
                waves = len(detail["wave_plan"])
        finally:
            stats = traffic.stop() if traffic is not None else None
            stop.set()
            thread.join(timeout=30)
            runtime.fleet.stop_all()
            runtime.builder.prune([])  # images too, for the docker backend
            runtime.close()
            if haproxy is not None:
                haproxy.stop()
    summary = {k: round(median(r[k] for r in results), 3) for k in results[0]}
    print(json.dumps({"benchmark": "rollout", "backend": args.backend, "router": args.router, "hosts": args.hosts,
                      "fork_server": args.fork_server if args.backend == "local" else None,
                      "waves": waves, "max_unavailable": args.max_unavailable,
                      "max_surge": args.max_surge, "releases": len(results), **summary,
                      "per_host_replacement_s": round((summary["drain_s"] + summary["stop_s"] + summary["start_s"]
                                                       + summary["health_s"]) / summary["host_replacements"], 3),
                      "overhead_share": round(summary["overhead_s"] / summary["wall_s"], 3),
                      "requests": stats.sent if stats else 0, "failed_requests": stats.failed if stats else None}))
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

"""Helpers shared by the fleet and balancer tests: real release directories, leftover processes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil

from deployer.fleet.base import Artifact
from deployer.fleet.health import HealthPolicy, HttpHealth
from deployer.fleet.local.router import BalancerProcess
from deployer.fleet.local.runtime import LocalRuntime
from deployer.fleet.replace import RoutedFleet
from deployer.fleet.local.procs import free_port_block

REPO = Path(__file__).resolve().parents[1]
__all__ = ["REPO", "free_port_block", "local_fleet", "make_release", "processes_under"]


def make_release(root: Path, sha: str, *, prelude: str = "") -> Artifact:
    """Copy the real sample_app into root/releases/<sha>; `prelude` runs first in __main__."""
    dest = root / "releases" / sha
    shutil.copytree(REPO / "sample_app", dest / "sample_app", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "REVISION").write_text(sha + "\n")
    if prelude:
        main = dest / "sample_app" / "__main__.py"
        text = main.read_text()
        future = "from __future__ import annotations\n"
        # `from __future__` must stay the first statement, so the prelude goes right after it.
        text = text.replace(future, future + prelude + "\n", 1) if future in text else prelude + "\n" + text
        main.write_text(text)
    return Artifact(sha, str(dest))


def processes_under(root: Path) -> list[int]:
    """Live processes whose working directory is inside root: everything a test started."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")
        if proc.pid == os.getpid() or not cwd:
            continue  # ourselves, gone, or a zombie
        if cwd == str(root) or cwd.startswith(str(root) + os.sep):
            found.append(proc.pid)
    return found


def local_fleet(
    *,
    state_dir: Path,
    host_count: int,
    base_port: int,
    balancer_port: int | None = None,
    app_env: dict[str, str] | None = None,
    healthy_checks: int = 3,
    health_interval_s: float = 0.2,
    start_timeout_s: float = 30.0,
    drain_timeout_s: float = 10.0,
    stop_timeout_s: float = 10.0,
    balancer_health_interval_s: float = 0.5,
    fork_server: bool = True,
) -> RoutedFleet:
    """A local runtime behind the built-in balancer (none without balancer_port), as build_fleet wires it."""
    health = HttpHealth(HealthPolicy(checks=healthy_checks, interval_s=health_interval_s,
                                     start_timeout_s=start_timeout_s))
    runtime = LocalRuntime(state_dir=state_dir, host_count=host_count, base_port=base_port, health=health,
                           app_env=app_env, stop_timeout_s=stop_timeout_s, fork_server=fork_server)
    router = None
    if balancer_port is not None:
        router = BalancerProcess(state_dir=runtime.state_dir, bind="127.0.0.1", port=balancer_port,
                                 hosts=runtime.hosts(), health_path="/healthz",
                                 health_interval_s=balancer_health_interval_s, drain_timeout_s=drain_timeout_s)
    return RoutedFleet(runtime=runtime, router=router, health=health)

"""Time from `git push` returning to the platform having created the release; prints one JSON line.

    python bench/push_latency.py [--pushes 3] [--poll-interval 5s]

Two modes on the same kind of workspace (a local fleet of 2 hosts, zero bake): with the
post-receive hook installed (it reports the push to a running `deployer serve`, which
asks the controller to fetch at once), and with polling alone (source.poll_interval).
Each push waits for the previous release to finish, since one release runs at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import select  # noqa: E402

from deployer import store  # noqa: E402
from deployer.demo import workspace as ws_ops  # noqa: E402
from deployer.demo.scenario import ScriptedCommit  # noqa: E402
from deployer.fleet.local.procs import free_port_block  # noqa: E402
from deployer.model import Release, Role  # noqa: E402
from deployer.pipeline import Status  # noqa: E402
from deployer.runtime import build_controller, build_runtime  # noqa: E402
from deployer.service import DeployService  # noqa: E402
from deployer.settings import load_settings  # noqa: E402


def wait(predicate: object, timeout: float, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout}s")


def release_of(engine: object, sha: str) -> Release | None:
    with store.session_scope(engine) as session:  # type: ignore[arg-type]
        return session.exec(select(Release).where(Release.sha == sha)).first()


def measure(root: Path, *, hook: bool, pushes: int, poll_interval: str) -> list[float]:
    """Seconds from each push returning to its release existing."""
    base = free_port_block(4)
    workspace = ws_ops.create(root, base_config={}, overrides={
        "source.repository": str(root / "app.git"), "workdir": str(root / "deployer"),
        "source.poll_interval": poll_interval, "pipeline.test_command": "true", "fleet.hosts": 2,
        "fleet.base_port": base + 1, "fleet.balancer_port": base, "rollout.canary_bake": "0s",
        "rollout.wave_bake": "0s", "rollout.warmup": "0s", "rollout.waves": ["100%"], "controller.tick": "50ms",
        "api.port": base + 3, "gate.required_checks": []})
    settings = load_settings(workspace.config, environ={})
    runtime = build_runtime(settings)
    runtime.fleet.start_balancer()
    controller = build_controller(runtime)
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    serve = None
    latencies: list[float] = []
    try:
        if hook:
            token = DeployService.from_settings(settings).accounts.create_token(name="hook",
                                                                                role=Role.RELEASE_MANAGER).secret
            env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYER__")}
            serve = subprocess.Popen([sys.executable, "-P", "-m", "deployer.cli", "-c", str(workspace.config),
                                      "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
            url = f"http://127.0.0.1:{settings.api.port}"
            wait(lambda: _up(url), 60, 0.2)
            if not ws_ops.install_push_hook(workspace, url, token):
                raise SystemExit("the post-receive hook could not be installed")
        thread.start()
        wait(lambda: any(r.status is Status.SUCCEEDED for r in _releases(runtime.engine)), 300, 0.2)
        shas: dict[str, str] = {}
        for number in range(pushes):
            item = ScriptedCommit(f"p{number}", f"Latency change {number}", "Bench Mark", "good", "ship",
                                  new_files={f"docs/latency-{number}.md": f"{number}\n"})
            sha = ws_ops.commit(workspace, item, shas)
            ws_ops.push(workspace)
            pushed = time.monotonic()
            wait(lambda: release_of(runtime.engine, sha) is not None, 120)
            latencies.append(time.monotonic() - pushed)
            wait(lambda: (r := release_of(runtime.engine, sha)) is not None and r.status.terminal, 300, 0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
        if serve is not None:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=15)
        runtime.fleet.stop_all()
        runtime.close()
    return latencies


def _releases(engine: object) -> list[Release]:
    with store.session_scope(engine) as session:  # type: ignore[arg-type]
        return list(session.exec(select(Release)).all())


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--poll-interval", default="5s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="push-latency-") as folder:
        hooked = measure(Path(folder) / "hook", hook=True, pushes=args.pushes, poll_interval=args.poll_interval)
        polled = measure(Path(folder) / "poll", hook=False, pushes=args.pushes, poll_interval=args.poll_interval)
    print(json.dumps({"benchmark": "push_latency", "pushes": args.pushes, "poll_interval": args.poll_interval,
                      "hook_s_median": round(median(hooked), 3), "hook_s": [round(x, 3) for x in hooked],
                      "polling_s_median": round(median(polled), 3), "polling_s": [round(x, 3) for x in polled]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

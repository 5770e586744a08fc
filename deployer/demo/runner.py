"""Run the demo: workspace, controller, API, fleet, traffic, the scripted merges, a report.

Everything started here is stopped here, on success, failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import yaml

from deployer.demo import workspace as ws_ops
from deployer.demo import production
from deployer.demo.haproxy import LocalHaproxy
from deployer.demo.progress import Progress
from deployer.demo.report import build_report, summary_lines
from deployer.demo.scenario import STEPS, ScriptedCommit
from deployer.demo.seed import seed_content
from deployer.exceptions import ConfigError, DeployerError
from deployer.fleet import build_fleet
from deployer.service import DeployService, Role, generate_password
from deployer.settings import HaproxyRouterSettings, Settings, load_settings
from deployer.loadgen.traffic import TrafficGenerator

log = logging.getLogger(__name__)


class DemoFailed(DeployerError):
    """The demo could not finish its scenario."""


def _overrides(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "source.repository": str(root / "app.git"),
        "source.poll_interval": "2s",
        "workdir": str(root / "deployer"),
        "fleet.hosts": args.hosts,
        "rollout.canary_bake": args.canary_bake,
        "rollout.wave_bake": args.wave_bake,
        # Canary and baseline restart together, so both are equally cold: a short warm-up is fair.
        "rollout.warmup": "1s",
        # The last wave replaces four hosts at once; the other two carry the traffic meanwhile.
        "rollout.max_unavailable": 4,
        # Each step ships as one release (its commits batched), as its culprit search shows: a goal
        # this tight makes the lead-time planner take every ready commit, up to max_batch.
        "pipeline.lead_time_goal": "1m",
        # Engineers merge through the gate: every merge needs its tests and benchmark checks.
        "gate.required_checks": ["tests", "bench"],
        "gate.bench_requests": 8,
    }
    if args.profile != "production":
        overrides["database.url"] = "sqlite:///deployer.db"
    if args.base_port:
        overrides["fleet.base_port"] = args.base_port
        overrides["fleet.balancer_port"] = args.base_port - 1
    if args.api_port:
        overrides["api.port"] = args.api_port
    if args.backend == "docker":
        overrides.update({"fleet.backend": "docker", "fleet.engines": [args.engine],
                          "fleet.base_image": args.base_image, "fleet.platform": "deployer-demo",
                          "fleet.image_repository": "deployer-demo/snapgram", "fleet.start_timeout": "60s"})
    if args.router == "haproxy":
        overrides.update({"router.kind": "haproxy", "router.socket": str(root / "haproxy" / "admin.sock"),
                          "router.traffic_url": f"http://127.0.0.1:{_haproxy_port(args)}"})
    return overrides


def _haproxy_port(args: argparse.Namespace) -> int:
    """HAProxy listens where the built-in balancer would (base port - 1, or config.yaml's balancer_port)."""
    return (args.base_port - 1) if args.base_port else 8100


def _start_haproxy(settings: Settings, root: Path) -> LocalHaproxy:
    """The HAProxy users reach, with one server slot per host; the platform then drives it over its socket."""
    fleet, router = settings.fleet, settings.router
    assert isinstance(router, HaproxyRouterSettings) and router.traffic_url is not None
    port = int(router.traffic_url.rsplit(":", 1)[1])
    # The slots point at the first ports; the platform re-points them at each host's container as it starts.
    servers = {router.server_name.format(index=i, name=f"host-{i}"): f"{fleet.bind}:{fleet.base_port + i}"
               for i in range(fleet.hosts)}
    proxy = LocalHaproxy(root / "haproxy", port=port, servers=servers, backend=router.backend, bind=fleet.bind)
    proxy.start()
    return proxy


def _stop_previous(root: Path) -> None:
    """A demo killed hard may have left its fleet and controller running: stop them first."""
    workspace = ws_ops.Workspace(root.resolve())
    ws_ops.stop_leftovers(workspace)
    haproxy_pid = root / "haproxy" / "haproxy.pid"
    if haproxy_pid.is_file():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(haproxy_pid.read_text()), signal.SIGTERM)
    if workspace.config.is_file():
        try:
            fleet = build_fleet(load_settings(workspace.config))
            fleet.stop_all()
            fleet.close()
        except (DeployerError, OSError) as exc:  # ConfigError, or an engine that cannot be reached
            log.warning("could not stop the previous demo's fleet: %s", exc)


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(args.workspace).resolve()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.started = time.monotonic()
        self.settings: Settings | None = None
        self.traffic: TrafficGenerator | None = None
        self.progress: Progress | None = None
        self.haproxy: LocalHaproxy | None = None
        self.prometheus: production.LocalPrometheus | None = None
        self.merges: list[dict[str, Any]] = []   # every merge attempt through the gate, with its answer

    def say(self, text: str) -> None:
        if not self.args.quiet:
            elapsed = time.monotonic() - self.started
            print(f"[{int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {text}", flush=True)

    # --- set-up -----------------------------------------------------------------------

    def prepare(self) -> ws_ops.Workspace:
        _stop_previous(self.root)
        profile = production.PROFILE_CONFIG if self.args.profile == "production" else "config.yaml"
        base_path = ws_ops.PLATFORM_ROOT / profile
        base = yaml.safe_load(base_path.read_text()) if base_path.is_file() else {}
        overrides = _overrides(self.args, self.root)
        if self.args.profile == "production":
            # A database of the demo's own beside the profile's: the demo drops and re-creates it.
            overrides["database.url"] = production.demo_database_url(base or {})
        workspace = ws_ops.create(self.root, base_config=base or {}, overrides=overrides)
        self.settings = load_settings(workspace.config)
        if self.args.profile == "production":
            production.fresh_database(self.settings.database_url)
            self.say(f"fresh PostgreSQL database {self.settings.database_url}")
        api_url = f"http://{self.settings.api.host}:{self.settings.api.port}"
        hook_token = self.create_credentials(api_url)
        ws_ops.install_hooks(workspace, api_url, hook_token)
        self.say(f"workspace {workspace.root}: central repository with the gate's hooks, a clone, config.yaml")
        return workspace

    def create_credentials(self, api_url: str) -> str:
        """A demo admin with a random password (printed, so a newcomer can watch live) and the hook's token."""
        assert self.settings is not None
        service = DeployService.from_settings(self.settings)
        password = generate_password()
        service.accounts.add_user(name="demo-admin", role=Role.ADMIN, password=password, actor="demo")
        token = service.accounts.create_token(name="push-hook", role=Role.RELEASE_MANAGER, actor="demo")
        service.engine.dispose()
        # Printed even with --quiet: it is how a newcomer watches the run live.
        print(f"dashboard: {api_url}/  sign in as demo-admin, password {password}", flush=True)
        return token.secret

    def spawn(self, workspace: ws_ops.Workspace, name: str, *args: str) -> None:
        # -P: the workspace holds folders named like packages; never import from the working directory.
        log_file = open(workspace.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([sys.executable, "-P", "-m", "deployer.cli", "-c", str(workspace.config), *args],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=workspace.root)
        log_file.close()
        (workspace.pids / f"{name}.pid").write_text(str(proc.pid))
        self.processes[name] = proc

    def check_alive(self, workspace: ws_ops.Workspace) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (workspace.logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise DemoFailed(f"the {name} process exited with code {proc.returncode}:\n  " + "\n  ".join(tail))

    def wait_for(self, what: str, check: Any, timeout: float, workspace: ws_ops.Workspace) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive(workspace)
            result = check()
            if result:
                return result
            if self.progress:
                self.progress.show()
            time.sleep(0.25)
        raise DemoFailed(f"timed out after {timeout:g}s waiting for {what}")

    # --- the run -------------------------------------------------------------------------

    def run(self) -> int:
        workspace = self.prepare()
        assert self.settings is not None
        settings = self.settings
        service = DeployService.from_settings(settings)
        if settings.router.kind == "haproxy":
            self.haproxy = _start_haproxy(settings, workspace.root)
            self.say(f"HAProxy started at {self.haproxy.url}; the platform drives it over {self.haproxy.socket}")
        if self.args.profile == "production":
            self.prometheus = production.LocalPrometheus(settings, workspace.root / "prometheus")
            self.say(f"Prometheus started at {self.prometheus.start()}, finding hosts through the fleet's file_sd "
                     f"targets")
            for index in range(1, production.WORKERS + 1):
                self.spawn(workspace, f"worker-{index}", "worker")
            self.say(f"{production.WORKERS} rq workers started on {settings.queue.redis_url}")
        self.spawn(workspace, "api", "serve")
        self.spawn(workspace, "controller", "run")
        self.progress = Progress(service, self.say, verbose=not self.args.quiet)
        self.say(f"controller and API started (http://{settings.api.host}:{settings.api.port}/); "
                 f"starting {settings.fleet.hosts} hosts on the first commit")

        def bootstrapped() -> bool:
            status = service.status()
            return bool(status.releases) and all(h.healthy for h in status.hosts) \
                and len(status.hosts) == settings.fleet.hosts

        self.wait_for("the fleet to start", bootstrapped, 180, workspace)
        balancer = self.haproxy.url if self.haproxy is not None else \
            f"http://{settings.fleet.bind}:{settings.fleet.balancer_port}"
        posts = seed_content(balancer)
        self.say(f"fleet up behind the load balancer at {balancer}; seeded {posts} posts; "
                 f"users start browsing at {self.args.rate:g} requests/s")
        self.traffic = TrafficGenerator(balancer, rate=self.args.rate, seed=7)
        self.traffic.start()
        shas: dict[str, str] = {}
        steps = STEPS[: self.args.steps] if self.args.steps else STEPS
        scripted: list[ScriptedCommit] = [c for step in steps for c in step]
        if steps:
            self.open_branch(workspace, 1, steps[0], shas)
        for number, step in enumerate(steps, 1):
            names = ", ".join(f"{shas[c.key][:10]} {c.title or 'revert ' + c.reverts} [{c.expected}]" for c in step)
            accepted = self.merge_through_gate(workspace, service, number, step, shas)
            if number < len(steps):
                # The next engineer pushes their branch now: its checks run while this step ships.
                self.open_branch(workspace, number + 1, steps[number], shas)
            if not accepted:
                self.say(f"── step {number}/{len(steps)}: merge REFUSED for {names}")
                continue
            self.say(f"── step {number}/{len(steps)}: merged {names}")
            self.wait_for(f"step {number} to settle", lambda s=step: service.settled([shas[c.key] for c in s]),
                          self.args.step_timeout, workspace)
        self.progress.show()
        stats = self.traffic.stop()
        self.traffic = None
        fleet = build_fleet(settings)
        try:
            versions = {h.name: fleet.probe(h).version for h in fleet.hosts()}
        finally:
            fleet.close()
        report = build_report(service=service, scripted=scripted, shas=shas, fleet_versions=versions,
                              traffic=stats.to_dict(), duration_s=time.monotonic() - self.started,
                              settings=settings, merges=self.merges)
        if self.args.report:
            Path(self.args.report).write_text(json.dumps(report, indent=2) + "\n")
        for line in summary_lines(report):
            print(line, flush=True)
        return 0 if report["checks"]["passed"] else 1

    @staticmethod
    def branch_of(number: int, step: list[ScriptedCommit]) -> str:
        return f"topic/step-{number}-{step[-1].key}"

    def open_branch(self, workspace: ws_ops.Workspace, number: int, step: list[ScriptedCommit],
                    shas: dict[str, str]) -> None:
        """An engineer commits on top of main and pushes a branch; its required checks start."""
        for item in step:
            shas[item.key] = ws_ops.commit(workspace, item, shas)
        ws_ops.push_branch(workspace, self.branch_of(number, step))

    def merge_through_gate(self, workspace: ws_ops.Workspace, service: DeployService, number: int,
                           step: list[ScriptedCommit], shas: dict[str, str]) -> bool:
        """Wait for the branch's required checks, then merge it to main through the gate.

        A refused merge is recorded with the gate's reason and the clone goes back to main.
        """
        tip = shas[step[-1].key]
        branch = self.branch_of(number, step)
        assert service.gate is not None
        checks = service.gate.checks
        required = set(checks.required)

        def checked() -> bool:
            done = {c.name for c in checks.of(tip) if c.state.value in ("success", "failure", "error")}
            return required <= done

        self.wait_for(f"the checks of {tip[:10]} on {branch}", checked, self.args.step_timeout, workspace)
        outcome = ws_ops.merge(workspace)
        reason = next((line.removeprefix("remote: ").strip() for line in outcome.output.splitlines()
                       if "refused" in line or "known-bad" in line or "check" in line), outcome.output[-300:])
        self.merges.append({"step": number, "branch": branch, "sha": tip, "keys": [c.key for c in step],
                            "accepted": outcome.accepted, "reason": "" if outcome.accepted else reason,
                            "checks": {c.name: c.state.value for c in checks.of(tip)}})
        if not outcome.accepted:
            ws_ops.abandon(workspace)
            self.say(f"   the gate refused the merge of {branch}: {reason}")
        return outcome.accepted

    def cleanup(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        if self.args.keep_running:
            self.say("left running: controller, API, fleet (stop with `deployer -c "
                     f"{self.root / 'config.yaml'} fleet down` and kill the pids in {self.root / 'pids'})")
            return
        for name, proc in self.processes.items():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.processes.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.settings is not None:
            fleet = build_fleet(self.settings)
            fleet.stop_all()
            fleet.close()
        if self.haproxy is not None:
            self.haproxy.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        self.say("everything stopped")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of `deployer demo`: 0 when the scenario finished as expected."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.hosts < 4:
        raise ConfigError([f"--hosts: {args.hosts} is too few; the demo needs at least 4 (e.g. 6)"],
                          source="deployer demo")
    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(args)
    try:
        return demo.run()
    except KeyboardInterrupt:
        print("interrupted; stopping everything", file=sys.stderr)
        return 130
    except (DemoFailed, httpx.HTTPError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        print(f"demo failed: {exc} {detail}".strip(), file=sys.stderr)
        return 1
    finally:
        demo.cleanup()

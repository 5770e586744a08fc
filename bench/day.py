"""A compressed day of merges through the real controller, a local fleet and real traffic; one JSON line.

    python bench/day.py [--commits 120] [--bad-share 0.1] [--day 1800] [--peak 3] [--seed 11]
                        [--hosts 4] [--rate 30] [--canary-bake 20s] [--wave-bake 5s]

Commits arrive at seeded random times (a Poisson process: given their number, arrival
times are independent draws from the day's rate profile, here `--peak` times faster in
the middle third of the day) and are pushed to a real git repository. The controller (a
`deployer run` process, tests run ahead, the lead-time planner) ships them to a local
fleet while simulated users browse. About `--bad-share` of the commits are bad, of every
kind the demo knows (failing tests, crash on start, errors, latency, CPU, memory); each
bad commit's author reverts it once the pipeline marks it bad (or once it ships: an
escape), and the next bad commit waits for that revert, as a team would not stack
incidents. `--day` wall seconds stand for 24 hours, so lead times are also given scaled
to the day. A smaller day (`--commits 24 --day 300`) runs in a few minutes.

Figures: commits, releases, good commits shipped, bad commits caught at the tests or the
canary, escapes (a bad commit that reached a non-canary host), good commits wrongly stopped
(marked bad, or not shipped at the end), lead time p50/p95 from push to the whole fleet,
commits per release (max, mean), deploys per day at this pace, human interventions
(deployments that paused for a human), and the controller's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import select  # noqa: E402

from deployer import store  # noqa: E402
from deployer.demo import scenario  # noqa: E402
from deployer.demo import workspace as ws_ops  # noqa: E402
from deployer.demo.scenario import ScriptedCommit  # noqa: E402
from deployer.demo.seed import seed_content  # noqa: E402
from deployer.fleet import build_fleet  # noqa: E402
from deployer.fleet.local.procs import free_port_block  # noqa: E402
from deployer.loadgen.traffic import TrafficGenerator  # noqa: E402
from deployer.model import AuditEvent, Commit, Deployment, Release  # noqa: E402
from deployer.service import DeployService  # noqa: E402
from deployer.settings import Settings, load_settings  # noqa: E402

# One bad change of each kind the demo knows, in the order they come up (then again).
BAD_KINDS: list[tuple[str, ScriptedCommit]] = [
    ("tests", scenario.BAD_TESTS),
    ("crash", scenario.BAD_CRASH),
    ("errors", scenario.BAD_BATCHED),
    ("latency", scenario.BAD_LATENCY),
    ("cpu", scenario.BAD_CPU),
    ("memory", scenario.BAD_LEAK),
]
# Tests that exercise what the bad kinds break (likes among them), fast enough to run for every commit.
TEST_COMMAND = 'python -m pytest -q -x -p no:cacheprovider -m "not integration" sample_app/tests/test_app_posts.py'


@dataclass
class Merge:
    """One commit of the day: when it was meant to arrive, what it is, and what happened to it."""

    index: int
    due_s: float
    kind: str                   # "good", "revert", or a bad kind
    commit: ScriptedCommit
    sha: str = ""
    pushed_at: float = 0.0      # wall clock (time.time()) of its push

    @property
    def bad(self) -> bool:
        return self.kind not in ("good", "revert")


def arrival_times(count: int, day_s: float, peak: float, rng: random.Random) -> list[float]:
    """Seeded Poisson arrivals: given their number, i.i.d. draws from the day's rate profile, sorted."""
    # Rate 1 in the first and last thirds, `peak` in the middle: the density per third is proportional.
    weights = [1.0, peak, 1.0]
    times = []
    for _ in range(count):
        third = rng.choices(range(3), weights=weights)[0]
        times.append((third + rng.random()) * day_s / 3)
    return sorted(times)


def plan_day(count: int, bad_share: float, day_s: float, peak: float, seed: int) -> list[Merge]:
    """The day's merges: mostly harmless changes, about bad_share bad ones of every kind in turn."""
    rng = random.Random(seed)
    times = arrival_times(count, day_s, peak, rng)
    bad_count = min(count - 1, round(count * bad_share))
    bad_at = set(rng.sample(range(1, count), bad_count)) if bad_count else set()
    merges, bad_seen = [], 0
    for index, due in enumerate(times):
        if index in bad_at:
            kind, template = BAD_KINDS[bad_seen % len(BAD_KINDS)]
            bad_seen += 1
            commit = ScriptedCommit(f"{template.key}-{index}", template.title, template.author, template.kind,
                                    "stop", edits=template.edits)
        else:
            kind = "good"
            commit = ScriptedCommit(f"change-{index}", f"Change {index}: note on the feed", "Day Engineer", "good",
                                    "ship", new_files={f"docs/day/change-{index}.md": f"change {index}\n"})
        merges.append(Merge(index, due, kind, commit))
    return merges


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def timestamp(moment: datetime | None) -> float | None:
    """Seconds since the epoch of a database time (stored in UTC, possibly naive)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class Day:
    """The repository, the controller process, the fleet and the users of one benchmark run."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        base = free_port_block(args.hosts + 1)
        overrides: dict[str, Any] = {
            "source.repository": str(root / "ws" / "app.git"), "workdir": str(root / "ws" / "deployer"),
            "source.poll_interval": "500ms", "pipeline.test_command": args.test_command,
            "pipeline.max_batch": args.max_batch, "pipeline.lead_time_goal": args.goal,
            "fleet.hosts": args.hosts, "fleet.base_port": base + 1, "fleet.balancer_port": base,
            "rollout.max_unavailable": 2, "rollout.canary_bake": args.canary_bake, "rollout.wave_bake": args.wave_bake,
            "rollout.warmup": "1s", "analysis.interval": "1s", "controller.tick": "100ms",
        }
        self.workspace = ws_ops.create(root / "ws", base_config={}, overrides=overrides)
        self.settings: Settings = load_settings(self.workspace.config, environ={})
        self.service = DeployService.from_settings(self.settings)
        self.engine = self.service.engine
        self.traffic_url = f"http://127.0.0.1:{base}"
        self.controller: subprocess.Popen[bytes] | None = None
        self.traffic: TrafficGenerator | None = None
        self.shas: dict[str, str] = {}

    def start(self, rate: float) -> None:
        """Start the controller, wait for the fleet, seed content, start the users."""
        log = open(self.workspace.logs / "controller.log", "ab")  # noqa: SIM115 - the child owns it
        self.controller = subprocess.Popen(
            [sys.executable, "-P", "-m", "deployer.cli", "-c", str(self.workspace.config), "run"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workspace.root)
        log.close()
        self.wait("the fleet to start", lambda: bool(self.service.status().releases) and all(
            h.healthy for h in self.service.status().hosts) and len(self.service.status().hosts) == self.settings.fleet.hosts,
            300)
        seed_content(self.traffic_url)
        self.traffic = TrafficGenerator(self.traffic_url, rate=rate, seed=5)
        self.traffic.start()

    def push(self, merge: Merge) -> None:
        """Commit and push one merge; remember when."""
        merge.sha = self.shas[merge.commit.key] = ws_ops.commit(self.workspace, merge.commit, self.shas)
        ws_ops.push(self.workspace)
        merge.pushed_at = time.time()

    def commit_status(self, sha: str) -> str | None:
        with store.session_scope(self.engine) as session:
            row = session.get(Commit, sha)
            return row.status.value if row is not None else None

    def controller_cpu_s(self) -> float:
        assert self.controller is not None
        times = psutil.Process(self.controller.pid).cpu_times()
        return times.user + times.system

    def check_controller(self) -> None:
        if self.controller is not None and self.controller.poll() is not None:
            tail = (self.workspace.logs / "controller.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"the controller exited ({self.controller.returncode}):\n{tail}")

    def wait(self, what: str, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_controller()
            if predicate():
                return
            time.sleep(0.2)
        raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")

    def close(self) -> None:
        """Stop users, controller, fleet: nothing is left running."""
        if self.traffic is not None:
            self.traffic.stop()
        if self.controller is not None and self.controller.poll() is None:
            os.killpg(self.controller.pid, signal.SIGTERM)
            try:
                self.controller.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.controller.pid, signal.SIGKILL)
                self.controller.wait(timeout=10)
        fleet = build_fleet(self.settings)
        fleet.stop_all()
        fleet.close()


def run_day(day: Day, merges: list[Merge], settle_timeout: float) -> float:
    """Push every merge at its time (bad ones one at a time, each reverted once found); returns the wall span."""
    began = time.monotonic()
    queue = list(merges)
    outstanding: Merge | None = None
    reverts = 0
    while queue or outstanding is not None:
        day.check_controller()
        if outstanding is not None and day.commit_status(outstanding.sha) in ("bad", "shipped"):
            revert = Merge(len(merges) + reverts, time.monotonic() - began, "revert",
                           ScriptedCommit(f"revert-{outstanding.commit.key}", "", outstanding.commit.author,
                                          "revert", "ship", reverts=outstanding.commit.key))
            reverts += 1
            day.push(revert)
            merges.append(revert)
            outstanding = None
        now = time.monotonic() - began
        if queue and queue[0].due_s <= now and not (queue[0].bad and outstanding is not None):
            merge = queue.pop(0)
            day.push(merge)
            if merge.bad:
                outstanding = merge
            continue
        if time.monotonic() - began > settle_timeout:
            raise SystemExit(f"the day did not finish within {settle_timeout:g}s")
        time.sleep(0.1)
    shas = [m.sha for m in merges]
    day.wait("every commit to settle", lambda: day.service.settled(shas), settle_timeout)
    return time.monotonic() - began


def figures(day: Day, merges: list[Merge], wall_s: float, args: argparse.Namespace) -> dict[str, Any]:
    """The day's outcome, from the controller's database."""
    with store.session_scope(day.engine) as session:
        commits = {c.sha: c for c in session.exec(select(Commit)).all()}
        releases = session.exec(select(Release)).all()
        deployments = session.exec(select(Deployment)).all()
        events = session.exec(select(AuditEvent)).all()
        release_by_id = {r.id: r for r in releases}
        deploy_releases = [r for r in releases if r.kind.value in ("deploy", "bisect") and r.commit_shas]
        by_release: dict[int, list[Deployment]] = {}
        for deployment in deployments:
            by_release.setdefault(deployment.release_id, []).append(deployment)
        reached_waves = {e.deployment_id for e in events if e.to_status == "rolling_out"}
        paused = {e.deployment_id for e in events if e.to_status == "paused"}
        failed_ahead = {e.data.get("sha") for e in events if e.kind == "commit_tests_failed"}
        lead, caught, escapes, wrongly = [], {"tests": 0, "canary": 0}, 0, 0
        for merge in merges:
            commit = commits.get(merge.sha)
            status = commit.status.value if commit is not None else "undiscovered"
            carried = [r for r in deploy_releases if merge.sha in r.commit_shas]
            if merge.bad:
                went_wide = any(d.id in reached_waves for r in carried for d in by_release.get(r.id or 0, []))
                escapes += int(went_wide or status == "shipped")
                if status == "bad":
                    failed_tests = merge.sha in failed_ahead or any(r.status.value == "tests_failed" for r in carried)
                    caught["tests" if failed_tests else "canary"] += 1
                continue
            if status != "shipped":
                wrongly += 1
                continue
            shipped_by = release_by_id.get(commit.release_id) if commit is not None else None
            finished = timestamp(shipped_by.finished_at) if shipped_by is not None else None
            if finished is not None:
                lead.append(max(0.0, finished - merge.pushed_at))
        shipped_releases = [r for r in deploy_releases if r.kind.value == "deploy"]
        sizes = [len(r.commit_shas) for r in shipped_releases]
    scale = 86400.0 / args.day
    bad = [m for m in merges if m.bad]
    p50, p95 = percentile(lead, 0.5), percentile(lead, 0.95)
    stats = day.traffic.stop() if day.traffic is not None else None
    day.traffic = None
    return {
        "benchmark": "day", "commits": len(merges), "planned_commits": args.commits,
        "reverts": sum(1 for m in merges if m.kind == "revert"), "bad_commits": len(bad),
        "releases": len(shipped_releases),
        "releases_succeeded": sum(1 for r in shipped_releases if r.status.value == "succeeded"),
        "good_commits_shipped": sum(1 for m in merges if not m.bad and commits.get(m.sha) is not None
                                    and commits[m.sha].status.value == "shipped"),
        "bad_caught_tests": caught["tests"], "bad_caught_canary": caught["canary"], "escapes": escapes,
        "good_wrongly_stopped": wrongly, "human_interventions": len(paused),
        "lead_time_p50_s": round(p50, 1) if p50 is not None else None,
        "lead_time_p95_s": round(p95, 1) if p95 is not None else None,
        "lead_time_p50_day_min": round(p50 * scale / 60, 1) if p50 is not None else None,
        "lead_time_p95_day_min": round(p95 * scale / 60, 1) if p95 is not None else None,
        "commits_per_release_max": max(sizes) if sizes else 0,
        "commits_per_release_mean": round(sum(sizes) / len(sizes), 2) if sizes else 0,
        "wall_s": round(wall_s, 1), "day_s": args.day,
        "deploys_per_day_at_this_pace": round(len(shipped_releases) / wall_s * 86400 / scale, 1),
        "releases_per_wall_hour": round(len(shipped_releases) / wall_s * 3600, 1),
        "controller_cpu_s": round(day.controller_cpu_s(), 1),
        "requests": stats.sent if stats else 0, "failed_requests": stats.failed if stats else None,
        "hosts": args.hosts, "seed": args.seed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=120, help="merges in the day (default 120)")
    parser.add_argument("--bad-share", type=float, default=0.1, help="share of bad commits (default 0.1)")
    parser.add_argument("--day", type=float, default=1800.0, help="wall seconds that stand for 24 hours (default 1800)")
    parser.add_argument("--peak", type=float, default=3.0, help="merge rate in the middle third, relative (default 3)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rate", type=float, default=30.0, help="simulated users' requests per second")
    parser.add_argument("--canary-bake", default="20s")
    parser.add_argument("--wave-bake", default="5s")
    parser.add_argument("--max-batch", type=int, default=3)
    parser.add_argument("--goal", type=float, default=None,
                        help="lead-time goal in wall seconds (default: 30 minutes of the day)")
    parser.add_argument("--test-command", default=TEST_COMMAND)
    parser.add_argument("--settle-timeout", type=float, default=None,
                        help="give up after this many wall seconds (default: 3 days' worth)")
    args = parser.parse_args()
    if args.commits < 2 or args.day <= 0 or not 0 <= args.bad_share < 1:
        parser.error("need --commits >= 2, --day > 0 and 0 <= --bad-share < 1")
    args.goal = args.goal if args.goal is not None else 1800 * args.day / 86400
    settle_timeout = args.settle_timeout or 3 * args.day + 600
    merges = plan_day(args.commits, args.bad_share, args.day, args.peak, args.seed)
    with tempfile.TemporaryDirectory(prefix="day-bench-", ignore_cleanup_errors=True) as tmp:
        day = Day(Path(tmp), args)
        try:
            day.start(args.rate)
            wall_s = run_day(day, merges, settle_timeout)
            print(json.dumps(figures(day, merges, wall_s, args)))
        finally:
            day.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

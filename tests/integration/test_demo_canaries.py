"""The demo's 4xx and tail-latency commits, served by real processes under the demo's user traffic, fail at the canary.

Each bad build runs beside a baseline on the current code, both with the demo's traffic mix
at the demo's per-host rate; the judge watches direct scrapes interval by interval, as the
controller does, and must fail the canary with a reason that names the route.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from canary.config import DEFAULT_CONFIG
from canary.judge import judge
from canary.sources import ScrapeCollector
from canary.verdict import Result
from deployer.demo.scenario import BAD_CLIENT_ERRORS, BAD_TAIL, ScriptedCommit, apply_edits
from deployer.fleet.local.procs import free_port_block
from deployer.demo.seed import seed_content
from deployer.loadgen.traffic import TrafficGenerator

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]
INTERVAL_S = 2.0
WATCH_S = 90.0  # the demo's bake with both of its extensions
ROUTES = {BAD_CLIENT_ERRORS.key: "/api/feed", BAD_TAIL.key: "/api/feed"}  # where each one hurts


def _wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} not healthy after {timeout:.0f}s")


def _pair(tmp: Path, commit: ScriptedCommit) -> Iterator[dict[str, str]]:
    release = tmp / "release"
    shutil.copytree(ROOT / "sample_app", release / "sample_app", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    apply_edits(release, commit)
    port = free_port_block(2)
    urls = {"baseline": f"http://127.0.0.1:{port}", "canary": f"http://127.0.0.1:{port + 1}"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for (name, cwd), p in zip({"baseline": ROOT, "canary": release}.items(), (port, port + 1), strict=True):
            env = {**os.environ, "SAMPLE_APP_DATABASE_URL": f"sqlite:///{tmp / name}.db", "PYTHONPATH": str(cwd)}
            with open(tmp / f"{name}.log", "wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "sample_app", "--host", "127.0.0.1", "--port",
                                               str(p), "--log-level", "warning"], cwd=cwd, env=env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        for url in urls.values():
            _wait_healthy(url)
            seed_content(url, posts=12)  # the demo's follows and posts: its users' networks
        yield urls
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.mark.parametrize("commit", [BAD_CLIENT_ERRORS, BAD_TAIL], ids=lambda c: c.key)
def test_the_demo_canary_fails_and_the_verdict_names_the_route(commit: ScriptedCommit, tmp_path: Path) -> None:
    for urls in _pair(tmp_path, commit):
        # The demo sends 40 requests/s to 6 hosts: about 7 per host, the same mix on both sides.
        traffic = {role: TrafficGenerator(url, rate=6.7, seed=7) for role, url in urls.items()}
        collector = ScrapeCollector([urls["canary"]], [urls["baseline"]], interval_s=INTERVAL_S)
        verdict = None
        try:
            for t in traffic.values():
                t.start()
            collector.scrape()
            started = tick = time.monotonic()
            while time.monotonic() - started < WATCH_S:
                tick += INTERVAL_S
                time.sleep(max(0.0, tick - time.monotonic()))
                collector.scrape()
                baseline, canary = collector.samples()
                verdict = judge(DEFAULT_CONFIG, baseline, canary, final=False)
                if verdict.result is not Result.CONTINUE:
                    break
        finally:
            stats = {role: t.stop() for role, t in traffic.items()}
            collector.close()
        assert verdict is not None and verdict.result is Result.FAIL, verdict and verdict.reason
        assert ROUTES[commit.key] in verdict.reason, verdict.reason
        if commit is BAD_CLIENT_ERRORS:
            # The users saw the refusals: they count as failed requests, not as fine 4xx.
            assert stats["canary"].client_errors > 0 and stats["canary"].failed >= stats["canary"].client_errors
            assert stats["baseline"].client_errors == 0

"""CPU by function for real: two sample-app processes, real traffic, py-spy on both for the same seconds."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from canary.config import DEFAULT_CONFIG
from canary.profiler import ProfileRun, py_spy_path
from canary.verdict import Classification, Explanation, MetricResult, Result, Rule, Verdict
from deployer.analysis import AnalysisWindow, local_pid
from deployer.demo.scenario import BAD_CPU, apply_edits
from deployer.loadgen.traffic import tiny_png
from deployer.fleet.base import Host
from deployer.fleet.local.procs import free_port_block

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if py_spy_path() is None:
        pytest.fail("py-spy is not installed (pip install py-spy)")
    tmp = tmp_path_factory.mktemp("profile")
    release = tmp / "cpu-release"
    shutil.copytree(ROOT / "sample_app", release / "sample_app", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    apply_edits(release, BAD_CPU)  # the demo's CPU regression: a hashing loop in get_post_image
    port = free_port_block(2)
    procs: list[subprocess.Popen[bytes]] = []
    urls = {"baseline": f"http://127.0.0.1:{port}", "canary": f"http://127.0.0.1:{port + 1}"}
    try:
        for (name, cwd), p in zip({"baseline": ROOT, "canary": release}.items(), (port, port + 1), strict=True):
            env = {**os.environ, "SAMPLE_APP_DATABASE_URL": f"sqlite:///{tmp / name}.db", "PYTHONPATH": str(cwd)}
            with open(tmp / f"{name}.log", "wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "sample_app", "--host", "127.0.0.1", "--port",
                                               str(p), "--log-level", "warning"], cwd=cwd, env=env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        with httpx.Client(timeout=5.0) as client:
            for name, url in urls.items():
                _wait_until(lambda u=url: client.get(f"{u}/healthz").status_code == 200, 30, f"{name} healthy")
                client.post(f"{url}/api/users", json={"username": "alice"})
                posted = client.post(f"{url}/api/posts", data={"author": "alice", "caption": "sunset"},
                                     files={"image": ("sunset.png", tiny_png(random.Random(1)), "image/png")})
                assert posted.status_code < 300, posted.text
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


def _traffic(urls: dict[str, str], stop: threading.Event) -> None:
    with httpx.Client(timeout=5.0) as client:
        while not stop.is_set():
            for url in urls.values():
                client.get(f"{url}/api/posts/1/image")
            stop.wait(0.05)


def test_the_profile_names_the_function_file_and_line_that_got_slower(hosts: dict[str, str]) -> None:
    pids = {role: local_pid(Host(role, url)) for role, url in hosts.items()}
    assert all(isinstance(p, int) for p in pids.values()), pids
    stop = threading.Event()
    worker = threading.Thread(target=_traffic, args=(hosts, stop), daemon=True)
    worker.start()
    run = ProfileRun(canary_pids=[pids["canary"]], baseline_pids=[pids["baseline"]], seconds=4).start()
    try:
        _wait_until(run.done, 30, "py-spy recorders to finish")
        diff = run.result()
    finally:
        stop.set()
        worker.join(10)
        run.close()
    assert diff is not None and not diff.problems, diff
    top = diff.grown[0]
    assert top.frame.function == "get_post_image" and top.frame.file.endswith("sample_app/routes/posts.py"), diff.grown
    source = (Path(top.frame.file) if Path(top.frame.file).is_absolute() else None)
    assert top.frame.line > 0 and top.interval[0] > 0.1
    if source is not None and source.is_file():
        assert "sha256" in source.read_text().splitlines()[top.frame.line - 1]


class _Feed:
    """No samples needed: the verdict below is handed in."""

    def collect(self, now: float) -> None:
        """Nothing to collect."""


def test_a_cpu_fail_waits_for_the_profile_and_then_says_where_the_time_went(hosts: dict[str, str]) -> None:
    pids = {role: local_pid(Host(role, url)) for role, url in hosts.items()}
    window = AnalysisWindow(config=DEFAULT_CONFIG, feed=_Feed(), interval_s=1.0, start=0.0, bake_s=60.0,  # type: ignore[arg-type]
                            profiler=lambda: ProfileRun(canary_pids=[pids["canary"]],
                                                        baseline_pids=[pids["baseline"]], seconds=3).start())
    window.profile_run = window._profiler_factory()  # type: ignore[misc]
    cpu = MetricResult("handler_cpu_per_request", "cpu", Classification.HIGH, False, Explanation(Rule.MANN_WHITNEY, 9, 9))
    stop = threading.Event()
    worker = threading.Thread(target=_traffic, args=(hosts, stop), daemon=True)
    worker.start()
    try:
        held = window._explain(Verdict(Result.FAIL, 60.0, "score 60 < marginal 75", [cpu]), final=False)
        assert held.result is Result.CONTINUE and "waiting for the CPU profile" in held.reason
        _wait_until(window.profile_run.done, 30, "py-spy recorders to finish")
        failed = window._explain(Verdict(Result.FAIL, 60.0, "score 60 < marginal 75", [cpu]), final=False)
        # A latency fail decided before the CPU metrics could be is explained by the same profile.
        tail = MetricResult("latency_tail_p95", "latency", Classification.HIGH, True,
                            Explanation(Rule.LATENCY_TAIL, 9, 9), counted=False, critical_failure=True)
        slow = window._explain(Verdict(Result.FAIL, 100.0, "latency tail p95: shown above", [tail]), final=False)
    finally:
        stop.set()
        worker.join(10)
        window.close()
    assert failed.result is Result.FAIL
    assert "where the time went: get_post_image (" in failed.reason and "posts.py:" in failed.reason, failed.reason
    assert failed.to_dict()["profile"]["grown"][0]["function"] == "get_post_image"
    assert "where the time went: get_post_image (" in slow.reason, slow.reason

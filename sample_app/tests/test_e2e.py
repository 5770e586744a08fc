"""The end-to-end checks, run for real against app processes on 127.0.0.1: a good one and a broken one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sample_app.e2e import tiny_png

from .test_app_processes import START_TIMEOUT, STOP_TIMEOUT, Host, free_port, wait_until_healthy

REPO = Path(__file__).resolve().parents[2]
E2E_TIMEOUT = 120.0
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start(command: list[str], tmp_path: Path, name: str) -> Host:
    """Start an app process on a fresh SQLite file and wait until it is healthy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMPLE_APP_")}
    env["SAMPLE_APP_DATABASE_URL"] = f"sqlite:///{tmp_path / f'{name}.db'}"
    port = free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, *command, "--host", "127.0.0.1", "--port", str(port)],
                                   cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    host = Host(port, process, log)
    with httpx.Client(trust_env=False) as http:
        wait_until_healthy(http, host, time.monotonic() + START_TIMEOUT)
    return host


def stop(host: Host) -> None:
    if host.process.poll() is None:
        os.killpg(host.process.pid, signal.SIGKILL)
    host.process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    host = start(["-m", "sample_app", "--log-level", "warning"], tmp_path_factory.mktemp("good"), "good")
    yield host
    stop(host)


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    command = ["-m", "uvicorn", "sample_app.tests.broken_comments:make_app", "--factory", "--log-level", "warning"]
    host = start(command, tmp_path_factory.mktemp("broken"), "broken")
    yield host
    stop(host)


def e2e(*args: str) -> tuple[int, str, str]:
    """Run `python -m sample_app.e2e` and return (exit status, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "sample_app.e2e", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=E2E_TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def checks_of(stdout: str) -> dict[str, dict[str, object]]:
    report = json.loads(stdout)
    return {check["name"]: check for check in report["checks"]}


def test_everything_passes_on_the_good_app(good: Host) -> None:
    started = time.monotonic()
    status, out, err = e2e("--url", good.url, "--json", "--schema-examples", "10")
    assert status == 0, out + err
    checks = checks_of(out)
    assert checks["journey"]["passed"] and [s["step"] for s in checks["journey"]["steps"]] == [  # type: ignore[union-attr]
        "signup-author", "signup-follower", "follow", "profile", "post-photo", "feed", "like", "comment", "counts",
        "comments", "image"]
    schema = checks["schema"]
    assert schema["passed"], schema
    details = schema["details"]
    assert details["operations"] >= 14 and details["cases"] > 100, details  # type: ignore[index,operator]
    assert details["statuses"].get("4xx", 0) > 0, "invalid input was sent (and refused)"  # type: ignore[index,union-attr]
    assert time.monotonic() - started < 60
    assert "Traceback" not in good.log.read_text()


def test_the_journey_runs_twice_on_one_app_with_fresh_users(good: Host) -> None:
    for _ in range(2):
        status, out, err = e2e("--url", good.url, "--checks", "journey")
        assert status == 0, out + err
        assert out.startswith("PASS journey")


def test_a_broken_comment_route_fails_both_checks_and_names_the_step(broken: Host) -> None:
    status, out, err = e2e("--url", broken.url, "--json", "--schema-examples", "10")
    assert status == 1, out + err
    checks = checks_of(out)
    journey = checks["journey"]
    assert not journey["passed"]
    error = str(journey["error"])
    assert error.startswith("step comment: POST /api/posts/") and "-> 500" in error, error
    assert "comment store unavailable" in error
    assert [s["step"] for s in journey["steps"]][-1] == "comment"  # type: ignore[union-attr]
    schema = checks["schema"]
    assert not schema["passed"]
    failures = schema["details"]["failures"]  # type: ignore[index]
    assert {f["operation"] for f in failures} == {"POST /api/posts/{post_id}/comments"}, failures
    assert failures[0]["status"] == 500


def test_the_text_report_names_the_failing_step(broken: Host) -> None:
    status, out, _ = e2e("--url", broken.url, "--checks", "journey")
    assert status == 1
    assert out.startswith("FAIL journey") and "step comment" in out and "500" in out


def test_bad_usage_and_an_unreachable_url_exit_2() -> None:
    status, out, err = e2e("--url", f"http://127.0.0.1:{free_port()}")
    assert status == 2 and out == ""
    assert err.strip().count("\n") == 0 and "does not answer" in err
    assert e2e("--url", "127.0.0.1:8101")[0] == 2
    assert e2e("--url", "http://127.0.0.1:1", "--checks", "journey,smoke")[0] == 2
    assert e2e()[0] == 2


def test_the_tiny_png_is_a_png() -> None:
    data = tiny_png()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")

"""Run the application's test command at a commit, with a timeout and a captured log."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from deployer.source import GitSource

LOG_LIMIT = 64 * 1024


@dataclass(frozen=True)
class TestRun:
    passed: bool
    exit_code: int | None
    duration_s: float
    log: str
    reason: str

    __test__ = False  # not a pytest test class


def run_tests(*, source: GitSource, sha: str, command: str, timeout_s: float, runs_dir: Path) -> TestRun:
    """Check out `sha` into a scratch folder and run `command` there.

    The command runs in a shell in its own process group so that a timeout kills
    everything it started. `python` resolves to the interpreter running the
    controller, whose environment has the app's dependencies.
    """
    workdir = Path(runs_dir) / f"{sha[:12]}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        source.archive(sha, workdir)
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.pop("PYTHONPATH", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        proc = subprocess.Popen(command, shell=True, cwd=workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return TestRun(False, None, time.monotonic() - started, _tail(output),
                           f"tests did not finish within {timeout_s:g}s")
        passed = proc.returncode == 0
        reason = "tests passed" if passed else f"tests failed (exit code {proc.returncode})"
        return TestRun(passed, proc.returncode, time.monotonic() - started, _tail(output), reason)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _tail(output: bytes | None) -> str:
    text = (output or b"").decode(errors="replace")
    return text if len(text) <= LOG_LIMIT else "[... earlier output cut ...]\n" + text[-LOG_LIMIT:]

"""Sample the canary and baseline processes with py-spy for the same seconds, in the background.

The only module that runs the profiler. ``ProfileRun.start`` launches one
``py-spy record --pid PID -d SECONDS -f raw`` per process at once, so both sides are
sampled over the same seconds of the same traffic; ``result()`` returns the comparison
(``canary.profile_diff``) once every recorder has finished, None before. A recorder that
cannot run (py-spy missing, process gone, permission refused) becomes a problem in the
result instead of an exception: profiling explains a verdict, it never decides one.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .profile_diff import Frame, ProfileDiff, compare_profiles, leaf_counts

log = logging.getLogger(__name__)

__all__ = ["ProfileRun", "py_spy_path"]


def py_spy_path() -> str | None:
    """Return the py-spy executable: beside this Python (its wheel installs it there), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


class ProfileRun:
    """py-spy recorders for canary and baseline processes over the same seconds."""

    def __init__(self, *, canary_pids: list[int], baseline_pids: list[int], seconds: float, rate: int = 100,
                 top: int = 5) -> None:
        """Prepare recorders (nothing runs before start())."""
        self.seconds = seconds
        self.rate = rate
        self.top = top
        self._pids = {"canary": list(canary_pids), "baseline": list(baseline_pids)}
        self._dir = Path(tempfile.mkdtemp(prefix="canary-profile-"))
        self._procs: list[tuple[str, int, subprocess.Popen[bytes], Path]] = []
        self._problems: list[str] = []
        self._result: ProfileDiff | None = None

    def start(self) -> ProfileRun:
        """Launch one recorder per process; returns self."""
        exe = py_spy_path()
        if exe is None:
            self._problems.append("py-spy is not installed; pip install py-spy")
            return self
        for role, pids in self._pids.items():
            for pid in pids:
                out = self._dir / f"{role}-{pid}.txt"
                cmd = [exe, "record", "--pid", str(pid), "-d", f"{max(1, round(self.seconds))}", "-r", str(self.rate),
                       "-f", "raw", "-o", str(out), "--nonblocking"]
                try:
                    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                except OSError as exc:
                    self._problems.append(f"cannot run py-spy for {role} pid {pid}: {exc}")
                    continue
                self._procs.append((role, pid, proc, out))
        return self

    def done(self) -> bool:
        """True once every recorder has exited."""
        return all(p.poll() is not None for _, _, p, _ in self._procs)

    def result(self) -> ProfileDiff | None:
        """Return the comparison once every recorder has finished, else None."""
        if self._result is not None:
            return self._result
        if not self.done():
            return None
        counts: dict[str, Counter[Frame]] = {"canary": Counter(), "baseline": Counter()}
        for role, pid, proc, out in self._procs:
            err = (proc.stderr.read().decode(errors="replace") if proc.stderr else "").strip()
            if proc.returncode != 0 or not out.is_file():
                self._problems.append(f"py-spy for {role} pid {pid} failed ({proc.returncode}): {err[-200:]}")
                continue
            counts[role].update(leaf_counts(out.read_text(errors="replace")))
        diff = compare_profiles(counts["baseline"], counts["canary"], seconds=self.seconds, top=self.top)
        self._result = ProfileDiff(diff.seconds, diff.canary_samples, diff.baseline_samples, diff.grown,
                                   self._problems + diff.problems)
        self.close()
        return self._result

    def close(self) -> None:
        """Stop recorders still running and remove their files."""
        for _, _, proc, _ in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)

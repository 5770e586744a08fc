"""Run the app's benchmark at two checkouts side by side, one round each in turn.

Both versions run as `<bench_command> --serve` processes; rounds alternate (target,
candidate, target, ...), so a machine that gets busier in the middle slows both alike
instead of looking like a regression of whichever version ran second.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from deployer.exceptions import DeployerError

Series = dict[str, dict[str, list[float]]]


class BenchError(DeployerError):
    """The benchmark could not run (it crashed, printed nonsense or took too long)."""


class _BenchProcess:
    def __init__(self, command: str, cwd: Path, requests: int, label: str) -> None:
        env = dict(os.environ)
        # `python` is the interpreter running the platform, whose environment has the app's dependencies.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.pop("PYTHONPATH", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.label = label
        self.proc = subprocess.Popen(f"{command} --serve --requests {int(requests)}", shell=True, cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)

    def read(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, deadline)
        if not line:
            err = self.proc.stderr.read()[-2000:] if self.proc.stderr and self.proc.poll() is not None else ""
            raise BenchError(f"the benchmark at the {self.label} stopped without an answer"
                             + (f": {err.strip().splitlines()[-1]}" if err.strip() else ""))
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            raise BenchError(f"the benchmark at the {self.label} printed {line[:200]!r}, not JSON") from None
        if "error" in data:
            raise BenchError(f"the benchmark at the {self.label} failed: {data['error']}")
        return data

    def ask(self, deadline: float) -> dict[str, dict[str, float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        return self.read(deadline)["routes"]

    def stop(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


def _readline(stream: IO[str], deadline: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(timeout=remaining):
            raise BenchError("the benchmark did not answer in time")
    return stream.readline()


def run_interleaved(*, command: str, target_dir: Path, candidate_dir: Path, rounds: int, requests: int,
                    timeout_s: float) -> tuple[Series, Series]:
    """`rounds` rounds at each checkout, alternating; returns (target series, candidate series)."""
    deadline = time.monotonic() + timeout_s
    target = _BenchProcess(command, target_dir, requests, "target tip")
    candidate = _BenchProcess(command, candidate_dir, requests, "candidate")
    try:
        target.read(deadline)
        candidate.read(deadline)
        series: tuple[Series, Series] = ({}, {})
        for i in range(rounds):
            # Alternate who goes first, so neither always runs right after the other's warm caches.
            order = [(0, target), (1, candidate)] if i % 2 == 0 else [(1, candidate), (0, target)]
            for index, process in order:
                for route, values in process.ask(deadline).items():
                    entry = series[index].setdefault(route, {"cpu_ms": [], "latency_ms": []})
                    entry["cpu_ms"].append(float(values["cpu_ms"]))
                    entry["latency_ms"].append(float(values["latency_ms"]))
        return series
    finally:
        target.stop()
        candidate.stop()

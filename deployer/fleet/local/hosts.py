"""The local fleet's host processes and their records in `state_dir/hosts/<name>/`.

`state.json` holds the pid and kernel start time of the running process (or null), the
version and release directory it was started from, and a status: "starting" until its
consecutive health checks passed, then "running"; "stopped" or "failed" afterwards.
`log` collects the output of every process the host has had, one marker line per start.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from deployer.exceptions import HostFailed
from deployer.fleet.local import procs
from deployer.fleet.base import Artifact

log = logging.getLogger(__name__)


class HostProcesses:
    """Spawn, stop and record the sample-app processes of one state_dir."""

    def __init__(
        self, *, state_dir: Path, bind: str, python: str, app_env: dict[str, str], stop_timeout_s: float
    ) -> None:
        self.state_dir = state_dir
        self.bind = bind
        self.python = python
        self.app_env = app_env
        self.stop_timeout_s = stop_timeout_s
        # Popen handles of the processes started by this object, so their exits get reaped.
        self._popen: dict[str, subprocess.Popen[bytes]] = {}
        self._reapers: list[threading.Thread] = []

    def host_dir(self, name: str) -> Path:
        """Where host `name` keeps its state file and log."""
        return self.state_dir / "hosts" / name

    def log_path(self, name: str) -> Path:
        """The host's log file (all its processes, appended)."""
        return self.host_dir(name) / "log"

    def read_state(self, name: str) -> dict[str, Any]:
        """The host's state record; {} when it never ran."""
        return procs.read_json(self.host_dir(name) / "state.json")

    def write_state(self, name: str, data: dict[str, Any]) -> None:
        """Replace the host's state record atomically."""
        procs.write_json_atomic(self.host_dir(name) / "state.json", {**data, "name": name})

    def is_alive(self, name: str) -> tuple[bool, int | None]:
        """(the recorded process still runs, its pid)."""
        ref = procs.ref_from_json(self.read_state(name))
        return procs.is_alive(ref), ref.pid if ref else None

    def known_names(self) -> set[str]:
        """Every host that has a directory in state_dir, even outside the current host_count."""
        hosts_dir = self.state_dir / "hosts"
        return {p.name for p in hosts_dir.iterdir() if p.is_dir()} if hosts_dir.is_dir() else set()

    @staticmethod
    def check_release(name: str, artifact: Artifact) -> Path:
        """The release directory, or HostFailed before anything is stopped if it cannot run."""
        release = Path(artifact.location).resolve()
        if not (release / "sample_app").is_dir():
            raise HostFailed(name, artifact.version, f"{release} is not a release directory (no sample_app/)")
        return release

    def spawn(self, name: str, port: int, artifact: Artifact) -> tuple[subprocess.Popen[bytes], int]:
        """Start `artifact` as host `name` on `port`; returns the process and its log offset."""
        release = self.check_release(name, artifact)
        log_path = self.log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {artifact.version} from {release}\n")
            offset = fh.tell()
        env = {**os.environ, **self.app_env, "PYTHONPATH": str(release), "PYTHONUNBUFFERED": "1"}
        argv = [self.python, *self.app_args(port)]
        try:
            proc, ref = procs.spawn(argv, cwd=release, env=env, log_path=log_path)
        except OSError as exc:
            raise HostFailed(name, artifact.version, f"cannot start {self.python}: {exc}") from exc
        self._popen[name] = proc
        self.write_state(
            name,
            {
                **ref.to_json(),
                "version": artifact.version,
                "location": str(release),
                "port": port,
                "status": "starting",
                "started_at": time.time(),
            },
        )
        return proc, offset

    def exit_code(self, name: str) -> int | None:
        """The exit status of the process this object last started for `name`, None while it runs."""
        proc = self._popen.get(name)
        return None if proc is None else proc.poll()

    def mark_running(self, name: str) -> None:
        """Record that the host passed its consecutive health checks."""
        self.write_state(name, {**self.read_state(name), "status": "running"})

    def app_args(self, port: int) -> list[str]:
        """The command line after the interpreter; also how orphans are recognised."""
        return ["-m", "sample_app", "--host", self.bind, "--port", str(port)]

    def stop(self, name: str, *, status: str = "stopped", overlap: bool = False) -> None:
        """Stop the recorded process of host `name` (TERM, then KILL) and record that.

        With `overlap`, return as soon as its port is closed: the rest of its exit
        (interpreter teardown, most of a second for the sample app) then overlaps with
        the successor's start, and a reaper thread finishes the wait.
        """
        state = self.read_state(name)
        ref = procs.ref_from_json(state)
        proc = self._popen.pop(name, None)
        if ref is not None:
            port = state.get("port")
            released = None
            if overlap and isinstance(port, int):
                released = lambda: procs.port_is_free(self.bind, port)  # noqa: E731
            outcome = procs.terminate(ref, self.stop_timeout_s, proc, released)
            if outcome == "released":
                reaper = threading.Thread(
                    target=procs.finish,
                    args=(ref, self.stop_timeout_s, proc),
                    name=f"reap-{name}",
                    daemon=True,
                )
                reaper.start()
                self._reapers.append(reaper)
            log.info("stopped %s (pid %d): %s", name, ref.pid, outcome)
        if state:
            stopped = {"pid": None, "start_time": None, "status": status, "stopped_at": time.time()}
            self.write_state(name, {**state, **stopped})

    def join_reapers(self) -> None:
        """Wait until every process handed to a reaper thread has exited."""
        while self._reapers:
            self._reapers.pop().join()

    def free_port(self, name: str, port: int, version: str) -> None:
        """Make sure `port` can be bound, evicting an orphan host process if one holds it."""
        if procs.port_is_free(self.bind, port):
            return
        # A host started by a controller that died before writing its state file: it is
        # recognised by the exact command line hosts are started with, leading its own group.
        args = self.app_args(port)
        for pid in procs.find_processes(lambda argv: argv[1:] == args):
            start = procs.start_time_of(pid)
            if start is not None and procs.leads_group(pid):
                log.warning("port %d held by orphan host pid %d; stopping it", port, pid)
                procs.terminate(procs.ProcessRef(pid, start), self.stop_timeout_s)
        if not procs.wait_port_free(self.bind, port, timeout=self.stop_timeout_s):
            raise HostFailed(name, version, f"port {port} is in use by another process")

"""The local fleet's host processes and their records in `state_dir/hosts/<name>/`.

`state.json` holds the pid and kernel start time of the running process (or null), the
version and release directory it was started from, and a status: "starting" until its
consecutive health checks passed, then "running"; "stopped" or "failed" afterwards.
`log` collects the output of every process the host has had, one marker line per start.

With fork servers on, a host is forked from its release's preloaded interpreter
(`forkservers`) instead of spawned; it is the same kind of process afterwards (its own
session, recorded by pid and start time), so stopping and adopting it do not change.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from deployer.exceptions import HostFailed
from deployer.fleet.local import procs
from deployer.fleet.base import Artifact
from deployer.fleet.local.forkservers import SCRIPT, ForkedChild, ForkServerGone, ForkServers

log = logging.getLogger(__name__)


class HostProcesses:
    """Spawn, stop and record the sample-app processes of one state_dir."""

    def __init__(
        self,
        *,
        state_dir: Path,
        bind: str,
        python: str,
        app_env: dict[str, str],
        stop_timeout_s: float,
        fork_servers: ForkServers | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.bind = bind
        self.python = python
        self.app_env = app_env
        self.stop_timeout_s = stop_timeout_s
        self.fork_servers = fork_servers
        # The processes started by this object (Popen, or forked), so their exits get reaped and reported.
        self._popen: dict[str, procs.Child] = {}
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

    def env(self, release: Path) -> dict[str, str]:
        """The environment of a host (and of its release's fork server)."""
        return {**os.environ, **self.app_env, "PYTHONPATH": str(release), "PYTHONUNBUFFERED": "1"}

    def prepare(self, release: Path) -> None:
        """Have the release's fork server ready (its imports done) before a host of it is stopped."""
        if self.fork_servers is not None:
            self.fork_servers.get(release, self.env(release))

    def spawn(self, name: str, port: int, artifact: Artifact) -> tuple[procs.Child, int]:
        """Start `artifact` as host `name` on `port`; returns the process and its log offset."""
        release = self.check_release(name, artifact)
        log_path = self.log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {artifact.version} from {release}\n")
            offset = fh.tell()
        forked = self._fork(release, port, log_path)
        if forked is not None:
            proc, ref = forked
        else:
            try:
                proc, ref = procs.spawn([self.python, *self.app_args(port)], cwd=release, env=self.env(release),
                                        log_path=log_path)
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
                "forked_from": forked[0].server.pid if forked is not None else None,
            },
        )
        return proc, offset

    def _fork(self, release: Path, port: int, log_path: Path) -> tuple[ForkedChild, procs.ProcessRef] | None:
        """Fork the host from the release's fork server; None to start it the plain way."""
        if self.fork_servers is None:
            return None
        env = self.env(release)
        # One retry with a fresh fork server: the one we had may have died since its last host.
        for _ in range(2):
            server = self.fork_servers.get(release, env)
            if server is None:
                return None
            try:
                pid = server.fork(module="sample_app", argv=self.app_args(port)[2:], env=env, cwd=release,
                                  log_path=log_path)
            except ForkServerGone as exc:
                log.warning("fork server for %s failed (%s); starting another", release, exc)
                self.fork_servers.discard(server)
                continue
            start = procs.start_time_of(pid)
            # A host that died at once has no start time left to read; 0 never matches a live one.
            return ForkedChild(pid, server), procs.ProcessRef(pid, start if start is not None else 0.0)
        return None

    def exit_reason(self, name: str) -> str | None:
        """Why the process this object last started for `name` is gone, None while it runs."""
        proc = self._popen.get(name)
        if proc is None:
            return None
        code = proc.poll()
        if code is not None:
            return f"process exited with status {code}"
        if isinstance(proc, ForkedChild) and not self.is_alive(name)[0]:
            return "process exited (its fork server is gone, and its exit status with it)"
        return None

    def mark_running(self, name: str) -> None:
        """Record that the host passed its consecutive health checks."""
        self.write_state(name, {**self.read_state(name), "status": "running"})

    def app_args(self, port: int) -> list[str]:
        """The command line after the interpreter; also how orphans are recognised."""
        return ["-m", "sample_app", "--host", self.bind, "--port", str(port)]

    def _is_orphan_host(self, pid: int, argv: list[str], port: int) -> bool:
        """A host process of ours on `port`: started with its command line, or forked and listening there."""
        if argv[1:] == self.app_args(port):
            return True
        return len(argv) > 1 and argv[1] == str(SCRIPT) and port in procs.listening_ports(pid)

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
        # A forked host has its fork server's command line; it is told apart by the port it listens on.
        for pid in procs.find_processes(lambda pid, argv: self._is_orphan_host(pid, argv, port)):
            start = procs.start_time_of(pid)
            if start is not None and procs.leads_group(pid):
                log.warning("port %d held by orphan host pid %d; stopping it", port, pid)
                procs.terminate(procs.ProcessRef(pid, start), self.stop_timeout_s)
        if not procs.wait_port_free(self.bind, port, timeout=self.stop_timeout_s):
            raise HostFailed(name, version, f"port {port} is in use by another process")
